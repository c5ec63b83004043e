"""The C decoder (``_pbdecode_c``) against the pure-Python one, input by
input: for everything the encoder writes, C must decode it itself, to the
same objects; for corrupt input (bit flips, truncations, random bytes) it
must refuse (answer None), so the Python decoder reports the error, and the
public ``decode_many`` must raise exactly what the Python decoder raises.
"""

import gc
import os
import struct
from collections import UserList

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beam_tunnel.protocol import _pbdecode
from beam_tunnel.protocol.plainbuffer import HEADER, encode_row, encode_row_without_pk, encode_rows
from beam_tunnel.protocol.rows import AUTO_INCREMENT, INF_MAX, INF_MIN, Cell, CellOp, Row, SequenceInfo
from beam_tunnel.records import _RECORD_OPS, Column, ColumnOp

_C = _pbdecode._pbdecode_c

if _C is None and os.environ.get("CI") == "true":
    pytest.fail("the C decoder was not built; CI installs with gcc, so the build is broken", pytrace=False)
pytestmark = pytest.mark.skipif(_C is None, reason="the C decoder is not built (no compiler at install time)")

# (pk_optional, single, cell_type, ops, put, row_type): how plainbuffer.py
# and records.py call the decoder.
ROW = (False, True, Cell, _pbdecode.CELL_OPS, CellOp.PUT, Row)
ROWS = (False, False, Cell, _pbdecode.CELL_OPS, CellOp.PUT, Row)
WITHOUT_PK = (True, True, Cell, _pbdecode.CELL_OPS, CellOp.PUT, Row)
RECORD = (False, True, Column, _RECORD_OPS, ColumnOp.PUT, tuple)
ORIGIN = (True, True, Column, _RECORD_OPS, ColumnOp.PUT, Row)
CALLS = (ROW, ROWS, WITHOUT_PK, RECORD, ORIGIN)


def _canonical(obj):
    """Equal only for the same types all the way down and floats with the
    same bits (NaN, -0.0); sentinels compare by identity."""
    if isinstance(obj, (tuple, list)):
        return (type(obj), tuple(_canonical(item) for item in obj))
    if type(obj) is float:
        return (float, struct.pack("<d", obj))
    return (type(obj), obj)


def _python(inputs, call):
    try:
        return ("rows", _canonical(_pbdecode.decode_many_python(inputs, *call)))
    except _pbdecode.Failure as failure:
        return ("error", failure.message, failure.offset, failure.cell, failure.index, failure.args)


def _public(inputs, call):
    try:
        return ("rows", _canonical(_pbdecode.decode_many(inputs, *call)))
    except _pbdecode.Failure as failure:
        return ("error", failure.message, failure.offset, failure.cell, failure.index, failure.args)


def _check(inputs, call, must_decode=False):
    """C agrees with Python on ``inputs``; returns Python's outcome."""
    expected = _python(inputs, call)
    rows = _C.decode_many(inputs, *call)
    if expected[0] == "rows":
        if must_decode:
            assert rows is not None, "C gave up on input the encoder wrote"
        if rows is not None:
            assert ("rows", _canonical(rows)) == expected
    else:
        assert rows is None, f"C decoded input Python refuses with {expected[1]!r}"
    assert _public(inputs, call) == expected
    return expected


def test_the_public_decoder_uses_c():
    assert _pbdecode.IMPLEMENTATION == "c"
    assert _pbdecode._c_decode_many is _C.decode_many


# --- strategies: like test_plainbuffer's, with NaNs and non-ASCII text ----

_names = st.text(max_size=12)
_int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_floats = st.floats() | st.integers(0, 2**64 - 1).map(lambda bits: struct.unpack("<d", struct.pack("<Q", bits))[0])
_values = st.one_of(_int64, _floats, st.booleans(), st.text(max_size=40), st.binary(max_size=40), st.text(min_size=60, max_size=300))
_key_values = st.one_of(
    _int64, st.text(max_size=20), st.binary(max_size=20), st.sampled_from([INF_MIN, INF_MAX, AUTO_INCREMENT])
)
_timestamps = st.integers(min_value=0, max_value=2**63 - 1)
_cells = st.one_of(
    st.builds(Cell, _names, _values, st.none() | _timestamps, st.just(CellOp.PUT)),
    st.builds(Cell, _names, st.none(), _timestamps, st.just(CellOp.DELETE_ONE_VERSION)),
    st.builds(Cell, _names, st.none(), st.none(), st.just(CellOp.DELETE_ALL_VERSIONS)),
    st.builds(Cell, _names, _int64, st.none(), st.just(CellOp.INCREMENT)),
)
_u32s = st.integers(min_value=0, max_value=2**32 - 1)
_rows = st.builds(
    Row,
    st.lists(st.tuples(_names, _key_values), min_size=1, max_size=4).map(tuple),
    st.lists(_cells, max_size=6).map(tuple),
    st.booleans(),
    st.none() | st.builds(SequenceInfo, _u32s, _int64, _u32s),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_rows, min_size=1, max_size=6))
def test_encoded_rows_decode_the_same(rows):
    encoded = [encode_row(row) for row in rows]
    for call in (ROW, RECORD):
        _check(encoded, call, must_decode=call is ROW or not any(c.op is CellOp.INCREMENT for r in rows for c in r.cells))
    _check([encode_rows(rows)], ROWS, must_decode=True)
    for row in rows:
        assert _check([encode_row(row)], ROW)[1] == _canonical([row])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(_cells, max_size=6).map(tuple), min_size=1, max_size=4))
def test_rows_without_pk_decode_the_same(cell_lists):
    encoded = [encode_row_without_pk(cells) for cells in cell_lists]
    _check(encoded, WITHOUT_PK, must_decode=True)
    _check(encoded, ORIGIN, must_decode=not any(c.op is CellOp.INCREMENT for cells in cell_lists for c in cells))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_rows, st.sampled_from(CALLS))
def test_every_truncation_and_bit_flip_fails_the_same(row, call):
    data = encode_row(row) if call[0] is False else encode_row_without_pk(row.cells)
    good = encode_row(Row((("k", 1),), (Cell("v", "x", 1),)))
    for end in range(len(data)):
        _check([data[:end]], call)
        _check([good, data[:end], good], call)  # which input: index 1
    for offset in range(len(data)):
        for bit in range(8):
            bad = bytearray(data)
            bad[offset] ^= 1 << bit
            _check([good, bytes(bad)], call)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120), st.booleans(), st.sampled_from(CALLS))
def test_random_bytes_fail_the_same(tail, with_header, call):
    _check([(HEADER if with_header else b"") + tail], call)


@settings(max_examples=200, deadline=None)
@given(_rows, st.data())
def test_spliced_and_overwritten_bytes_fail_the_same(row, data):
    # Random edits anywhere: lengths and tags as well as payloads.
    raw = bytearray(encode_row(row))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw)))
        edit = data.draw(st.binary(min_size=1, max_size=5))
        if data.draw(st.booleans()):
            raw[at : at + len(edit)] = edit
        else:
            raw[at:at] = edit
    for call in (ROW, ROWS, RECORD):
        _check([bytes(raw)], call)


def test_a_batch_error_names_the_input_it_is_in():
    good = encode_row(Row((("k", 1),), (Cell("v", "x", 1),)))
    bad = good[:-1] + bytes((good[-1] ^ 1,))
    outcome = _check([good, good, bad, good], ROW)
    assert outcome[0] == "error" and outcome[1].startswith("row checksum mismatch") and outcome[4] == 2


def test_inputs_c_leaves_to_python_still_decode():
    # Not bytes (the callers pass bytes), and an extension with a block besides SEQ_INFO.
    row = Row((("k", 1),), (Cell("b", b"xy", 1),), sequence=SequenceInfo(1, 2, 3))
    data = encode_row(row)
    assert _C.decode_many([bytearray(data)], *ROW) is None
    assert _C.decode_many(UserList([data]), *ROW) is None
    assert _pbdecode.decode_many(UserList([data]), *ROW) == [row]
    seq_at = data.index(b"\x0b\x18\x00\x00\x00")
    extended = data[:seq_at] + b"\x0b\x1e\x00\x00\x00" + b"\x10\x01\x00\x00\x00\x00" + data[seq_at + 5 :]
    assert _C.decode_many([extended], *ROW) is None
    assert _pbdecode.decode_many([extended], *ROW) == [row]


def test_values_are_the_objects_python_builds():
    row = Row(
        (("s", "ключ"), ("i", -5), ("b", b"\x00"), ("lo", INF_MIN), ("hi", INF_MAX), ("a", AUTO_INCREMENT)),
        (
            Cell("t", True, 3),
            Cell("f", False),
            Cell("n", float("nan")),
            Cell("z", -0.0),
            Cell("d", None, None, CellOp.DELETE_ALL_VERSIONS),
            Cell("o", None, 7, CellOp.DELETE_ONE_VERSION),
            Cell("inc", 2, None, CellOp.INCREMENT),
        ),
        True,
        SequenceInfo(2**32 - 1, -(2**63), 2**32 - 1),
    )
    (decoded,) = _C.decode_many([encode_row(row)], *ROW)
    assert _canonical(decoded) == _canonical(row)
    assert decoded.primary_key[3][1] is INF_MIN and decoded.primary_key[5][1] is AUTO_INCREMENT
    assert decoded.cells[0].value is True and decoded.cells[6].op is CellOp.INCREMENT
    assert decoded.deleted is True


@pytest.mark.parametrize("byte", [2, 0x80, 0xFF])
def test_any_nonzero_boolean_byte_is_true_and_checksummed_as_1(byte):
    data = bytearray(encode_row(Row((("k", 1),), (Cell("flag", True, 5),))))
    at = data.index(b"\x02\x01")  # BOOLEAN, true
    data[at + 1] = byte
    (row,) = _C.decode_many([bytes(data)], *ROW)
    assert row.cells[0].value is True
    assert _check([bytes(data)], ROW, must_decode=True)[0] == "rows"


def test_decoded_tuples_are_left_to_refcounting_unless_they_can_hold_attributes():
    # Immutable tuples of atomic values cannot be in a reference cycle, so C
    # builds them untracked by the cycle collector (see new_tuple in the C file).
    row = Row((("k", INF_MIN),), (Cell("v", "x", 1),), sequence=SequenceInfo(1, 2, 3))
    (decoded,) = _C.decode_many([encode_row(row)], *ROW)
    for obj in (decoded, decoded.primary_key, decoded.primary_key[0], decoded.cells, decoded.cells[0], decoded.sequence):
        assert not gc.is_tracked(obj)

    class Annotated(Cell):  # no __slots__: instances have a __dict__
        pass

    (decoded,) = _C.decode_many([encode_row(row)], False, True, Annotated, _pbdecode.CELL_OPS, CellOp.PUT, Row)
    assert type(decoded.cells[0]) is Annotated and gc.is_tracked(decoded.cells[0])
    decoded.cells[0].back = decoded  # a cycle the collector must see
