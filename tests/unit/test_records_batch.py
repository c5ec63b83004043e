"""decode_records decodes a batch in one pass (cell headers guessed from the
previous row, long values checksummed as big ints); the results and the
errors must be exactly those of decoding each record on its own."""

import pytest

from beam_tunnel.errors import PlainBufferError, ProtocolError
from beam_tunnel.protocol import tunnel_pb2
from beam_tunnel.protocol._pbdecode import LONG_VALUE
from beam_tunnel.protocol.plainbuffer import decode_row, decode_row_without_pk, encode_row, encode_row_without_pk
from beam_tunnel.protocol.rows import Cell, CellOp, Row, SequenceInfo
from beam_tunnel.records import decode_records


def _wire(records):
    response = tunnel_pb2.ReadRecordsResponse(next_token="t")
    for action_type, record, origin in records:
        added = response.records.add(action_type=action_type, record=record)
        if origin is not None:
            added.origin_record = origin
    return tunnel_pb2.ReadRecordsResponse.FromString(response.SerializeToString()).records


def _cells(cells):
    """(name, value, timestamp, op name): Column and Cell have different op enums."""
    return [(c.name, c.value, c.timestamp_ms if hasattr(c, "timestamp_ms") else c.timestamp, c.op.name) for c in cells]


def _varint(number):
    out = b""
    while number > 0x7F:
        out += bytes((number & 0x7F | 0x80,))
        number >>= 7
    return out + bytes((number,))


def _raw_response(records):
    """A ReadRecordsResponse built by hand, so action_type may be one this
    client does not know (proto2 parks it with the unknown fields)."""
    body = b""
    for action_type, record in records:
        item = b"\x08" + _varint(action_type) + b"\x12" + _varint(len(record)) + record
        body += b"\x0a" + _varint(len(item)) + item
    return tunnel_pb2.ReadRecordsResponse.FromString(body + b"\x12\x01t").records


def _row(i, columns):
    return Row((("id", f"k{i:03d}"),), tuple(columns), sequence=SequenceInfo(0, 1_700_000_000_000_000 + i, 0))


def _same_as_one_by_one(rows):
    encoded = [encode_row(row) for row in rows]
    records = decode_records(_wire([(1, raw, None) for raw in encoded]), "c")
    for record, raw in zip(records, encoded):
        alone = decode_row(raw)
        assert record.primary_key == alone.primary_key
        assert _cells(record.columns) == _cells(alone.cells)
        assert record.sequence == alone.sequence
    return records


def test_rows_whose_columns_change_from_row_to_row():
    # Same-length names at the same position, different names, more and
    # fewer columns: a guessed header that does not match must not be used.
    rows = [
        _row(0, [Cell("aa", 1, 5), Cell("bb", "x", 5)]),
        _row(1, [Cell("ab", 2, 5), Cell("bb", "y", 5), Cell("cc", True, 5)]),
        _row(2, [Cell("bb", 3.5, 5)]),
        _row(3, [Cell("aa", b"\x00", 5), Cell("b" * 300, "long name", 5), Cell("cc", None, None, CellOp.DELETE_ALL_VERSIONS)]),
        _row(4, [Cell("aa", 1, 5), Cell("b" * 300, "again", 5)]),
    ]
    records = _same_as_one_by_one(rows)
    assert [c.name for c in records[1].columns] == ["ab", "bb", "cc"]


@pytest.mark.parametrize("length", [LONG_VALUE - 6, LONG_VALUE, 1000, 5000, 10_000])
def test_long_values_round_trip(length):
    text = "".join(chr(0x41 + i % 26) for i in range(length))
    blob = bytes(i * 7 % 256 for i in range(length))
    records = _same_as_one_by_one([_row(i, [Cell("text", text, 9), Cell("blob", blob, 9)]) for i in range(3)])
    assert records[2].columns[0].value == text and records[2].columns[1].value == blob


@pytest.mark.parametrize("value", ["y" * (LONG_VALUE + 10), "y" * 5000, -(2**62) + 12345, 2.5e-300])
def test_a_flipped_bit_in_a_value_fails_its_cell_checksum(value):
    # Long values, INTEGERs and DOUBLEs have checksum paths of their own.
    good = encode_row(_row(0, [Cell("text", value, 9)]))
    bad = bytearray(good)
    payload = good.index(b"text") + len(b"text") + 6  # CELL_VALUE, its length, the type byte
    bad[payload + (len(value) // 2 if isinstance(value, str) else 3)] ^= 0x10
    with pytest.raises(PlainBufferError, match="record 1 .* field record: cell checksum mismatch") as info:
        decode_records(_wire([(1, good, None), (1, bytes(bad), None)]), "c")
    assert info.value.cell == "text"
    with pytest.raises(PlainBufferError, match="cell checksum mismatch"):
        decode_row(bytes(bad))


def test_errors_come_in_record_order():
    good = encode_row(_row(0, [Cell("a", 1, 5)]))
    corrupt = good[:-1] + bytes((good[-1] ^ 0xFF,))
    bad_origin = encode_row_without_pk((Cell("a", 1, 5),))[:-3]
    # A corrupt origin of record 1 comes before a corrupt record 2.
    records = _wire([(1, good, None), (2, good, bad_origin), (1, corrupt, None)])
    with pytest.raises(PlainBufferError, match="record 1 .* field origin_record"):
        decode_records(records, "c")
    # An unknown action of record 1 comes before a corrupt record 2 ...
    with pytest.raises(ProtocolError, match="record 1 .* no action_type"):
        decode_records(_raw_response([(1, good), (7, good), (1, corrupt)]), "c")
    # ... and a corrupt record 0 before an unknown action of record 1.
    with pytest.raises(PlainBufferError, match="record 0 .* field record: row checksum"):
        decode_records(_raw_response([(1, corrupt), (7, good)]), "c")


def test_origin_columns_match_decoding_alone():
    origin = encode_row_without_pk((Cell("name", "Ann", 1), Cell("note", "z" * 200, 2)))
    record = encode_row(_row(0, [Cell("name", "Bo", 3)]))
    (decoded,) = decode_records(_wire([(2, record, origin)]), "c")
    assert _cells(decoded.origin_columns) == _cells(decode_row_without_pk(origin).cells)
