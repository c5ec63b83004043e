"""PlainBuffer: the binary row format of Tablestore rows and tunnel records.

Pure bytes <-> :class:`~beam_tunnel.protocol.rows.Row` conversion, checksums
included; no I/O. Wire format (all integers little-endian)::

    plainbuffer := 75 00 00 00  row*
    row         := ROW_PK cell*  [ROW_DATA cell*]  [DELETE_ROW_MARKER]
                   [EXTENSION]  ROW_CHECKSUM crc8
    cell        := CELL  CELL_NAME len32 name  [CELL_VALUE len32 vt payload]
                   [CELL_TYPE op]  [CELL_TIMESTAMP int64]  CELL_CHECKSUM crc8

Conventions this module settles:

* **Empty results.** ``encode_rows([])`` is ``b""`` and ``decode_rows(b"")``
  is ``[]``: the service leaves the ``row``/``rows`` field of a GetRow or
  GetRange response empty when there is nothing to return, and the official
  Python SDK checks ``len(proto.row) != 0`` before decoding.
* **Rows without a primary key** (a tunnel ``Record.origin_record``) are
  written as a ``ROW_PK`` tag with no cells, then ``ROW_DATA``: the Go SDK's
  reader requires the ``ROW_PK`` tag, the Java SDK's ``readRowsWithoutPk``
  accepts it with no cells. :func:`decode_row_without_pk` also accepts a row
  that starts directly at ``ROW_DATA``, as Java does.
* **Lengths.** The ``len32`` in front of a value is not checked, as in the
  official readers: the value type fixes the payload size and the cell
  checksum covers the payload.
* **Sequence info** epoch and row index are read as unsigned 32-bit numbers.
* **Unknown extension blocks** are skipped by their length.
* **Encoding validates** what the service or the SDK readers would reject,
  raising ``ValueError`` that names the value: names must be str, integers
  int64, values of a type in the table of :mod:`~beam_tunnel.protocol.rows`;
  PUT and INCREMENT cells need a value, DELETE_* cells must not have one;
  timestamps are ints in [0, 2**63) (the Java reader refuses negative ones);
  a primary key has at least one column (Java refuses empty ones; so does
  :func:`decode_row`).

Every checksum is verified. Corrupt, truncated or checksum-failing input
raises :class:`~beam_tunnel.errors.PlainBufferError` naming the offset and,
inside a cell, the cell name; no other exception escapes the decoders.

Usage::

    data = encode_row(Row(primary_key=(("id", 1),), cells=(Cell("v", "x", 1000),)))
    assert decode_row(data).cells[0].value == "x"
"""

from __future__ import annotations

import struct
from typing import Iterable, List, Optional, Sequence

from beam_tunnel.errors import PlainBufferError
from beam_tunnel.protocol import _pbdecode
from beam_tunnel.protocol._crc8 import CRC8_TABLE, crc8
from beam_tunnel.protocol.rows import (
    AUTO_INCREMENT,
    INF_MAX,
    INF_MIN,
    Cell,
    CellOp,
    PrimaryKey,
    Row,
    SequenceInfo,
)

__all__ = [
    "HEADER",
    "encode_row",
    "encode_rows",
    "encode_row_without_pk",
    "encode_primary_key",
    "decode_row",
    "decode_rows",
    "decode_row_without_pk",
]

HEADER = _pbdecode.HEADER
"""The 4-byte header (uint32 0x75) every PlainBuffer starts with."""

# Tags (JAVA PlainBufferConsts); the decoder (_pbdecode) spells them as literals.
_ROW_PK = b"\x01"
_ROW_DATA = b"\x02"
_CELL_AND_NAME = b"\x03\x04"  # CELL, then CELL_NAME
_CELL_VALUE = b"\x05"
_CELL_TYPE = 0x06
_CELL_TIMESTAMP = b"\x07"
_DELETE_ROW_MARKER = b"\x08"
_ROW_CHECKSUM = 0x09
_CELL_CHECKSUM = 0x0A
# EXTENSION len=24, SEQ_INFO len=19, SEQ_INFO_EPOCH (its u32 follows).
_SEQ_EXTENSION_START = _pbdecode.SEQ_ONLY_START
_SEQ_INFO_TS = b"\x0e"
_SEQ_INFO_ROW_INDEX = b"\x0f"

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_UINT32_MAX = (1 << 32) - 1
# Lengths are int32 on the wire (the Java reader is signed).
_MAX_LENGTH = (1 << 31) - 1

_PACK_U32 = struct.Struct("<I").pack
_PACK_I64 = struct.Struct("<q").pack
_PACK_F64 = struct.Struct("<d").pack


# --------------------------------------------------------------------------
# Encoding


def encode_row(row: Row) -> bytes:
    """One row with the 4-byte header.

    Args:
      row: the row; ``primary_key`` must have at least one (name, value) pair.
        ``deleted`` writes DELETE_ROW_MARKER, ``sequence`` writes the
        sequence-info extension.

    Returns:
      The PlainBuffer bytes.

    Raises:
      ValueError: naming the bad part (a non-str name, an integer outside
        int64, an unsupported value type, a cell shape its op forbids ...).
    """
    parts = [HEADER]
    _encode_row(parts, row)
    return b"".join(parts)


def encode_rows(rows: Iterable[Row]) -> bytes:
    """Several rows behind one header (a GetRange ``rows`` field).

    Args:
      rows: the rows, in order.

    Returns:
      The PlainBuffer bytes; ``b""`` when there are no rows (see the module
      docstring).

    Raises:
      ValueError: as :func:`encode_row`, naming the row's index.
    """
    parts = [HEADER]
    for index, row in enumerate(rows):
        try:
            _encode_row(parts, row)
        except ValueError as err:
            raise ValueError(f"row {index}: {err}") from None
    return b"".join(parts) if len(parts) > 1 else b""


def encode_row_without_pk(cells: Sequence[Cell]) -> bytes:
    """A row without primary-key cells: a tunnel record's before-image.

    Written as ``ROW_PK`` (no cells) ``ROW_DATA`` cells, the form both the Go
    and the Java SDK read.

    Args:
      cells: the data cells.

    Returns:
      The PlainBuffer bytes, with header.

    Raises:
      ValueError: naming the bad cell.
    """
    parts = [HEADER, _ROW_PK]
    row_crc = _encode_cells(parts, cells, 0)
    parts.append(_row_checksum(row_crc, False))
    return b"".join(parts)


def encode_primary_key(primary_key: PrimaryKey) -> bytes:
    """A row of primary-key cells only (GetRow keys, range bounds, tokens).

    Args:
      primary_key: (name, value) pairs in key order; at least one. Values may
        be INF_MIN, INF_MAX or AUTO_INCREMENT.

    Returns:
      The PlainBuffer bytes, with header.

    Raises:
      ValueError: naming the bad pair.
    """
    parts = [HEADER]
    row_crc = _encode_pk(parts, primary_key, 0)
    parts.append(_row_checksum(row_crc, False))
    return b"".join(parts)


def _encode_row(parts: List[bytes], row: Row) -> None:
    if not isinstance(row, Row):
        raise ValueError(f"expected a Row, got {type(row).__name__}: {row!r:.200}")
    row_crc = _encode_pk(parts, row.primary_key, 0)
    row_crc = _encode_cells(parts, row.cells, row_crc)
    deleted = bool(row.deleted)
    if deleted:
        parts.append(_DELETE_ROW_MARKER)
    if row.sequence is not None:
        parts.append(_encode_extension(row.sequence))
    parts.append(_row_checksum(row_crc, deleted))


def _row_checksum(row_crc: int, deleted: bool) -> bytes:
    """ROW_CHECKSUM and its byte: the CRC of the cell checksums, then of the
    delete flag as one byte 0/1 (the marker itself and the extension are not
    covered)."""
    return bytes((_ROW_CHECKSUM, CRC8_TABLE[row_crc ^ deleted]))


def _encode_pk(parts: List[bytes], primary_key: PrimaryKey, row_crc: int) -> int:
    if not isinstance(primary_key, (tuple, list)) or not primary_key:
        raise ValueError(f"primary key must be a non-empty tuple of (name, value) pairs, got {primary_key!r:.200}")
    parts.append(_ROW_PK)
    table = CRC8_TABLE
    for pair in primary_key:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"primary key entries must be (name, value) pairs, got {pair!r:.200}")
        name, value = pair
        if value is None:
            raise ValueError(f"primary key column {name!r} has no value")
        row_crc = table[row_crc ^ _encode_cell(parts, name, value, None, CellOp.PUT)]
    return row_crc


def _encode_cells(parts: List[bytes], cells: Sequence[Cell], row_crc: int) -> int:
    if not isinstance(cells, (tuple, list)):
        raise ValueError(f"cells must be a tuple of Cell, got {type(cells).__name__}: {cells!r:.200}")
    if not cells:
        return row_crc
    parts.append(_ROW_DATA)
    table = CRC8_TABLE
    for cell in cells:
        if not isinstance(cell, Cell):
            raise ValueError(f"expected a Cell, got {type(cell).__name__}: {cell!r:.200}")
        name, value, timestamp, op = cell
        if type(op) is not CellOp:
            op = _coerce_op(name, op)
        if (value is None) != (op in _OPS_WITHOUT_VALUE):
            needs = "needs a value" if value is None else "must not have a value"
            raise ValueError(f"cell {name!r}: op {op.name} {needs}, got {value!r:.200}")
        if timestamp is not None and (
            isinstance(timestamp, bool) or not isinstance(timestamp, int) or not 0 <= timestamp <= _INT64_MAX
        ):
            raise ValueError(f"cell {name!r}: timestamp must be an int in [0, 2**63) ms, got {timestamp!r:.200}")
        row_crc = table[row_crc ^ _encode_cell(parts, name, value, timestamp, op)]
    return row_crc


_OPS_WITHOUT_VALUE = frozenset((CellOp.DELETE_ALL_VERSIONS, CellOp.DELETE_ONE_VERSION))


def _coerce_op(name: str, op) -> CellOp:
    try:
        return CellOp(op)
    except (ValueError, TypeError):
        raise ValueError(f"cell {name!r}: unknown op {op!r:.200}") from None


def _encode_cell(parts: List[bytes], name: str, value, timestamp: Optional[int], op: CellOp) -> int:
    """Append one cell; return its checksum."""
    if not isinstance(name, str):
        raise ValueError(f"cell names must be str, got {type(name).__name__}: {name!r:.200}")
    try:
        raw_name = name.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"cell name {name!r:.200} cannot be encoded as UTF-8") from None
    if len(raw_name) > _MAX_LENGTH:
        raise ValueError(f"cell name of {len(raw_name)} bytes is too long")
    parts.append(_CELL_AND_NAME + _PACK_U32(len(raw_name)) + raw_name)
    crc = crc8(0, raw_name)
    if value is not None:
        raw_value = _encode_value(name, value)
        parts.append(_CELL_VALUE + _PACK_U32(len(raw_value)) + raw_value)
        crc = crc8(crc, raw_value)
    if op:
        parts.append(bytes((_CELL_TYPE, op)))
    if timestamp is not None:
        raw_ts = _PACK_I64(timestamp)
        parts.append(_CELL_TIMESTAMP + raw_ts)
        crc = crc8(crc, raw_ts)
    # The checksum takes the timestamp before the op, the wire the other way.
    if op:
        crc = CRC8_TABLE[crc ^ op]
    parts.append(bytes((_CELL_CHECKSUM, crc)))
    return crc


def _encode_value(name: str, value) -> bytes:
    """The value type byte and payload: exactly the bytes the checksum covers."""
    kind = type(value)
    if kind is str:
        try:
            raw = value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"cell {name!r}: string {value!r:.200} cannot be encoded as UTF-8") from None
        return b"\x03" + _PACK_U32(_checked_length(name, raw)) + raw
    if kind is bool:  # before int: bool is an int subclass
        return b"\x02\x01" if value else b"\x02\x00"
    if kind is int:
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"cell {name!r}: integer {value} is outside the int64 range")
        return b"\x00" + _PACK_I64(value)
    if kind is float:
        return b"\x01" + _PACK_F64(value)
    if kind is bytes:
        return b"\x07" + _PACK_U32(_checked_length(name, value)) + value
    if value is INF_MIN:
        return b"\x09"
    if value is INF_MAX:
        return b"\x0a"
    if value is AUTO_INCREMENT:
        return b"\x0b"
    # Subclasses (IntEnum, str enums, bytearray ...) take the slow path.
    if isinstance(value, bool):
        return _encode_value(name, bool(value))
    if isinstance(value, int):
        return _encode_value(name, int(value))
    if isinstance(value, float):
        return _encode_value(name, float(value))
    if isinstance(value, str):
        return _encode_value(name, str(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _encode_value(name, bytes(value))
    raise ValueError(f"cell {name!r}: unsupported value type {type(value).__name__}: {value!r:.200}")


def _checked_length(name: str, raw: bytes) -> int:
    if len(raw) > _MAX_LENGTH:
        raise ValueError(f"cell {name!r}: value of {len(raw)} bytes is too long")
    return len(raw)


def _encode_extension(sequence: SequenceInfo) -> bytes:
    if not isinstance(sequence, SequenceInfo):
        raise ValueError(f"sequence must be a SequenceInfo, got {type(sequence).__name__}: {sequence!r:.200}")
    epoch, timestamp, row_index = sequence
    for label, number, low, high in (
        ("epoch", epoch, 0, _UINT32_MAX),
        ("timestamp", timestamp, _INT64_MIN, _INT64_MAX),
        ("row_index", row_index, 0, _UINT32_MAX),
    ):
        if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= high:
            raise ValueError(f"sequence {label} must be an int in [{low}, {high}], got {number!r}")
    return (
        _SEQ_EXTENSION_START
        + _PACK_U32(epoch)
        + _SEQ_INFO_TS
        + _PACK_I64(timestamp)
        + _SEQ_INFO_ROW_INDEX
        + _PACK_U32(row_index)
    )


# --------------------------------------------------------------------------
# Decoding (the loop itself is in _pbdecode)


def decode_row(data: bytes) -> Row:
    """Exactly one row with header (a GetRow ``row``, a tunnel ``record``).

    Args:
      data: the PlainBuffer bytes (bytes, bytearray or memoryview).

    Returns:
      The row; cells in wire order.

    Raises:
      PlainBufferError: corrupt, truncated or checksum-failing input, no row,
        more than one row, or a row without primary-key cells.
      TypeError: ``data`` is not bytes-like.
    """
    try:
        return _pbdecode.decode(_as_bytes(data), False, True)[0]
    except _pbdecode.Failure as failure:
        raise _error(failure) from None


def decode_rows(data: bytes) -> List[Row]:
    """Zero or more rows behind one header (a GetRange ``rows`` field).

    Args:
      data: the PlainBuffer bytes; ``b""`` means no rows.

    Returns:
      The rows in wire order.

    Raises:
      PlainBufferError: as :func:`decode_row`, but any number of rows is fine.
      TypeError: ``data`` is not bytes-like.
    """
    data = _as_bytes(data)
    if not data:
        return []
    try:
        return _pbdecode.decode(data, False, False)
    except _pbdecode.Failure as failure:
        raise _error(failure) from None


def decode_row_without_pk(data: bytes) -> Row:
    """Exactly one row whose primary key may be absent: a tunnel record's
    ``origin_record`` (the before-image of the changed columns).

    Args:
      data: the PlainBuffer bytes.

    Returns:
      The row, with ``primary_key=()`` unless the input carried key cells.

    Raises:
      PlainBufferError: corrupt, truncated or checksum-failing input, or not
        exactly one row.
      TypeError: ``data`` is not bytes-like.
    """
    try:
        return _pbdecode.decode(_as_bytes(data), True, True)[0]
    except _pbdecode.Failure as failure:
        raise _error(failure) from None


def _as_bytes(data) -> bytes:
    if type(data) is bytes:
        return data
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"PlainBuffer input must be bytes-like, got {type(data).__name__}")


def _error(failure: _pbdecode.Failure) -> PlainBufferError:
    return PlainBufferError(failure.message, offset=failure.offset, cell=failure.cell)
