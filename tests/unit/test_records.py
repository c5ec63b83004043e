"""ChangeRecord and decode_records, from real serialized ReadRecords answers."""

import base64
import json
import pickle

import pytest

from beam_tunnel.errors import PlainBufferError, ProtocolError
from beam_tunnel.protocol import tunnel_pb2
from beam_tunnel.protocol.plainbuffer import encode_row, encode_row_without_pk
from beam_tunnel.protocol.rows import Cell, CellOp, Row, SequenceInfo
from beam_tunnel.records import Action, ChangeRecord, Column, ColumnOp, decode_records

KEY = (("tenant", "acme"), ("id", 7))
SEQ_PUT = SequenceInfo(0, 1_700_000_000_000_001, 0)
SEQ_UPDATE = SequenceInfo(0, 1_700_000_000_000_002, 1)
SEQ_DELETE = SequenceInfo(1, 1_700_000_000_000_003, 0)


def _wire(records):
    """Serialize a ReadRecordsResponse and parse it back, as the client gets it."""
    response = tunnel_pb2.ReadRecordsResponse(next_token="t")
    for action_type, record, origin in records:
        added = response.records.add(action_type=action_type, record=record)
        if origin is not None:
            added.origin_record = origin
    return tunnel_pb2.ReadRecordsResponse.FromString(response.SerializeToString()).records


@pytest.fixture
def batch():
    put = Row(
        KEY, (Cell("name", "Ann", 1_700_000_000_000), Cell("photo", b"\x89PNG", 1_700_000_000_000)), sequence=SEQ_PUT
    )
    update = Row(
        KEY,
        (
            Cell("name", "Bea", 1_700_000_000_500),
            Cell("photo", None, 1_700_000_000_000, CellOp.DELETE_ONE_VERSION),
            Cell("nick", None, None, CellOp.DELETE_ALL_VERSIONS),
        ),
        sequence=SEQ_UPDATE,
    )
    origin = encode_row_without_pk((Cell("name", "Ann", 1_700_000_000_000), Cell("score", float("nan"), 3)))
    delete = Row(KEY, deleted=True, sequence=SEQ_DELETE)
    full = Row((("tenant", "acme"), ("id", 8)), (Cell("name", "Cy", 1_600_000_000_000),))
    return _wire(
        [
            (tunnel_pb2.PUT_ROW, encode_row(put), None),
            (tunnel_pb2.UPDATE_ROW, encode_row(update), origin),
            (tunnel_pb2.DELETE_ROW, encode_row(delete), None),
            (tunnel_pb2.PUT_ROW, encode_row(full), None),
        ]
    )


def test_stream_put(batch):
    record = decode_records(batch, "shard-1")[0]
    assert record == ChangeRecord(
        action=Action.PUT,
        primary_key=KEY,
        columns=(
            Column("name", "Ann", 1_700_000_000_000, ColumnOp.PUT),
            Column("photo", b"\x89PNG", 1_700_000_000_000, ColumnOp.PUT),
        ),
        origin_columns=(),
        sequence=SEQ_PUT,
        channel_id="shard-1",
    )
    assert record.key == {"tenant": "acme", "id": 7}
    assert list(record.key) == ["tenant", "id"]
    assert record.write_time_us == 1_700_000_000_000_001
    assert record.is_full_data is False


def test_stream_update_with_origin(batch):
    record = decode_records(batch, "shard-1")[1]
    assert record.action is Action.UPDATE
    assert record.columns == (
        Column("name", "Bea", 1_700_000_000_500, ColumnOp.PUT),
        Column("photo", None, 1_700_000_000_000, ColumnOp.DELETE_ONE_VERSION),
        Column("nick", None, None, ColumnOp.DELETE_ALL_VERSIONS),
    )
    assert [(c.name, c.op) for c in record.origin_columns] == [("name", ColumnOp.PUT), ("score", ColumnOp.PUT)]
    assert record.origin_columns[0] == Column("name", "Ann", 1_700_000_000_000, ColumnOp.PUT)
    assert record.sequence == SEQ_UPDATE


def test_stream_delete(batch):
    record = decode_records(batch, "shard-1")[2]
    assert (record.action, record.primary_key, record.columns, record.origin_columns) == (Action.DELETE, KEY, (), ())
    assert record.sequence == SEQ_DELETE


def test_delete_without_marker_is_still_a_delete():
    # Whether the service writes DELETE_ROW_MARKER is unknown: action_type decides.
    batch = _wire([(tunnel_pb2.DELETE_ROW, encode_row(Row(KEY, sequence=SEQ_DELETE)), None)])
    assert decode_records(batch, "c")[0].action is Action.DELETE


def test_full_data_record(batch):
    record = decode_records(batch, "BaseData_1")[3]
    assert record.action is Action.PUT
    assert record.sequence is None and record.write_time_us is None and record.is_full_data
    assert record.columns == (Column("name", "Cy", 1_600_000_000_000, ColumnOp.PUT),)


def test_empty_batch():
    assert decode_records(_wire([]), "c") == []


def test_records_are_immutable_and_pickle(batch):
    records = decode_records(batch, "shard-1")
    with pytest.raises(AttributeError):
        records[0].action = Action.DELETE
    with pytest.raises(AttributeError):
        records[0].columns[0].value = "x"
    restored = pickle.loads(pickle.dumps(records))
    # NaN never equals itself, so the update's origin is compared through to_dict.
    assert restored[0] == records[0] and restored[2:] == records[2:]
    assert [r.to_dict() for r in restored] == [r.to_dict() for r in records]
    assert restored[0].action is Action.PUT and restored[0].columns[0].op is ColumnOp.PUT


def test_to_dict_is_json_with_readable_values(batch):
    put, update, _, full = decode_records(batch, "shard-1")
    as_dict = json.loads(json.dumps(put.to_dict(), allow_nan=False))
    assert as_dict == {
        "channel_id": "shard-1",
        "action": "put",
        "primary_key": {"tenant": "acme", "id": 7},
        "columns": [
            {"name": "name", "value": "Ann", "timestamp_ms": 1_700_000_000_000, "op": "put"},
            {
                "name": "photo",
                "value": base64.b64encode(b"\x89PNG").decode(),
                "timestamp_ms": 1_700_000_000_000,
                "op": "put",
            },
        ],
        "origin_columns": [],
        "sequence": {
            "id": "00000000:00060a24181e4001:00000000",
            "epoch": 0,
            "timestamp_us": 1_700_000_000_000_001,
            "row_index": 0,
        },
        "write_time_us": 1_700_000_000_000_001,
        "is_full_data": False,
    }
    update_dict = json.loads(json.dumps(update.to_dict(), allow_nan=False))
    assert update_dict["columns"][2] == {
        "name": "nick", "value": None, "timestamp_ms": None, "op": "delete_all_versions"
    }
    assert update_dict["origin_columns"][1]["value"] == "NaN"
    full_dict = full.to_dict()
    assert full_dict["sequence"] is None and full_dict["write_time_us"] is None and full_dict["is_full_data"] is True


def test_sequence_id_sorts_like_the_records():
    ids = [str(SequenceInfo(*parts)) for parts in [(0, 5, 2), (0, 16, 0), (1, 0, 0), (0, 16, 1)]]
    assert sorted(ids) == [ids[0], ids[1], ids[3], ids[2]]


def test_corrupt_record_names_its_index_field_and_channel():
    good = encode_row(Row(KEY, sequence=SEQ_PUT))
    bad = bytearray(good)
    bad[-1] ^= 0xFF
    records = _wire([(1, good, None), (1, good, None), (1, bytes(bad), None)])
    expected = r"record 2 of the batch from channel 'ch-9', field record: row checksum"
    with pytest.raises(PlainBufferError, match=expected) as info:
        decode_records(records, "ch-9")
    assert info.value.offset == len(good) - 1


def test_corrupt_origin_record_is_named():
    origin = encode_row_without_pk((Cell("name", "Ann", 1),))[:-3]
    records = _wire([(2, encode_row(Row(KEY, (Cell("name", "Bo", 2),), sequence=SEQ_UPDATE)), origin)])
    with pytest.raises(PlainBufferError, match=r"record 0 .* field origin_record: input ends") as info:
        decode_records(records, "c")
    assert info.value.cell == "name"


def test_unknown_action_type_is_not_read_as_put():
    # A proto2 closed enum parks action_type=7 in the unknown fields, and the
    # field then reads as PUT_ROW; the record must not pass as a put.
    record = encode_row(Row(KEY))
    raw_record = b"\x08\x07\x12" + bytes((len(record),)) + record
    raw_response = b"\x0a" + bytes((len(raw_record),)) + raw_record + b"\x12\x01t"
    response = tunnel_pb2.ReadRecordsResponse.FromString(raw_response)
    assert response.records[0].action_type == tunnel_pb2.PUT_ROW
    with pytest.raises(ProtocolError, match="record 0 .* no action_type this client knows"):
        decode_records(response.records, "c")


def test_increment_columns_are_refused():
    # The service logs an increment's result as a put; an INCREMENT cell in a
    # record is malformed.
    records = _wire([(2, encode_row(Row(KEY, (Cell("n", 1, None, CellOp.INCREMENT),), sequence=SEQ_UPDATE)), None)])
    with pytest.raises(PlainBufferError, match=r"record 0 .* unexpected cell type 0x04") as info:
        decode_records(records, "c")
    assert info.value.cell == "n"
