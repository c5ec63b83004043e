"""ChangeRecordCoder: exact round trips, determinism, clear errors on bad
input, registration, and records crossing a GroupByKey on FnApiRunner."""

from __future__ import annotations

import math
import os
import pickle
import struct
import subprocess
import sys
import textwrap
from typing import Tuple

import apache_beam as beam
import pytest
from apache_beam.coders import coders as beam_coders
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners import pipeline_context
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beam_tunnel.beam.coders import ChangeRecordCoder, CoderError
from beam_tunnel.protocol.rows import AUTO_INCREMENT, INF_MAX, INF_MIN, SequenceInfo
from beam_tunnel.records import Action, ChangeRecord, Column, ColumnOp

CODER = ChangeRecordCoder()
WRITE_TIME_US = 1_764_600_000_123_456
TS_MS = WRITE_TIME_US // 1000


def exact(obj):
    """A form of ``obj`` that is equal only when every value has the same
    type and the same bits (so NaN equals its copy, 0.0 differs from -0.0,
    1 from True, and a str from bytes)."""
    if isinstance(obj, float):
        return ("float", struct.pack(">d", obj))
    if isinstance(obj, tuple):
        return (type(obj).__name__, tuple(exact(item) for item in obj))
    return (type(obj).__name__, obj)


def round_trip(record: ChangeRecord) -> ChangeRecord:
    return CODER.decode(CODER.encode(record))


def typical_record(i: int = 0, **changes) -> ChangeRecord:
    record = ChangeRecord(
        action=Action.UPDATE,
        primary_key=(("region", "cn-hangzhou"), ("order_id", 1_000_000 + i), ("shard", b"\x00\x07")),
        columns=(
            Column("customer", f"customer-{i}@example.com", TS_MS, ColumnOp.PUT),
            Column("amount_cents", 12_345 + i, TS_MS, ColumnOp.PUT),
            Column("price", 19.99, TS_MS, ColumnOp.PUT),
            Column("paid", True, TS_MS, ColumnOp.PUT),
            Column("note", None, None, ColumnOp.DELETE_ALL_VERSIONS),
        ),
        origin_columns=(),
        sequence=SequenceInfo(1, WRITE_TIME_US + i, i % 3),
        channel_id="Stream_orders_1795506053958315_2",
    )
    return record._replace(**changes)


# ---- strategies ----------------------------------------------------------------

EDGE_INTS = [0, 1, -1, 127, 128, -128, -129, 255, 256, 2**31 - 1, -(2**31), 2**53 + 1, 2**63 - 1, -(2**63),
             2**64, -(2**64) - 1, 2**127, -(2**127), 2**130 + 5, -(2**200)]
EDGE_FLOATS = [0.0, -0.0, math.inf, -math.inf, math.nan, -math.nan, 5e-324, 1.7976931348623157e308,
               struct.unpack(">d", bytes.fromhex("7ff8000000000abc"))[0]]

ints = st.one_of(st.integers(), st.sampled_from(EDGE_INTS))
floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(EDGE_FLOATS))
texts = st.one_of(st.text(max_size=80), st.text(min_size=60, max_size=300), st.sampled_from(["", "é", "日本語", "🚀" * 40]))
blobs = st.one_of(st.binary(max_size=80), st.binary(min_size=60, max_size=400), st.just(b""))
values = st.one_of(
    st.none(), st.booleans(), ints, floats, texts, blobs, st.sampled_from([INF_MIN, INF_MAX, AUTO_INCREMENT])
)
names = st.one_of(st.text(max_size=20), st.text(min_size=120, max_size=200))
# Few distinct timestamps, so consecutive columns often share one (the
# coder's "same timestamp" mark) and sometimes share an equal bool or float.
timestamps = st.one_of(st.none(), st.sampled_from([0, 1, TS_MS, -5, True, 1.0, 2**70]), ints)
columns = st.builds(Column, names, values, timestamps, st.sampled_from(list(ColumnOp)))
sequences = st.one_of(st.none(), st.builds(SequenceInfo, ints, ints, ints))
records = st.builds(
    ChangeRecord,
    action=st.sampled_from(list(Action)),
    primary_key=st.lists(st.tuples(names, values), max_size=5).map(tuple),
    columns=st.lists(columns, max_size=12).map(tuple),
    origin_columns=st.lists(columns, max_size=4).map(tuple),
    sequence=sequences,
    channel_id=names,
)


# ---- round trips -----------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records)
def test_every_generated_record_round_trips_exactly(record):
    back = round_trip(record)
    assert exact(back) == exact(record)
    assert exact(tuple(back.key.items())) == exact(tuple(record.key.items()))
    assert back.write_time_us == record.write_time_us
    assert back.is_full_data is record.is_full_data
    # Decoding is the inverse of encoding, and encoding is a function.
    assert CODER.encode(back) == CODER.encode(record)


def test_typical_record_round_trips_and_is_small():
    record = typical_record()
    encoded = CODER.encode(record)
    assert exact(CODER.decode(encoded)) == exact(record)
    # Its pickle is about twice the size: class and enum paths in every element.
    assert len(encoded) < len(pickle.dumps(record, pickle.HIGHEST_PROTOCOL)) / 1.5


@pytest.mark.parametrize(
    "value",
    [None, True, False, 0, 1, -1, 2**63 - 1, -(2**63), 10**40, -(10**40), 0.0, -0.0, math.inf, -math.inf,
     math.nan, "", "x" * 63, "x" * 64, "ü" * 200, b"", b"\x00" * 63, b"\xff" * 64, INF_MIN, INF_MAX,
     AUTO_INCREMENT],
    ids=repr,
)
def test_each_value_type_survives_in_key_column_and_origin(value):
    record = typical_record(
        primary_key=(("k", value),),
        columns=(Column("c", value, TS_MS),),
        origin_columns=(Column("o", value, None, ColumnOp.DELETE_ONE_VERSION),),
    )
    back = round_trip(record)
    assert exact(back) == exact(record)
    for got in (back.primary_key[0][1], back.columns[0].value, back.origin_columns[0].value):
        assert type(got) is type(value)
    if value in (INF_MIN, INF_MAX, AUTO_INCREMENT):
        assert back.primary_key[0][1] is value


def test_full_data_record_has_no_sequence_after_the_trip():
    record = typical_record(action=Action.PUT, sequence=None, channel_id="BaseData_orders_0")
    back = round_trip(record)
    assert back.sequence is None and back.is_full_data and back.write_time_us is None
    assert exact(back) == exact(record)


def test_large_values_and_many_columns():
    blob = bytes(range(256)) * 4096  # 1 MiB
    many = tuple(Column(f"c{i:03d}", i, TS_MS + (i % 2), ColumnOp.PUT) for i in range(300))
    record = typical_record(columns=many + (Column("blob", blob, TS_MS),), primary_key=(("k", "v" * 70_000),))
    back = round_trip(record)
    assert exact(back) == exact(record)
    assert back.columns[-1].value == blob


def test_enums_and_sentinels_come_back_as_the_same_objects():
    back = round_trip(typical_record(primary_key=(("k", INF_MIN),)))
    assert back.action is Action.UPDATE
    assert back.columns[0].op is ColumnOp.PUT and back.columns[-1].op is ColumnOp.DELETE_ALL_VERSIONS
    assert back.primary_key[0][1] is INF_MIN


# ---- determinism -------------------------------------------------------------------


def test_coder_says_it_is_deterministic():
    assert CODER.is_deterministic()
    assert CODER.as_deterministic_coder("GroupByRecord") is CODER


def test_equal_records_built_differently_encode_identically():
    first = typical_record(7)
    # Same values, none of the same objects: rebuilt strings and big ints,
    # lists turned into tuples, enums looked up by value.
    second = ChangeRecord(
        Action("update"),
        tuple([("reg" + "ion", "cn-" + "hangzhou"), ("order_id", int("1000007")), ("shard", bytes([0, 7]))]),
        tuple(Column._make([c.name[:1] + c.name[1:], c.value, c.timestamp_ms, ColumnOp(c.op.value)])
              for c in first.columns),
        (),
        SequenceInfo(int("1"), int(str(WRITE_TIME_US + 7)), 7 % 3),
        "".join(["Stream_orders_", "1795506053958315_2"]),
    )
    assert second == first and second is not first
    assert CODER.encode(second) == CODER.encode(first) == CODER.encode(first)


def test_plain_strings_for_action_and_op_encode_as_the_members():
    record = typical_record()
    loose = record._replace(
        action="update", columns=tuple(c._replace(op=c.op.value) for c in record.columns)
    )
    assert CODER.encode(loose) == CODER.encode(record)
    assert round_trip(loose).action is Action.UPDATE


def test_values_python_calls_equal_but_tablestore_does_not_encode_differently():
    base = typical_record()
    variants = [base._replace(columns=(Column("c", v, TS_MS),)) for v in (1, 1.0, True)]
    assert variants[0] == variants[1] == variants[2]
    assert len({CODER.encode(v) for v in variants}) == 3
    zero, negative_zero = (base._replace(columns=(Column("c", v, TS_MS),)) for v in (0.0, -0.0))
    assert CODER.encode(zero) != CODER.encode(negative_zero)


def test_same_bytes_in_other_processes_whatever_the_hash_seed():
    script = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, sys.argv[1])
        from test_coders import CODER, typical_record
        sys.stdout.write(CODER.encode(typical_record(3)).hex())
        """
    )
    here = os.path.dirname(os.path.abspath(__file__))
    outputs = set()
    for seed in ("1", "2"):  # and this process's own random seed
        env = dict(os.environ, PYTHONHASHSEED=seed)
        done = subprocess.run(
            [sys.executable, "-c", script, here], env=env, capture_output=True, text=True, timeout=120, check=True
        )
        outputs.add(done.stdout)
    assert outputs == {CODER.encode(typical_record(3)).hex()}


# ---- bad input ---------------------------------------------------------------------


def _corrupt(data: bytes, offset: int, byte: int) -> bytes:
    return data[:offset] + bytes([byte]) + data[offset + 1 :]


GOOD = CODER.encode(typical_record())


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"", "ends early"),
        (GOOD[:1], "ends early"),
        (GOOD[:-1], "truncated"),
        (GOOD[:20], "truncated"),
        (GOOD + b"\x00", "1 unexpected byte(s) after the record"),
        (_corrupt(GOOD, 0, 2), "format version 2 is not one this coder reads (it reads 1)"),
        (_corrupt(GOOD, 1, 0x0B), "flags byte 0x0b"),
        (_corrupt(GOOD, 1, 0x07), "flags byte 0x07"),
        (b"\x01\x00\x02ch\x01\x01k\xc5", "unknown value tag 0xc5; reading primary_key[0]"),
        (b"\x01\x00\x02ch\x00\x01\x01c\x07\x10\x10\x00", "unknown column op code 7; reading columns[0]"),
        (b"\x01\x00\x02ch\x00\x01\x01c\x00\x10\x09\x00", "'same timestamp' mark with no integer timestamp"),
        (b"\x01\x00\x02\xff\xfe\x00\x00\x00", "not valid UTF-8"),
        (b"\x01\x00\x02ch\x00\x00\x01" + b"\xff" * 11, "varint longer than 10 bytes"),
    ],
    ids=repr,
)
def test_corrupt_bytes_raise_a_coder_error_saying_what(data, expected):
    with pytest.raises(CoderError) as caught:
        CODER.decode(data)
    message = str(caught.value)
    assert expected in message
    assert f"from {len(data)} bytes" in message
    assert isinstance(caught.value, ValueError)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mangled_bytes_decode_or_raise_coder_error_only(data):
    encoded = bytearray(CODER.encode(data.draw(records)))
    for _ in range(data.draw(st.integers(1, 4))):
        offset = data.draw(st.integers(0, len(encoded) - 1))
        encoded[offset] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(encoded)))
    try:
        decoded = CODER.decode(bytes(encoded[:cut]))
    except CoderError:
        return
    assert isinstance(decoded, ChangeRecord)


@pytest.mark.parametrize(
    "record, expected",
    [
        ("not a record", "cannot encode 'not a record': a str, not a ChangeRecord"),
        (typical_record(channel_id=None), "field channel_id = None: a name must be a str, not NoneType"),
        (typical_record(action="upsert"), "field action = 'upsert': not an Action"),
        (typical_record(columns=(Column("c", [1, 2], 0),)), "field columns[0].value = [1, 2]: a list is not"),
        (typical_record(columns=(Column("c", 1, 0, "zap"),)), "field columns[0].op = 'zap': not a ColumnOp"),
        (typical_record(origin_columns=(Column(b"c", 1, 0),)), "field origin_columns[0].name = b'c'"),
        (typical_record(primary_key=(("k", "\udc80"),)), "field primary_key[0].value = '\\udc80': not valid Unicode"),
        (typical_record(primary_key=(("k",),)), "field primary_key[0] = ('k',): must be a (name, value) pair"),
        (typical_record(sequence=(1, 2)), "field sequence = (1, 2): must be None or a SequenceInfo"),
        (typical_record(sequence=SequenceInfo(1, "2", {})), "field sequence.row_index = {}: a dict is not"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_unencodable_records_name_the_field(record, expected):
    with pytest.raises(CoderError) as caught:
        CODER.encode(record)
    assert expected in str(caught.value)


# ---- Beam integration ------------------------------------------------------------------


def test_registered_for_change_record_and_picklable():
    assert beam.coders.registry.get_coder(ChangeRecord) == CODER
    kv_coder = beam.coders.registry.get_coder(beam.typehints.Tuple[str, ChangeRecord])
    assert kv_coder == beam_coders.TupleCoder([beam_coders.StrUtf8Coder(), CODER])
    copy = pickle.loads(pickle.dumps(CODER))
    assert copy == CODER and hash(copy) == hash(CODER) and copy != beam_coders.PickleCoder()
    assert exact(copy.decode(CODER.encode(typical_record()))) == exact(typical_record())
    # Through the path a runner takes: the pipeline proto and back.
    context = pipeline_context.PipelineContext()
    proto = CODER.to_runner_api(context)
    assert beam_coders.Coder.from_runner_api(proto, context) == CODER


def _coder_of(pipeline, pcoll):
    """The coder the runner is told to use for ``pcoll``."""
    proto, context = pipeline.to_runner_api(return_context=True)
    coder_id = proto.components.pcollections[context.pcollections.get_id(pcoll)].coder_id
    # Rebuilt from the proto alone, as a runner's workers rebuild it.
    return pipeline_context.PipelineContext(proto.components).coders.get_by_id(coder_id)


def test_typed_steps_use_it_and_records_cross_group_by_key_unchanged():
    records = [typical_record(i) for i in range(40)]
    records += [
        typical_record(40, sequence=None, action=Action.PUT, channel_id="BaseData_orders_0"),
        typical_record(41, columns=(Column("odd", math.nan, None), Column("z", -0.0, 1), Column("b", b"", 1))),
        typical_record(42, primary_key=(("k", "日本語"), ("n", -(2**63)))),
    ]
    options = PipelineOptions(["--runner=FnApiRunner", "--direct_num_workers=1"])
    with beam.Pipeline(options=options) as pipeline:
        typed = pipeline | beam.Create(records) | "Typed" >> beam.Map(lambda r: r).with_output_types(ChangeRecord)
        by_channel = (
            typed
            | "ByChannel" >> beam.Map(lambda r: (r.channel_id, r)).with_output_types(Tuple[str, ChangeRecord])
            | "GroupByChannel" >> beam.GroupByKey()
            | "Ungroup" >> beam.FlatMap(lambda kv: kv[1]).with_output_types(ChangeRecord)
        )
        # The record itself as a key needs a deterministic key coder.
        by_record = (
            typed
            | "AsKey" >> beam.Map(lambda r: (r, 1)).with_output_types(Tuple[ChangeRecord, int])
            | "GroupByRecord" >> beam.GroupByKey()
            | "Keys" >> beam.Map(lambda kv: kv[0]).with_output_types(ChangeRecord)
        )
        expected = sorted(repr(exact(r)) for r in records)
        assert_that(by_channel | "ExactA" >> beam.Map(lambda r: repr(exact(r))), equal_to(expected), label="A")
        assert_that(by_record | "ExactB" >> beam.Map(lambda r: repr(exact(r))), equal_to(expected), label="B")
        assert typed.element_type is ChangeRecord
        assert _coder_of(pipeline, typed) == CODER
        shuffled = _coder_of(pipeline, by_channel.producer.inputs[0].producer.inputs[0])
        assert CODER in shuffled._get_component_coders()
