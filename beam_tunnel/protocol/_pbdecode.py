"""The PlainBuffer decoder's hot loop (see plainbuffer.py for the format and
the public functions).

Written for speed, because every tunnel record passes through it:

* one long function: a helper call per cell costs as much as the cell's work;
* tags are literals with their name in a comment (a global lookup per tag
  costs more than the comparison);
* ``struct.Struct`` unpackers read a field and the tag after it in one call;
* column names repeat in every row, so their text and CRC are cached, and
  so is the CRC of cell timestamps; within one call, the cell headers of the
  previous row are tried first (one slice comparison), since the rows of a
  batch mostly share their columns;
* the per-byte CRC step is ``NEXT[crc][byte]``: two list lookups, which the
  interpreter specializes, cost less than an XOR, which it does not;
* an INTEGER or DOUBLE gets its CRC from its 8 bytes unpacked at once and
  chained through NEXT, with no loop;
* long values get their CRC from eight parity checks over the value as one
  big int instead of a loop per byte;
* a batch of records is decoded in one call (:func:`decode_many`), so the
  setup is paid once;
* bounds are mostly checked by Python itself: an ``IndexError`` or
  ``struct.error`` means the input ended inside a field. Slices never fail,
  so every length-prefixed slice is checked explicitly.

Raises only :class:`Failure`, which the public functions turn into a
``PlainBufferError``.

``_pbdecode_c`` (optional, built by ``pip install`` when a C compiler is
there) does the same work about ten times faster; :func:`decode_many` tries
it first and falls back to the Python loop for any input it refuses, so the
Python code here is the reference and the one place errors are reported.
"""

from __future__ import annotations

import struct
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

from beam_tunnel.protocol._crc8 import CRC8_TABLE, crc8
from beam_tunnel.protocol.rows import AUTO_INCREMENT, INF_MAX, INF_MIN, Cell, CellOp, Row, SequenceInfo

HEADER = b"\x75\x00\x00\x00"


class Failure(Exception):
    """Why decoding stopped: message, absolute offset, cell name if inside one."""

    def __init__(self, message: str, offset: int, cell: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.cell = cell
        self.index = 0  # which input of decode_many


_TAG_U32 = struct.Struct("<BI").unpack_from  # a tag, then a uint32
_U32 = struct.Struct("<I").unpack_from
_I64_TAG = struct.Struct("<qB").unpack_from  # an int64, then the next tag
_F64_TAG = struct.Struct("<dB").unpack_from  # a double, then the next tag
# SEQ_INFO body: EPOCH u32, TS i64, ROW_INDEX u32, each behind its tag.
_SEQ_BODY = struct.Struct("<BIBqBI")
_SEQ_TAGS = (0x0D, 0x0E, 0x0F)
# EXTENSION len=24, SEQ_INFO len=19, SEQ_INFO_EPOCH: how every stream record's
# extension starts (the encoder writes it too); then the numbers with the TS
# and ROW_INDEX tags (at +15 and +24) skipped.
SEQ_ONLY_START = b"\x0b\x18\x00\x00\x00\x0c\x13\x00\x00\x00\x0d"
_SEQ_NUMBERS = struct.Struct("<IxqxI").unpack_from

# CELL_TYPE byte -> op. Plain int keys: hashing an enum member runs Python code.
CELL_OPS: Dict[int, Any] = {
    int(CellOp.DELETE_ALL_VERSIONS): CellOp.DELETE_ALL_VERSIONS,
    int(CellOp.DELETE_ONE_VERSION): CellOp.DELETE_ONE_VERSION,
    int(CellOp.INCREMENT): CellOp.INCREMENT,
}

# Bounded so hostile input cannot grow it forever; dict get/set are atomic,
# so threads may share it.
_NAME_CACHE: Dict[bytes, Tuple[str, int]] = {}
_NAME_CACHE_MAX = 4096

# A cell's timestamp is usually shared by all its row's cells (one write), so
# its CRC is cached too. CRC-8 without init or final XOR is linear:
# crc(state, ts bytes) == _SHIFT8[state] ^ crc(0, ts bytes), where _SHIFT8
# feeds a state through 8 zero bytes.
_TIMESTAMP_CRCS: Dict[int, int] = {}
_TIMESTAMP_CACHE_MAX = 4096
_PACK_I64 = struct.Struct("<q").pack


def _shift_table(zero_bytes: int) -> List[int]:
    table = []
    for state in range(256):
        for _ in range(zero_bytes):
            state = CRC8_TABLE[state]
        table.append(state)
    return table


_SHIFT8 = _shift_table(8)
_EIGHT_BYTES = struct.Struct("<8B").unpack_from
_GUESSED_CELLS = 64  # cells per row whose header decode_many guesses
# NEXT[crc][byte] == CRC8_TABLE[crc ^ byte] (256 lists of 256: ~0.5 MB).
_NEXT = [[CRC8_TABLE[state ^ byte] for byte in range(256)] for state in range(256)]
# CRC8_TABLE is a bijection: UNDO[CRC8_TABLE[x]] == x, so a ^ b ==
# UNDO[NEXT[a][b]], three list lookups that cost less than the XOR.
_UNDO = [0] * 256
for _index, _value in enumerate(CRC8_TABLE):
    _UNDO[_value] = _index
del _index, _value


def _parity_crc_tables(max_bytes: int):
    """What :func:`_long_crc` needs. CRC-8 without init or final XOR is
    linear: crc(state, data) == L^n(state) ^ crc(0, data), where L feeds one
    zero byte, and each bit of crc(0, data) is the parity of (data as a
    big-endian int) AND a fixed mask. A byte's contribution depends only on
    its distance to the end, and L has a small order, so the masks repeat
    with that period."""
    period = 1
    basis = [1 << bit for bit in range(8)]
    moved = [CRC8_TABLE[v] for v in basis]
    while moved != basis:
        moved = [CRC8_TABLE[v] for v in moved]
        period += 1
    masks = [0] * 8
    contributions = [CRC8_TABLE[1 << bit] for bit in range(8)]  # of each input bit, at distance 0
    for distance in range(period):
        for bit, contribution in enumerate(contributions):
            for out_bit in range(8):
                if contribution >> out_bit & 1:
                    masks[out_bit] |= 1 << (8 * distance + bit)
        contributions = [CRC8_TABLE[c] for c in contributions]
    block = 8 * period
    blocks = -(-max_bytes // period)
    repeat = ((1 << (block * blocks)) - 1) // ((1 << block) - 1)  # 1 in every block: no carries
    shifts = []
    states = list(range(256))
    for _ in range(period):
        shifts.append(states)
        states = [CRC8_TABLE[state] for state in states]
    return period, tuple(mask * repeat for mask in masks), shifts


# Values at least this long take _long_crc (below it the byte loop is
# faster); int.bit_count needs Python 3.10.
LONG_VALUE = 64 if hasattr(int, "bit_count") else sys.maxsize
_PARITY_MAX = 4096  # bytes per big-int step
_PERIOD, _PARITY_MASKS, _SHIFTS = _parity_crc_tables(_PARITY_MAX)


def _long_crc(crc: int, data: bytes, start: int, end: int) -> int:
    """``crc`` continued over ``data[start:end]`` (see _parity_crc_tables)."""
    m0, m1, m2, m3, m4, m5, m6, m7 = _PARITY_MASKS
    while start < end:
        stop = min(end, start + _PARITY_MAX)
        value = int.from_bytes(data[start:stop], "big")
        crc = _SHIFTS[(stop - start) % _PERIOD][crc] ^ (
            ((value & m0).bit_count() & 1)
            | ((value & m1).bit_count() & 1) << 1
            | ((value & m2).bit_count() & 1) << 2
            | ((value & m3).bit_count() & 1) << 3
            | ((value & m4).bit_count() & 1) << 4
            | ((value & m5).bit_count() & 1) << 5
            | ((value & m6).bit_count() & 1) << 6
            | ((value & m7).bit_count() & 1) << 7
        )
        start = stop
    return crc

_new_tuple = tuple.__new__


def _name_entry(raw: bytes) -> Tuple[str, int]:
    entry = (raw.decode("utf-8"), crc8(0, raw))
    # Tablestore column names are at most 255 bytes; longer "names" come from
    # corrupt input and are not worth keeping.
    if len(raw) <= 255:
        if len(_NAME_CACHE) >= _NAME_CACHE_MAX:
            _NAME_CACHE.clear()
        _NAME_CACHE[raw] = entry
    return entry


def _timestamp_entry(timestamp: int) -> int:
    crc = crc8(0, _PACK_I64(timestamp))
    if len(_TIMESTAMP_CRCS) >= _TIMESTAMP_CACHE_MAX:
        _TIMESTAMP_CRCS.clear()
    _TIMESTAMP_CRCS[timestamp] = crc
    return crc


def decode(
    data: bytes,
    pk_optional: bool,
    single: bool,
    cell_type: type = Cell,
    ops: Dict[int, Any] = CELL_OPS,
    put: Any = CellOp.PUT,
) -> List[Row]:
    """Decode header + rows.

    Args:
      data: the input, starting with the header.
      pk_optional: accept rows with no ROW_PK tag or no key cells (a tunnel
        record's before-image).
      single: expect exactly one row and nothing after it.
      cell_type: the NamedTuple of (name, value, timestamp, op) to build data
        cells as; the records module builds its Columns directly.
      ops: CELL_TYPE byte -> op value; bytes not in it are refused.
      put: the op value of a cell without CELL_TYPE.

    Raises:
      Failure: whatever is wrong, with its offset.
    """
    return decode_many((data,), pk_optional, single, cell_type, ops, put, Row)


def decode_many(
    inputs: Sequence[bytes],
    pk_optional: bool,
    single: bool,
    cell_type: type,
    ops: Dict[int, Any],
    put: Any,
    row_type: type,
) -> list:
    """Decode several inputs (each header + rows) in one call, as
    :func:`decode` does one; returns the rows of all of them, in order.

    ``row_type`` is what each row is built as from (primary key, cells,
    deleted, sequence): :class:`Row`, or ``tuple`` for a caller that reads
    the four fields itself.

    The C decoder, when built, does the work; it answers None for anything
    it does not accept, and the pure-Python decoder then decodes (and
    reports) that batch, so errors read the same either way.

    Raises:
      Failure: as :func:`decode`; ``index`` tells which input.
    """
    if _c_decode_many is not None:
        rows = _c_decode_many(inputs, pk_optional, single, cell_type, ops, put, row_type)
        if rows is not None:
            return rows
    return decode_many_python(inputs, pk_optional, single, cell_type, ops, put, row_type)


def decode_many_python(
    inputs: Sequence[bytes],
    pk_optional: bool,
    single: bool,
    cell_type: type,
    ops: Dict[int, Any],
    put: Any,
    row_type: type,
) -> list:
    """:func:`decode_many` in pure Python: the reference the C decoder
    matches, and the fallback when it is not built."""
    table = CRC8_TABLE
    tag_u32 = _TAG_U32
    u32 = _U32
    i64_tag = _I64_TAG
    f64_tag = _F64_TAG
    names_get = _NAME_CACHE.get
    new = _new_tuple
    shift8 = _SHIFT8
    timestamp_crcs_get = _TIMESTAMP_CRCS.get
    long_value = LONG_VALUE
    eight_bytes = _EIGHT_BYTES
    step = _NEXT
    undo = _UNDO
    # Per cell number in a row: (wire bytes from CELL to the end of the
    # name, name, name CRC, their length), from the previous row.
    # (Only worth it across inputs: one input is usually one row.)
    slots = _GUESSED_CELLS if len(inputs) > 1 else 0
    headers: List[Optional[Tuple[bytes, str, int, int]]] = [None] * slots
    rows: list = []
    index = 0
    pos = 0
    size = 0
    name = None
    try:
        for data in inputs:
            size = len(data)
            if size < 4 or data[:4] != HEADER:
                if not size:
                    raise Failure("empty input, expected a PlainBuffer header", 0)
                raise Failure(f"bad header {data[:4].hex()}, expected 75000000", 0)
            pos = 4
            rows_before = len(rows)
            while pos < size:
                row_start = pos
                keys: list = []
                cells: list = []
                row_crc = 0
                in_keys = True
                cell_number = 0
                tag = data[pos]
                if tag == 1:  # ROW_PK
                    pos += 1
                    tag = data[pos]
                elif not pk_optional:
                    raise Failure(f"expected ROW_PK (0x01) at the start of a row, found 0x{tag:02x}", pos)
                elif tag == 3:
                    raise Failure("cell before ROW_DATA in a row without ROW_PK", pos)
                while True:
                    if tag == 3:  # CELL, then CELL_NAME len32 name
                        cell_start = pos
                        known = headers[cell_number] if cell_number < slots else None
                        if known is not None and data[pos : pos + known[3]] == known[0]:
                            _, name, crc, length = known
                            pos += length
                        else:
                            name_tag, length = tag_u32(data, pos + 1)
                            if name_tag != 4:
                                raise Failure(f"expected CELL_NAME (0x04) after CELL, found 0x{name_tag:02x}", pos + 1)
                            pos += 6
                            end = pos + length
                            if end > size:
                                raise Failure(f"cell name of {length} bytes runs past the end ({size} bytes)", pos - 4)
                            raw = data[pos:end]
                            name, crc = names_get(raw) or _name_entry(raw)
                            pos = end
                            if length <= 255 and cell_number < slots:
                                headers[cell_number] = (data[cell_start:end], name, crc, end - cell_start)
                        cell_number += 1
                        tag = data[pos]
                        value = None
                        if tag == 5:  # CELL_VALUE len32 (not checked, as in the SDKs) type payload
                            start = pos + 5
                            kind = data[start]
                            if kind == 3:  # STRING
                                (length,) = u32(data, start + 1)
                                pos = start + 5 + length
                                if pos > size:
                                    raise Failure(f"string of {length} bytes runs past the end", start + 1, name)
                                value = data[start + 5 : pos].decode("utf-8")
                                tag = data[pos]
                            elif kind <= 1:  # INTEGER (0), DOUBLE (1)
                                value, tag = (f64_tag if kind else i64_tag)(data, start + 1)
                                pos = start + 9
                                b0, b1, b2, b3, b4, b5, b6, b7 = eight_bytes(data, start + 1)
                                crc = step[step[step[step[step[step[step[step[step[crc][kind]][b0]][b1]][b2]][b3]][b4]][b5]][b6]][b7]
                            elif kind == 7:  # BLOB
                                (length,) = u32(data, start + 1)
                                pos = start + 5 + length
                                if pos > size:
                                    raise Failure(f"blob of {length} bytes runs past the end", start + 1, name)
                                value = data[start + 5 : pos]
                                tag = data[pos]
                            elif kind == 2:  # BOOLEAN
                                value = data[start + 1] != 0
                                pos = start + 2
                                tag = data[pos]
                            elif kind == 9:
                                value = INF_MIN
                                pos = start + 1
                                tag = data[pos]
                            elif kind == 10:
                                value = INF_MAX
                                pos = start + 1
                                tag = data[pos]
                            elif kind == 11:
                                value = AUTO_INCREMENT
                                pos = start + 1
                                tag = data[pos]
                            else:
                                raise Failure(f"unknown value type 0x{kind:02x}", start, name)
                            if kind == 2:
                                # The checksum takes the boolean as 0/1, whatever byte was sent.
                                crc = table[table[crc ^ 2] ^ value]
                            elif kind <= 1:
                                pass  # done above
                            elif pos - start < long_value:
                                for byte in data[start:pos]:
                                    crc = step[crc][byte]
                            else:
                                crc = _long_crc(crc, data, start, pos)
                        op = put
                        if tag == 6:  # CELL_TYPE
                            op_byte = data[pos + 1]
                            op = ops.get(op_byte)
                            if op is None:
                                raise Failure(f"unexpected cell type 0x{op_byte:02x}", pos + 1, name)
                            pos += 2
                            tag = data[pos]
                        timestamp = None
                        if tag == 7:  # CELL_TIMESTAMP
                            timestamp, tag = i64_tag(data, pos + 1)
                            ts_crc = timestamp_crcs_get(timestamp)
                            if ts_crc is None:
                                ts_crc = _timestamp_entry(timestamp)
                            crc = undo[step[shift8[crc]][ts_crc]]
                            pos += 9
                        if op is not put:
                            # The checksum takes the op after the timestamp; the wire, before.
                            crc = table[crc ^ op_byte]
                        if tag != 10:  # CELL_CHECKSUM
                            raise Failure(f"expected CELL_CHECKSUM (0x0a), found 0x{tag:02x}", pos, name)
                        stored = data[pos + 1]
                        if stored != crc:
                            message = f"cell checksum mismatch: stored 0x{stored:02x}, computed 0x{crc:02x}"
                            raise Failure(message, pos + 1, name)
                        row_crc = step[row_crc][crc]
                        pos += 2
                        if not in_keys:
                            cells.append(new(cell_type, (name, value, timestamp, op)))
                        elif value is None or op is not put or timestamp is not None:
                            message = "a primary-key cell needs a value and no cell type or timestamp"
                            raise Failure(message, cell_start, name)
                        else:
                            keys.append((name, value))
                        name = None
                        tag = data[pos]
                    elif tag == 2 and in_keys:  # ROW_DATA
                        in_keys = False
                        pos += 1
                        tag = data[pos]
                    else:
                        break
                deleted = tag == 8  # DELETE_ROW_MARKER
                if deleted:
                    pos += 1
                    tag = data[pos]
                sequence = None
                if tag == 11:  # EXTENSION
                    # Fast path for the extension every stream record has: just
                    # SEQ_INFO. Anything else takes the general reader.
                    if data[pos : pos + 11] == SEQ_ONLY_START and data[pos + 15] == 14 and data[pos + 24] == 15:
                        sequence = new(SequenceInfo, _SEQ_NUMBERS(data, pos + 11))
                        pos += 29
                    else:
                        pos, sequence = _decode_extension(data, pos)
                    tag = data[pos]
                if tag != 9:  # ROW_CHECKSUM
                    raise Failure(f"expected ROW_CHECKSUM (0x09), found 0x{tag:02x}", pos)
                row_crc = table[row_crc ^ deleted]
                stored = data[pos + 1]
                if stored != row_crc:
                    raise Failure(f"row checksum mismatch: stored 0x{stored:02x}, computed 0x{row_crc:02x}", pos + 1)
                pos += 2
                if not keys and not pk_optional:
                    raise Failure("row has no primary-key cells", row_start)
                rows.append(new(row_type, (tuple(keys), tuple(cells), deleted, sequence)))
                if single:
                    if pos != size:
                        raise Failure(f"unexpected bytes after the row ({size - pos} left over)", pos)
                    break
            if single and len(rows) == rows_before:
                raise Failure("no row after the header", 4)
            index += 1
    except Failure as failure:
        failure.index = index
        raise
    except (IndexError, struct.error):
        failure = Failure(f"input ends inside a field ({size} bytes in all)", min(pos, size), name)
        failure.index = index
        raise failure from None
    except UnicodeDecodeError as err:
        failure = Failure(f"text is not valid UTF-8 ({err.reason})", pos, name)
        failure.index = index
        raise failure from None
    return rows


def _decode_extension(data: bytes, pos: int) -> Tuple[int, Optional[SequenceInfo]]:
    """Read the EXTENSION at ``pos``; return the position after it and the
    sequence info, if any. Blocks with unknown tags are skipped by length."""
    (length,) = _U32(data, pos + 1)
    cursor = pos + 5
    end = cursor + length
    if end > len(data):
        raise Failure(f"extension of {length} bytes runs past the end", pos)
    sequence = None
    while cursor < end:
        block_tag, block_length = _TAG_U32(data, cursor)
        body = cursor + 5
        block_end = body + block_length
        if block_end > end:
            raise Failure(f"extension block 0x{block_tag:02x} of {block_length} bytes runs past the extension", cursor)
        if block_tag == 0x0C:  # SEQ_INFO
            if block_length < _SEQ_BODY.size:
                raise Failure(f"sequence info of {block_length} bytes, expected {_SEQ_BODY.size}", cursor)
            tag_epoch, epoch, tag_ts, timestamp, tag_index, row_index = _SEQ_BODY.unpack_from(data, body)
            if (tag_epoch, tag_ts, tag_index) != _SEQ_TAGS:
                raise Failure(
                    f"sequence info tags are 0x{tag_epoch:02x} 0x{tag_ts:02x} 0x{tag_index:02x},"
                    " expected 0x0d 0x0e 0x0f",
                    body,
                )
            sequence = _new_tuple(SequenceInfo, (epoch, timestamp, row_index))
        cursor = block_end
    return end, sequence


try:
    from beam_tunnel.protocol import _pbdecode_c
except ImportError:  # not built (no compiler at install time): pure Python only
    _pbdecode_c = None
    _c_decode_many = None
else:
    _pbdecode_c.configure(SequenceInfo, INF_MIN, INF_MAX, AUTO_INCREMENT)
    _c_decode_many = _pbdecode_c.decode_many

IMPLEMENTATION = "c" if _c_decode_many is not None else "python"
"""Which decoder :func:`decode_many` tries first: ``"c"`` or ``"python"``."""
