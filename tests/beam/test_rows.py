"""ToRows: schema'd rows from records a tunnel really delivered (read from
the emulator over loopback with TunnelClient), on FnApiRunner, through Beam
DataFrames; the key schema from DescribeTable; every validation message.

Beam SQL is not exercised: SqlTransform is a cross-language transform whose
expansion service and execution need Java and a portable runner that runs
the Java SDK harness (not FnApiRunner)."""

from __future__ import annotations

import os
import pickle
import sys
import time

import apache_beam as beam
import pytest
import tablestore
from apache_beam.coders import RowCoder
from apache_beam.dataframe.convert import to_dataframe, to_pcollection
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

from beam_tunnel.client import TunnelConfig
from beam_tunnel.beam.rows import TableSchema, ToRows, describe_table_schema, row_type
from beam_tunnel.emulator import EmulatorServer
from beam_tunnel.emulator.model.keys import PkColumn
from beam_tunnel.emulator.model.tables import StreamSpec
from beam_tunnel.errors import ConfigError, ObjectNotExistError
from beam_tunnel.records import Action

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "emulator"))
from tunnel_kit import Worker, ots_client, tunnel_client  # noqa: E402  (needs the path above)

KEY_SCHEMA = (("region", "STRING"), ("order_id", "INTEGER"), ("shard", "BINARY"))
DEFINED = (("amount", "DOUBLE"), ("paid", "BOOLEAN"))
SHARD = b"\x01\xff"
IGNORE = tablestore.Condition(tablestore.RowExistenceExpectation.IGNORE)
# Seconds to wait for the stream records of the writes to reach the tunnel.
_STREAM_WAIT_S = 30


def _pk(order_id):
    return [("region", "eu"), ("order_id", order_id), ("shard", bytearray(SHARD))]


def _options():
    return PipelineOptions(["--runner=FnApiRunner", "--direct_num_workers=1"])


@pytest.fixture(scope="module")
def table():
    """An ``orders`` table on a running emulator: 4 rows read as full data,
    then an update, a put with a mistyped ``amount`` and a delete read from
    the stream. Yields (server, records in read order)."""
    with EmulatorServer() as server:
        server.backend.tables.create_table(
            "orders",
            [PkColumn(name, kind) for name, kind in KEY_SCHEMA],
            defined_columns=DEFINED,
            stream=StreamSpec(True, 24, ("amount",)),
        )
        ots, client = ots_client(server), tunnel_client(server)
        for i in range(1, 5):
            ots.put_row("orders", tablestore.Row(_pk(i), [("amount", 1.5 * i), ("note", f"n{i}"), ("paid", True)]))
        worker = Worker(client, client.create_tunnel("orders", "rows", "BaseAndStream"))
        worker.run_until_idle()
        ots.update_row("orders", tablestore.Row(_pk(1), {"put": [("amount", 9.25)], "delete_all": ["note"]}), IGNORE)
        ots.put_row("orders", tablestore.Row(_pk(5), [("amount", "free"), ("blob", bytearray(b"\x00\xff"))]))
        ots.delete_row("orders", tablestore.Row(_pk(2)), IGNORE)
        deadline = time.monotonic() + _STREAM_WAIT_S
        while len(worker.all_records()) < 7:
            if time.monotonic() > deadline:
                raise AssertionError(f"the 3 stream records did not arrive within {_STREAM_WAIT_S}s")
            worker.run_until_idle()
            time.sleep(0.1)
        records = worker.all_records()
        client.close()
        yield server, records


def test_describe_table_schema_asks_the_service(table):
    server, _ = table
    client = tunnel_client(server)
    try:
        schema = describe_table_schema(client, "orders")
        assert schema == TableSchema(KEY_SCHEMA, DEFINED)
        assert describe_table_schema(client.config, "orders") == schema
        with pytest.raises(ObjectNotExistError):
            describe_table_schema(client, "no_such_table")
    finally:
        client.close()


def _expected_rows(records, row):
    """The rows the records must become, written out from the writes the
    fixture made (only channel and sequence are taken from the records)."""
    expected = []
    for order_id in range(1, 5):
        record = next(r for r in records if r.is_full_data and r.key["order_id"] == order_id)
        expected.append(row(
            "eu", order_id, SHARD, "put", None, True, record.channel_id, None, None, None,
            1.5 * order_id, True, f'{{"note":"n{order_id}"}}', "{}",
        ))

    def stream(action, order_id, amount, paid, columns_json, origin_json):
        record = next(r for r in records if not r.is_full_data and r.action is action and r.key["order_id"] == order_id)
        seq = record.sequence
        return row("eu", order_id, SHARD, action.value, seq.timestamp, False, record.channel_id, *seq,
                   amount, paid, columns_json, origin_json)

    expected.append(stream(Action.UPDATE, 1, 9.25, None, '{"note":null}', '{"amount":1.5}'))
    # "free" is not a DOUBLE: it stays in the JSON (base64 bytes as to_dict gives them).
    expected.append(stream(Action.PUT, 5, None, None, '{"amount":"free","blob":"AP8="}', "{}"))
    expected.append(stream(Action.DELETE, 2, None, None, "{}", '{"amount":3.0}'))
    return expected


def test_records_become_rows_with_typed_key_fields_and_json_for_the_rest(table):
    server, records = table
    assert len(records) == 7 and sum(r.is_full_data for r in records) == 4
    client = tunnel_client(server)
    schema = describe_table_schema(client, "orders")
    client.close()
    to_rows = ToRows(schema.key_schema, value_columns=schema.defined_columns)
    expected = _expected_rows(records, to_rows.row_type)
    with beam.Pipeline(options=_options()) as pipeline:
        rows = pipeline | beam.Create(records) | to_rows
        assert rows.element_type is to_rows.row_type
        assert_that(rows, equal_to(expected))


def test_a_dataframe_counts_and_sums_the_changes_by_action(table):
    _, records = table
    to_rows = ToRows(KEY_SCHEMA, value_columns=[("amount", "DOUBLE")])
    with beam.Pipeline(options=_options()) as pipeline:
        rows = pipeline | beam.Create(records) | to_rows
        frame = to_dataframe(rows)
        counts = frame[["action", "order_id"]].groupby("action").count()
        sums = frame[["action", "amount"]].groupby("action").sum()
        assert_that(
            to_pcollection(counts, include_indexes=True) | "Counts" >> beam.Map(tuple),
            equal_to([("put", 5), ("update", 1), ("delete", 1)]),
            label="CountsByAction",
        )
        # The mistyped "free" amount is None in its row, so the sum skips it.
        assert_that(
            to_pcollection(sums, include_indexes=True) | "Sums" >> beam.Map(tuple),
            equal_to([("put", 15.0), ("update", 9.25), ("delete", 0.0)]),
            label="AmountByAction",
        )


def test_a_record_of_another_key_fails_the_pipeline_naming_it(table):
    _, records = table
    wrong = ToRows((("region", "STRING"), ("order_id", "STRING"), ("shard", "BINARY")))
    with pytest.raises(Exception, match=r"from channel '[^']+' has primary key .*does not match key_schema"):
        with beam.Pipeline(options=_options()) as pipeline:
            _ = pipeline | beam.Create(records[:1]) | wrong


def test_the_row_type_is_stable_registered_and_picklable():
    first = row_type(KEY_SCHEMA, [("amount", "DOUBLE")])
    assert row_type(list(KEY_SCHEMA), [("amount", "double")]) is first
    assert ToRows(KEY_SCHEMA, [("amount", "DOUBLE")]).row_type is first
    assert row_type(KEY_SCHEMA) is not first
    assert list(first._fields) == [
        "region", "order_id", "shard", "action", "write_time_us", "is_full_data", "channel_id",
        "sequence_epoch", "sequence_timestamp_us", "sequence_row_index", "amount", "columns_json",
        "origin_columns_json",
    ]
    coder = beam.coders.registry.get_coder(first)
    assert isinstance(coder, RowCoder)
    row = first("eu", 1, SHARD, "put", None, True, "c", None, None, None, None, "{}", "{}")
    assert coder.decode(coder.encode(row)) == row
    assert pickle.loads(pickle.dumps(row)) == row


def test_field_names_rename_columns_that_cannot_be_fields():
    renamed = row_type((("_id", "STRING"),), [("action", "STRING"), ("from", "INTEGER")],
                       field_names={"_id": "id_", "action": "action_col", "from": "from_"})
    assert renamed._fields[:1] == ("id_",) and renamed._fields[-4:-2] == ("action_col", "from_")


@pytest.mark.parametrize(
    "args, message",
    [
        (((),), "key_schema must have 1 to 4 columns, got ()"),
        (("region STRING",), "key_schema must be a sequence of (name, type) pairs, got 'region STRING'"),
        (({"region": "STRING"},), "key_schema must be a sequence of (name, type) pairs, got {'region': 'STRING'}"),
        (([("a", "STRING")] * 5,), "key_schema must have 1 to 4 columns"),
        (([("region",)],), "key_schema entries must be (name, type) pairs, got ('region',)"),
        (([("region", "DOUBLE")],), "key_schema: column 'region' has type 'DOUBLE'; expected one of INTEGER, STRING"),
        (([("", "STRING")],), "key_schema: a column name must be a non-empty str, got ''"),
        (([(7, "STRING")],), "key_schema: a column name must be a non-empty str, got 7"),
        (([("id", "STRING")], [("v", "DATE")]), "value_columns: column 'v' has type 'DATE'"),
        (([("id", "STRING")], "v"), "value_columns must be a sequence of (name, type) pairs, got 'v'"),
        (([("id", "STRING")], [("id", "STRING")]), "columns 'id' and 'id' would both be row field 'id'"),
        (([("action", "STRING")],), "column 'action' would be row field 'action', which every row already has"),
        (([("_id", "STRING")],), "column '_id' cannot be a row field as '_id'"),
        (([("class", "STRING")],), "column 'class' cannot be a row field as 'class'"),
        (([("id", "STRING")], None, {"nope": "x"}), "field_names renames ['nope'], which are not key or value"),
        (([("id", "STRING")], None, {"id": "1d"}), "column 'id' cannot be a row field as '1d'"),
        (([("id", "STRING")], None, [("id", "x")]), "field_names must be a mapping of column name to field name"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_bad_arguments_are_refused_at_construction_showing_the_value(args, message):
    with pytest.raises(ConfigError) as caught:
        ToRows(*args)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "client, table_name, message",
    [
        ("https://x", "t", "client must be a TunnelClient or a TunnelConfig, got 'https://x'"),
        (None, "t", "client must be a TunnelClient or a TunnelConfig, got None"),
    ],
)
def test_describe_table_schema_refuses_bad_arguments(client, table_name, message):
    with pytest.raises(ConfigError) as caught:
        describe_table_schema(client, table_name)
    assert message in str(caught.value)


@pytest.mark.parametrize("table_name", ["", None, 5])
def test_describe_table_schema_refuses_a_bad_table_name(table_name):
    # Refused before any request: nothing listens on this port.
    config = TunnelConfig.resolve("http://127.0.0.1:9", "inst", "key-id", "key-secret")
    with pytest.raises(ConfigError) as caught:
        describe_table_schema(config, table_name)
    assert f"table_name must be a non-empty str, got {table_name!r}" in str(caught.value)
