"""PlainBuffer codec: wire format, checksums, errors, round trips, fuzzing.

Expected bytes are built here by a small independent writer (bitwise CRC,
hand-packed fields, straight from the grammar in tunnel-protocol.md §3.1),
not by the encoder under test. Interoperability with the official SDK is in
test_plainbuffer_sdk.py.
"""

import math
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beam_tunnel.errors import PlainBufferError
from beam_tunnel.protocol._crc8 import crc8
from beam_tunnel.protocol.plainbuffer import (
    HEADER,
    decode_row,
    decode_row_without_pk,
    decode_rows,
    encode_primary_key,
    encode_row,
    encode_row_without_pk,
    encode_rows,
)
from beam_tunnel.protocol.rows import AUTO_INCREMENT, INF_MAX, INF_MIN, Cell, CellOp, Row, SequenceInfo

# The verified vector of tunnel-protocol.md §3.1: a base-data token's PK, key="5".
VERIFIED_PK = bytes.fromhex(
    "75000000" "01" "03" "04" "03000000" "6b6579" "05" "06000000" "03" "01000000" "35" "0a20" "09ae"
)


# --- an independent writer ------------------------------------------------


def _crc_bitwise(crc, data):
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _u32(n):
    return struct.pack("<I", n)


def _i64(n):
    return struct.pack("<q", n)


def _cell(name, value=None, op=None, ts=None):
    """One cell from raw parts; ``value`` is the vt byte plus payload."""
    raw_name = name.encode()
    out = b"\x03\x04" + _u32(len(raw_name)) + raw_name
    crc = _crc_bitwise(0, raw_name)
    if value is not None:
        out += b"\x05" + _u32(len(value)) + value
        crc = _crc_bitwise(crc, value)
    if op is not None:
        out += bytes((0x06, op))
    if ts is not None:
        out += b"\x07" + _i64(ts)
        crc = _crc_bitwise(crc, _i64(ts))
    if op is not None:
        crc = _crc_bitwise(crc, bytes((op,)))
    return out + bytes((0x0A, crc)), crc


def _row(keys, cells=(), deleted=False, extension=b"", pk_tag=True):
    out, crc = (b"\x01" if pk_tag else b""), 0
    for body, cell_crc in keys:
        out += body
        crc = _crc_bitwise(crc, bytes((cell_crc,)))
    if cells:
        out += b"\x02"
        for body, cell_crc in cells:
            out += body
            crc = _crc_bitwise(crc, bytes((cell_crc,)))
    if deleted:
        out += b"\x08"
    crc = _crc_bitwise(crc, b"\x01" if deleted else b"\x00")
    return out + extension + bytes((0x09, crc))


def _string(text):
    raw = text.encode()
    return b"\x03" + _u32(len(raw)) + raw


def _seq_extension(epoch, ts, row_index, before=b"", after=b""):
    seq = b"\x0c" + _u32(19) + b"\x0d" + _u32(epoch) + b"\x0e" + _i64(ts) + b"\x0f" + _u32(row_index)
    body = before + seq + after
    return b"\x0b" + _u32(len(body)) + body


KEY_ID = _cell("id", b"\x00" + _i64(7))


# --- format ----------------------------------------------------------------


def test_crc8_matches_the_catalogue_check_value():
    # CRC-8 (poly 0x07, init 0, no reflection, no xorout) of "123456789" is 0xF4.
    assert crc8(0, b"123456789") == 0xF4 == _crc_bitwise(0, b"123456789")


def test_verified_vector_decodes_and_encodes_back():
    assert decode_row(VERIFIED_PK) == Row(primary_key=(("key", "5"),))
    assert encode_primary_key((("key", "5"),)) == VERIFIED_PK


@pytest.mark.parametrize("offset", [len(VERIFIED_PK) - 3, len(VERIFIED_PK) - 1], ids=["cell", "row"])
def test_verified_vector_with_a_wrong_checksum_is_rejected(offset):
    bad = bytearray(VERIFIED_PK)
    bad[offset] ^= 0x01
    with pytest.raises(PlainBufferError, match="checksum mismatch") as info:
        decode_row(bytes(bad))
    assert info.value.offset == offset


@pytest.mark.parametrize(
    "value, wire",
    [
        (0, b"\x00" + _i64(0)),
        (-(2**63), b"\x00" + _i64(-(2**63))),
        (2**63 - 1, b"\x00" + _i64(2**63 - 1)),
        (1.5, b"\x01" + struct.pack("<d", 1.5)),
        (-0.0, b"\x01" + struct.pack("<d", -0.0)),
        (float("inf"), b"\x01" + struct.pack("<d", float("inf"))),
        (True, b"\x02\x01"),
        (False, b"\x02\x00"),
        ("", _string("")),
        ("grüße 中文", _string("grüße 中文")),
        (b"", b"\x07" + _u32(0)),
        (b"\x00\xff", b"\x07" + _u32(2) + b"\x00\xff"),
    ],
)
def test_every_value_type_has_the_documented_wire_form(value, wire):
    expected = HEADER + _row([KEY_ID], [_cell("v", wire, ts=1234)])
    row = Row(primary_key=(("id", 7),), cells=(Cell("v", value, 1234),))
    assert encode_row(row) == expected
    decoded = decode_row(expected).cells[0]
    assert type(decoded.value) is type(value)
    assert decoded == Cell("v", value, 1234)
    if isinstance(value, float):
        assert math.copysign(1, decoded.value) == math.copysign(1, value)


def test_nan_round_trips_bit_for_bit():
    nan = struct.unpack("<d", bytes.fromhex("010000000000f87f"))[0]
    data = encode_row(Row(primary_key=(("id", 7),), cells=(Cell("v", nan),)))
    assert struct.pack("<d", decode_row(data).cells[0].value) == struct.pack("<d", nan)


@pytest.mark.parametrize("sentinel, vt", [(INF_MIN, 0x09), (INF_MAX, 0x0A), (AUTO_INCREMENT, 0x0B)])
def test_key_sentinels_are_a_bare_type_byte(sentinel, vt):
    expected = HEADER + _row([_cell("id", bytes((vt,)))])
    assert encode_primary_key((("id", sentinel),)) == expected
    assert decode_row(expected).primary_key == (("id", sentinel),)


def test_cell_ops_write_the_type_byte_and_checksum_timestamp_before_type():
    cells = [
        _cell("p", _string("x"), ts=10),
        _cell("one", None, op=0x03, ts=20),
        _cell("all", None, op=0x01),
        _cell("inc", b"\x00" + _i64(5), op=0x04),
    ]
    expected = HEADER + _row([KEY_ID], cells)
    row = Row(
        primary_key=(("id", 7),),
        cells=(
            Cell("p", "x", 10),
            Cell("one", None, 20, CellOp.DELETE_ONE_VERSION),
            Cell("all", None, None, CellOp.DELETE_ALL_VERSIONS),
            Cell("inc", 5, None, CellOp.INCREMENT),
        ),
    )
    assert encode_row(row) == expected
    assert decode_row(expected) == row


def test_delete_marker_is_written_and_counted_in_the_row_checksum():
    expected = HEADER + _row([KEY_ID], deleted=True)
    row = Row(primary_key=(("id", 7),), deleted=True)
    assert encode_row(row) == expected
    assert expected[-3] == 0x08
    assert decode_row(expected) == row


def test_sequence_info_extension_is_written_and_not_checksummed():
    extension = _seq_extension(3, 1_506_416_585_740_836, 9)
    expected = HEADER + _row([KEY_ID], [_cell("v", _string("x"), ts=5)], extension=extension)
    row = Row(primary_key=(("id", 7),), cells=(Cell("v", "x", 5),), sequence=SequenceInfo(3, 1_506_416_585_740_836, 9))
    assert encode_row(row) == expected
    assert decode_row(expected) == row
    assert str(decode_row(expected).sequence) == "00000003:00055a13f17a1224:00000009"


def test_sequence_numbers_read_as_unsigned_32_bit():
    row = Row(primary_key=(("id", 7),), sequence=SequenceInfo(2**32 - 1, -1, 2**31))
    assert decode_row(encode_row(row)).sequence == SequenceInfo(2**32 - 1, -1, 2**31)


@pytest.mark.parametrize("where", ["before", "after", "alone"])
def test_unknown_extension_blocks_are_skipped_by_length(where):
    unknown = b"\x20" + _u32(3) + b"abc"
    if where == "alone":
        extension = b"\x0b" + _u32(len(unknown)) + unknown
    else:
        extension = _seq_extension(1, 2, 3, **{where: unknown})
    row = decode_row(HEADER + _row([KEY_ID], extension=extension))
    assert row.sequence == (None if where == "alone" else SequenceInfo(1, 2, 3))
    assert row.primary_key == (("id", 7),)


def test_several_rows_and_the_empty_forms():
    rows = [Row(primary_key=(("id", n),), cells=(Cell("v", str(n), n),)) for n in range(3)]
    data = encode_rows(rows)
    assert data == HEADER + b"".join(encode_row(row)[4:] for row in rows)
    assert decode_rows(data) == rows
    assert encode_rows([]) == b""
    assert decode_rows(b"") == []
    assert decode_rows(HEADER) == []


def test_decode_row_wants_exactly_one_row():
    one = encode_row(Row(primary_key=(("id", 1),)))
    with pytest.raises(PlainBufferError, match="unexpected bytes after the row"):
        decode_row(one + one[4:])
    with pytest.raises(PlainBufferError, match="no row"):
        decode_row(HEADER)
    with pytest.raises(PlainBufferError, match="empty input"):
        decode_row(b"")


def test_rows_without_pk_use_an_empty_pk_section_and_read_both_forms():
    cells = (Cell("old", "v", 5), Cell("n", 2, 5))
    data = encode_row_without_pk(cells)
    wire_cells = [_cell("old", _string("v"), ts=5), _cell("n", b"\x00" + _i64(2), ts=5)]
    assert data == HEADER + _row([], wire_cells)
    assert data[4:6] == b"\x01\x02"  # ROW_PK with no cells, then ROW_DATA (Go needs the ROW_PK tag)
    assert decode_row_without_pk(data) == Row(primary_key=(), cells=cells)
    # The Java reader also accepts a row that starts at ROW_DATA.
    assert decode_row_without_pk(HEADER + _row([], wire_cells, pk_tag=False)) == Row((), cells)
    with pytest.raises(PlainBufferError, match="no primary-key cells"):
        decode_row(data)


def test_accepts_bytearray_and_memoryview_and_refuses_text():
    assert decode_row(bytearray(VERIFIED_PK)) == decode_row(memoryview(VERIFIED_PK))
    with pytest.raises(TypeError, match="bytes-like"):
        decode_row(VERIFIED_PK.hex())


# --- decode errors ---------------------------------------------------------


def _row_bytes(*cells):
    return HEADER + _row([KEY_ID], list(cells))


@pytest.mark.parametrize(
    "data, message, cell",
    [
        (b"\x76\x00\x00\x00" + VERIFIED_PK[4:], "bad header", None),
        (_row_bytes(_cell("v", b"\x05" + _i64(1))), "unknown value type 0x05", "v"),
        (_row_bytes(_cell("v", None, op=0x02)), "unexpected cell type 0x02", "v"),
        (_row_bytes(_cell("v", b"\x03" + _u32(2) + b"\xff\xfe")), "not valid UTF-8", "v"),
        (HEADER + _row([_cell("id", b"\x00" + _i64(1), ts=1)]), "primary-key cell", "id"),
        (HEADER + _row([]), "no primary-key cells", None),
        (HEADER + b"\x02" + _row([KEY_ID])[1:], "expected ROW_PK", None),
        (_row_bytes(_cell("v", b"\x03" + _u32(1000) + b"ab")), "string of 1000 bytes runs past the end", "v"),
        (HEADER + _row([KEY_ID], extension=b"\x0b" + _u32(50) + b"\x0c"), "extension of 50 bytes", None),
        (HEADER + _row([KEY_ID], extension=b"\x0b" + _u32(5) + b"\x0c" + _u32(19)), "runs past the extension", None),
        (HEADER + _row([KEY_ID], extension=b"\x0b" + _u32(5) + b"\x0c" + _u32(0)), "sequence info of 0 bytes", None),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_corrupt_input_names_what_and_where(data, message, cell):
    with pytest.raises(PlainBufferError, match=message) as info:
        decode_row(data)
    assert info.value.cell == cell
    assert 0 <= info.value.offset <= len(data)
    assert "at offset" in str(info.value)


def test_every_single_bit_flip_in_names_and_values_fails_a_checksum():
    data = encode_row(Row(primary_key=(("id", 7),), cells=(Cell("name", "value", 99),)))
    name_at = data.index(b"name")
    value_at = data.index(b"value")
    for offset in list(range(name_at, name_at + 4)) + list(range(value_at, value_at + 5)):
        for bit in range(8):
            bad = bytearray(data)
            bad[offset] ^= 1 << bit
            with pytest.raises(PlainBufferError, match="checksum mismatch|UTF-8"):
                decode_row(bytes(bad))


# --- encode validation -----------------------------------------------------


@pytest.mark.parametrize(
    "row, message",
    [
        (Row(primary_key=(("id", 2**63),)), "9223372036854775808 is outside the int64 range"),
        (Row(primary_key=(("id", -(2**63) - 1),)), "outside the int64 range"),
        (Row(primary_key=((5, 1),)), "names must be str, got int: 5"),
        (Row(primary_key=(("id", object()),)), "unsupported value type object"),
        (Row(primary_key=(("id", None),)), "'id' has no value"),
        (Row(primary_key=()), "non-empty"),
        (Row(primary_key=(("id", 1, 2),)), r"\(name, value\) pairs"),
        (Row(primary_key=(("id", 1),), cells=(("v", 1),)), "expected a Cell, got tuple"),
        (Row(primary_key=(("id", 1),), cells=(Cell("v", None),)), "op PUT needs a value"),
        (Row(primary_key=(("id", 1),), cells=(Cell("v", 1, 5, CellOp.DELETE_ONE_VERSION),)), "must not have"),
        (Row(primary_key=(("id", 1),), cells=(Cell("v", 1, -1),)), "timestamp must be an int .* got -1"),
        (Row(primary_key=(("id", 1),), cells=(Cell("v", 1, 5, 9),)), "unknown op 9"),
        (Row(primary_key=(("id", 1),), cells=(Cell("v", "\ud800"),)), "cannot be encoded as UTF-8"),
        (Row(primary_key=(("id", 1),), sequence=SequenceInfo(-1, 0, 0)), "epoch must be an int"),
        (Row(primary_key=(("id", 1),), sequence=(0, 0, 0)), "must be a SequenceInfo"),
    ],
)
def test_encode_rejects_bad_rows_naming_the_value(row, message):
    with pytest.raises(ValueError, match=message):
        encode_row(row)


def test_encode_rows_names_the_bad_row():
    with pytest.raises(ValueError, match="row 1: .*outside the int64 range"):
        encode_rows([Row(primary_key=(("id", 1),)), Row(primary_key=(("id", 2**64),))])


def test_value_subclasses_encode_as_their_base_type():
    import enum

    class Level(enum.IntEnum):
        HIGH = 3

    row = Row(primary_key=(("id", Level.HIGH),), cells=(Cell("b", bytearray(b"xy")),))
    assert decode_row(encode_row(row)) == Row(primary_key=(("id", 3),), cells=(Cell("b", b"xy"),))


# --- properties ------------------------------------------------------------

_names = st.text(max_size=12)
_int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_values = st.one_of(_int64, st.floats(allow_nan=False), st.booleans(), st.text(max_size=40), st.binary(max_size=40))
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


@settings(max_examples=150, deadline=None)
@given(_rows)
def test_round_trip_is_identity(row):
    data = encode_row(row)
    assert decode_row(data) == row
    assert encode_row(decode_row(data)) == data  # bit-exact, -0.0 included


@settings(max_examples=50, deadline=None)
@given(st.lists(_rows, max_size=4))
def test_round_trip_of_several_rows(rows):
    assert decode_rows(encode_rows(rows)) == rows


@settings(max_examples=50, deadline=None)
@given(st.lists(_cells, max_size=6).map(tuple))
def test_round_trip_without_pk(cells):
    assert decode_row_without_pk(encode_row_without_pk(cells)) == Row((), cells)


_DECODERS = (decode_row, decode_rows, decode_row_without_pk)


def _only_plainbuffer_errors(data):
    for decode in _DECODERS:
        try:
            decode(data)
        except PlainBufferError:
            pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120), st.booleans())
def test_random_bytes_raise_only_plainbuffer_error(tail, with_header):
    _only_plainbuffer_errors((HEADER if with_header else b"") + tail)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_rows)
def test_every_truncation_and_bit_flip_raises_only_plainbuffer_error(row):
    data = encode_row(row)
    for end in range(len(data)):
        with pytest.raises(PlainBufferError):
            decode_row(data[:end])
        _only_plainbuffer_errors(data[:end])
    for offset in range(len(data)):
        for bit in range(8):
            bad = bytearray(data)
            bad[offset] ^= 1 << bit
            _only_plainbuffer_errors(bytes(bad))
