"""A deterministic, compact Beam coder for :class:`~beam_tunnel.records.ChangeRecord`.

Importing this module registers :class:`ChangeRecordCoder` for
``ChangeRecord`` in Beam's coder registry, so every PCollection whose element
type is ``ChangeRecord`` (a source's output, or any step declared
``.with_output_types(ChangeRecord)``) is encoded with it instead of pickle.

Why not pickle: pickle output is not guaranteed stable (so a GroupByKey on
records, or a runner comparing encoded keys, could split equal values), it is
larger (class and enum paths in every element), and unpickling runs
arbitrary code. This format stores only values.

Format, version 1 (every element starts with its version byte so the format
can evolve; a decoder refuses versions it does not know)::

    record   := 0x01 flags [sequence] name(channel_id)
                count pk* count column* count column*      (columns, origin_columns)
    flags    := action (bits 0-1: 0 put, 1 update, 2 delete) | 0x04 if sequence
    sequence := value(epoch) value(timestamp) value(row_index)
    pk       := name value
    column   := name op(0 put, 1 delete_one_version, 2 delete_all_versions)
                value value(timestamp_ms)
    name     := varint(byte length) UTF-8
    count    := varint

    value    := one tag byte, then its payload:
      0x00 None   0x01 False   0x02 True   0x03 float: 8 bytes IEEE-754 big-endian
      0x04 INF_MIN   0x05 INF_MAX   0x06 AUTO_INCREMENT
      0x07 str  of varint(length) UTF-8 bytes    0x08 bytes of varint(length) bytes
      0x09 (a column's timestamp_ms only) the same int as the previous
           column's of the list; always used when it applies
      0x0E int >= 0 of varint(length) big-endian bytes
      0x0F int < 0: as 0x0E, holding ~int (that is -int - 1)
      0x10+k int >= 0 in k (0..15) big-endian bytes: 0 is the single byte 0x10
      0x20+k int < 0 whose ~int fits k (0..15) bytes
      0x40+n str of n (0..63) UTF-8 bytes       0x80+n bytes of n (0..63) bytes

Only stored fields are encoded: ``key``, ``write_time_us`` and
``is_full_data`` are derived from ``primary_key`` and ``sequence``.

Determinism: the bytes are a function of the record's field values and
their types, nothing else (no dict order, no object identity), so records
equal field by field encode to identical bytes. The type is part of the
value: ``1``, ``1.0`` and ``True`` compare equal in Python but are different
Tablestore values (INTEGER, DOUBLE, BOOLEAN) and encode differently, as do
``0.0`` and ``-0.0``; a float keeps its exact bits (NaN payloads included).
A plain string in place of an :class:`Action` or :class:`ColumnOp` member
(``"put"``) is accepted and decodes as the member, which compares equal.
Strings must be valid Unicode (no lone surrogates), as in Tablestore;
``primary_key`` and the column lists come back as tuples.
"""

from __future__ import annotations

import struct
from typing import Any, Dict, Tuple

from apache_beam import coders as beam_coders

from beam_tunnel.protocol.rows import AUTO_INCREMENT, INF_MAX, INF_MIN, SequenceInfo
from beam_tunnel.records import Action, ChangeRecord, Column, ColumnOp

__all__ = ["ChangeRecordCoder", "CoderError"]

FORMAT_VERSION = 1
"""The version byte every element written by this coder starts with."""


class CoderError(ValueError):
    """A ChangeRecord could not be encoded, or bytes could not be decoded
    into one; the message names the field, the offset and what was wrong."""


# Wire codes; a record's flags byte holds the action and the sequence bit.
_ACTIONS = (Action.PUT, Action.UPDATE, Action.DELETE)
_ACTION_CODES = {action: code for code, action in enumerate(_ACTIONS)}
_OPS = (ColumnOp.PUT, ColumnOp.DELETE_ONE_VERSION, ColumnOp.DELETE_ALL_VERSIONS)
_OP_CODES = {op: code for code, op in enumerate(_OPS)}
_HAS_SEQUENCE = 0x04
_KNOWN_FLAGS = 0x07

_T_NONE, _T_FALSE, _T_TRUE, _T_FLOAT = 0x00, 0x01, 0x02, 0x03
_T_INF_MIN, _T_INF_MAX, _T_AUTO_INCREMENT = 0x04, 0x05, 0x06
_T_LONG_STR, _T_LONG_BYTES = 0x07, 0x08
_T_SAME_TIMESTAMP = 0x09  # only as a column's timestamp_ms
_T_BIG_INT, _T_BIG_NEG_INT = 0x0E, 0x0F
_T_INT, _T_NEG_INT = 0x10, 0x20  # + byte count
_T_STR, _T_BYTES = 0x40, 0x80  # + byte count
_SHORT_INT_BYTES = 16  # byte counts that fit the tag's low nibble
_SHORT_LEN = 64  # lengths that fit the tag's low six bits
_SENTINEL_TAGS = {id(INF_MIN): _T_INF_MIN, id(INF_MAX): _T_INF_MAX, id(AUTO_INCREMENT): _T_AUTO_INCREMENT}
# Tags 0x00-0x06 decode to a constant (the float tag is handled before the lookup).
_CONSTANTS = (None, False, True, None, INF_MIN, INF_MAX, AUTO_INCREMENT)

_pack_double = struct.Struct(">d").pack
_unpack_double_from = struct.Struct(">d").unpack_from
_from_bytes = int.from_bytes
_new_tuple = tuple.__new__
_MAX_VARINT_BYTES = 10  # enough for any length or count below 2**70


class _Invalid(Exception):
    """A fault the coder recognised (bytes it cannot decode, a value it
    cannot encode); the message says what, the caller adds where."""


# ---- encoding -----------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _put_name(buf: bytearray, name: str) -> None:
    data = name.encode()
    n = len(data)
    if n < 0x80:
        buf.append(n)
    else:
        buf += _varint(n)
    buf += data


def _put_count(buf: bytearray, n: int) -> None:
    if n < 0x80:
        buf.append(n)
    else:
        buf += _varint(n)


def _put_value(buf: bytearray, value: Any) -> None:
    # Exact type tests, most frequent first: bool is an int subclass and must
    # not take the int branch. Subclasses (an IntEnum, a str enum) are
    # refused, as they would come back as the base type.
    kind = type(value)
    if kind is str:
        data = value.encode()
        n = len(data)
        if n < _SHORT_LEN:
            buf.append(_T_STR | n)
        else:
            buf.append(_T_LONG_STR)
            buf += _varint(n)
        buf += data
    elif kind is int:
        if value >= 0:
            n = (value.bit_length() + 7) >> 3
            if n < _SHORT_INT_BYTES:
                buf.append(_T_INT | n)
            else:
                buf.append(_T_BIG_INT)
                buf += _varint(n)
            buf += value.to_bytes(n, "big")
        else:
            value = ~value
            n = (value.bit_length() + 7) >> 3
            if n < _SHORT_INT_BYTES:
                buf.append(_T_NEG_INT | n)
            else:
                buf.append(_T_BIG_NEG_INT)
                buf += _varint(n)
            buf += value.to_bytes(n, "big")
    elif value is None:
        buf.append(_T_NONE)
    elif kind is float:
        buf.append(_T_FLOAT)
        buf += _pack_double(value)
    elif kind is bool:
        buf.append(_T_TRUE if value else _T_FALSE)
    elif kind is bytes:
        n = len(value)
        if n < _SHORT_LEN:
            buf.append(_T_BYTES | n)
        else:
            buf.append(_T_LONG_BYTES)
            buf += _varint(n)
        buf += value
    else:
        tag = _SENTINEL_TAGS.get(id(value))
        if tag is None:
            raise _Invalid(f"a {kind.__name__} is not a Tablestore value (int, float, bool, str, bytes or None)")
        buf.append(tag)


def _put_columns(buf: bytearray, columns) -> None:
    _put_count(buf, len(columns))
    op_codes = _OP_CODES
    previous = None  # the last int timestamp of this list
    for name, value, timestamp_ms, op in columns:
        _put_name(buf, name)
        buf.append(op_codes[op])
        _put_value(buf, value)
        # The columns of one change usually share one version: say "same
        # again" in a byte rather than repeat six. The type test keeps True
        # (== 1) from standing for 1.
        if type(timestamp_ms) is int:
            if timestamp_ms == previous:
                buf.append(_T_SAME_TIMESTAMP)
                continue
            previous = timestamp_ms
        else:
            previous = None
        _put_value(buf, timestamp_ms)


def _encode(record: ChangeRecord) -> bytes:
    action, primary_key, columns, origin_columns, sequence, channel_id = record
    buf = bytearray(b"\x01")
    if sequence is None:
        buf.append(_ACTION_CODES[action])
    else:
        buf.append(_ACTION_CODES[action] | _HAS_SEQUENCE)
        epoch, timestamp, row_index = sequence
        _put_value(buf, epoch)
        _put_value(buf, timestamp)
        _put_value(buf, row_index)
    _put_name(buf, channel_id)
    _put_count(buf, len(primary_key))
    for name, value in primary_key:
        _put_name(buf, name)
        _put_value(buf, value)
    _put_columns(buf, columns)
    _put_columns(buf, origin_columns)
    return bytes(buf)


# ---- decoding -----------------------------------------------------------------


# Column names, key names and channel ids repeat in every record of a table:
# decoding each once and handing out the same str saves time and, across
# millions of records, memory. Bounded, as a table's names are open-ended.
_NAMES: Dict[bytes, str] = {}
_MAX_NAMES = 4096


def _remember_name(raw: bytes) -> str:
    name = raw.decode()
    if len(_NAMES) < _MAX_NAMES:
        _NAMES[raw] = name
    return name


def _read_varint(data: bytes, pos: int) -> Tuple[int, int]:
    result = shift = 0
    for _ in range(_MAX_VARINT_BYTES):
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
    raise _Invalid(f"a varint longer than {_MAX_VARINT_BYTES} bytes")


def _read_value(data: bytes, pos: int) -> Tuple[Any, int]:
    tag = data[pos]
    pos += 1
    if tag >= _T_STR:
        if tag < _T_BYTES:
            end = pos + tag - _T_STR
            return data[pos:end].decode(), end
        if tag < 0xC0:
            end = pos + tag - _T_BYTES
            return data[pos:end], end
    elif tag >= _T_INT:
        if tag < _T_NEG_INT:
            end = pos + tag - _T_INT
            return _from_bytes(data[pos:end], "big"), end
        if tag < 0x30:
            end = pos + tag - _T_NEG_INT
            return ~_from_bytes(data[pos:end], "big"), end
    elif tag == _T_FLOAT:
        return _unpack_double_from(data, pos)[0], pos + 8
    elif tag < len(_CONSTANTS):
        return _CONSTANTS[tag], pos
    elif tag == _T_LONG_STR:
        n, pos = _read_varint(data, pos)
        return data[pos : pos + n].decode(), pos + n
    elif tag == _T_LONG_BYTES:
        n, pos = _read_varint(data, pos)
        return data[pos : pos + n], pos + n
    elif tag == _T_BIG_INT:
        n, pos = _read_varint(data, pos)
        return _from_bytes(data[pos : pos + n], "big"), pos + n
    elif tag == _T_BIG_NEG_INT:
        n, pos = _read_varint(data, pos)
        return ~_from_bytes(data[pos : pos + n], "big"), pos + n
    raise _Invalid(f"unknown value tag 0x{tag:02x}")


def _decode(data: bytes) -> ChangeRecord:
    # One frame for the whole record, value reading inlined for the common
    # tags: this is the hot path of every runner shuffle. ``section`` and
    # ``index`` only feed the error message.
    section, index, pos = "the header", -1, 0
    read_value = _read_value
    read_varint = _read_varint
    from_bytes = _from_bytes
    new = _new_tuple
    names = _NAMES
    constants = _CONSTANTS
    unpack_double_from = _unpack_double_from
    try:
        if data[0] != FORMAT_VERSION:
            raise _Invalid(f"format version {data[0]} is not one this coder reads (it reads {FORMAT_VERSION})")
        flags = data[1]
        if flags & ~_KNOWN_FLAGS or flags & 0x03 == 0x03:
            raise _Invalid(f"flags byte 0x{flags:02x} has bits this format does not define")
        pos = 2
        sequence = None
        if flags & _HAS_SEQUENCE:
            section = "the sequence"
            parts = []
            for _ in range(3):
                tag = data[pos]
                if _T_INT <= tag < _T_NEG_INT:
                    end = pos + 1 + tag - _T_INT
                    parts.append(from_bytes(data[pos + 1 : end], "big"))
                    pos = end
                else:
                    value, pos = read_value(data, pos)
                    parts.append(value)
            sequence = new(SequenceInfo, parts)
        section = "channel_id"
        n = data[pos]
        pos += 1
        if n >= 0x80:
            n, pos = read_varint(data, pos - 1)
        raw = data[pos : pos + n]
        channel_id = names.get(raw)
        if channel_id is None:
            channel_id = _remember_name(raw)
        pos += n
        section = "primary_key"
        count = data[pos]
        pos += 1
        if count >= 0x80:
            count, pos = read_varint(data, pos - 1)
        pairs = []
        for index in range(count):
            n = data[pos]
            pos += 1
            if n >= 0x80:
                n, pos = read_varint(data, pos - 1)
            end = pos + n
            raw = data[pos:end]
            name = names.get(raw)
            if name is None:
                name = _remember_name(raw)
            tag = data[end]
            if _T_STR <= tag < _T_BYTES:
                pos = end + 1 + tag - _T_STR
                value = data[end + 1 : pos].decode()
            elif _T_INT <= tag < _T_NEG_INT:
                pos = end + 1 + tag - _T_INT
                value = from_bytes(data[end + 1 : pos], "big")
            else:
                value, pos = read_value(data, end)
            pairs.append((name, value))
        index = -1
        column_lists = []
        ops = _OPS
        for section in ("columns", "origin_columns"):
            count = data[pos]
            pos += 1
            if count >= 0x80:
                count, pos = read_varint(data, pos - 1)
            columns = []
            append = columns.append
            previous = None  # the last int timestamp of this list
            for index in range(count):
                n = data[pos]
                pos += 1
                if n >= 0x80:
                    n, pos = read_varint(data, pos - 1)
                end = pos + n
                raw = data[pos:end]
                name = names.get(raw)
                if name is None:
                    name = _remember_name(raw)
                code = data[end]
                if code > 2:
                    raise _Invalid(f"unknown column op code {code}")
                pos = end + 1
                tag = data[pos]
                if _T_STR <= tag < _T_BYTES:
                    end = pos + 1 + tag - _T_STR
                    value = data[pos + 1 : end].decode()
                    pos = end
                elif _T_INT <= tag < _T_NEG_INT:
                    end = pos + 1 + tag - _T_INT
                    value = from_bytes(data[pos + 1 : end], "big")
                    pos = end
                elif tag < _T_FLOAT:
                    value = constants[tag]
                    pos += 1
                elif tag == _T_FLOAT:
                    value = unpack_double_from(data, pos + 1)[0]
                    pos += 9
                else:
                    value, pos = read_value(data, pos)
                tag = data[pos]
                if tag == _T_SAME_TIMESTAMP:
                    if previous is None:
                        raise _Invalid("a 'same timestamp' mark with no integer timestamp before it")
                    timestamp_ms = previous
                    pos += 1
                elif _T_INT <= tag < _T_NEG_INT:
                    end = pos + 1 + tag - _T_INT
                    timestamp_ms = previous = from_bytes(data[pos + 1 : end], "big")
                    pos = end
                else:
                    timestamp_ms, pos = read_value(data, pos)
                    previous = timestamp_ms if type(timestamp_ms) is int else None
                append(new(Column, (name, value, timestamp_ms, ops[code])))
            index = -1
            column_lists.append(tuple(columns))
        if pos != len(data):
            section = "the end of the record"
            if pos > len(data):
                raise _Invalid("the data ends inside a value (truncated?)")
            raise _Invalid(f"{len(data) - pos} unexpected byte(s) after the record")
    except Exception as err:  # noqa: BLE001 - re-raised saying what and where
        raise _decode_error(data, section, index, pos, err) from None
    return new(
        ChangeRecord,
        (_ACTIONS[flags & 0x03], tuple(pairs), column_lists[0], column_lists[1], sequence, channel_id),
    )


def _decode_error(data: bytes, section: str, index: int, pos: int, err: BaseException) -> CoderError:
    if isinstance(err, _Invalid):
        what = str(err)
    elif isinstance(err, IndexError) or isinstance(err, struct.error):
        what = "the data ends early (truncated?)"
    elif isinstance(err, UnicodeDecodeError):
        what = f"a name or string is not valid UTF-8 ({err.reason} at byte {err.start} of it)"
    else:
        what = f"{type(err).__name__}: {err}"
    where = section if index < 0 else f"{section}[{index}]"
    head = bytes(data[:16]).hex()
    return CoderError(
        f"cannot decode a ChangeRecord from {len(data)} bytes (starting {head}): {what}; "
        f"reading {where}, from offset {pos}"
    )


# ---- encode failures: find the field to blame ---------------------------------


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _value_problem(value: Any) -> str:
    try:
        _put_value(bytearray(), value)
    except _Invalid as err:
        return f"{_describe(value)}: {err}"
    except UnicodeEncodeError as err:
        return f"{_describe(value)}: not valid Unicode ({err.reason})"
    return ""


def _name_problem(name: Any) -> str:
    if type(name) is not str:
        return f"{_describe(name)}: a name must be a str, not {type(name).__name__}"
    try:
        name.encode()
    except UnicodeEncodeError as err:
        return f"{_describe(name)}: not valid Unicode ({err.reason})"
    return ""


def _column_problems(field: str, columns: Any):
    if not isinstance(columns, (tuple, list)):
        yield field, f"{_describe(columns)}: must be a tuple of Column"
        return
    for index, column in enumerate(columns):
        where = f"{field}[{index}]"
        if not isinstance(column, tuple) or len(column) != 4:
            yield where, f"{_describe(column)}: must be a Column (name, value, timestamp_ms, op)"
            continue
        name, value, timestamp_ms, op = column
        if op not in _OP_CODES:
            yield f"{where}.op", f"{_describe(op)}: not a ColumnOp"
        for part, problem in (
            ("name", _name_problem(name)),
            ("value", _value_problem(value)),
            ("timestamp_ms", _value_problem(timestamp_ms)),
        ):
            if problem:
                yield f"{where}.{part}", problem


def _record_problems(record: Any):
    if not isinstance(record, ChangeRecord):
        yield None, f"{_describe(record)}: a {type(record).__name__}, not a ChangeRecord"
        return
    if record.action not in _ACTION_CODES:
        yield "action", f"{_describe(record.action)}: not an Action"
    sequence = record.sequence
    if sequence is not None:
        if not isinstance(sequence, tuple) or len(sequence) != 3:
            yield "sequence", f"{_describe(sequence)}: must be None or a SequenceInfo"
        else:
            for part, value in zip(SequenceInfo._fields, sequence):
                problem = _value_problem(value)
                if problem:
                    yield f"sequence.{part}", problem
    problem = _name_problem(record.channel_id)
    if problem:
        yield "channel_id", problem
    primary_key = record.primary_key
    if not isinstance(primary_key, (tuple, list)):
        yield "primary_key", f"{_describe(primary_key)}: must be a tuple of (name, value) pairs"
    else:
        for index, pair in enumerate(primary_key):
            if not isinstance(pair, tuple) or len(pair) != 2:
                yield f"primary_key[{index}]", f"{_describe(pair)}: must be a (name, value) pair"
                continue
            for part, problem in (("name", _name_problem(pair[0])), ("value", _value_problem(pair[1]))):
                if problem:
                    yield f"primary_key[{index}].{part}", problem
    yield from _column_problems("columns", record.columns)
    yield from _column_problems("origin_columns", record.origin_columns)


def _encode_error(record: Any, err: BaseException) -> CoderError:
    for field, problem in _record_problems(record):
        if field is None:
            return CoderError(f"cannot encode {problem}")
        return CoderError(f"cannot encode ChangeRecord field {field} = {problem}")
    return CoderError(f"cannot encode {_describe(record)}: {type(err).__name__}: {err}")


# ---- the coder ----------------------------------------------------------------


class ChangeRecordCoder(beam_coders.Coder):
    """Encodes :class:`ChangeRecord` values in the compact format of this
    module's docstring; deterministic, so records may be GroupByKey keys.

    Registered for ``ChangeRecord`` when this module is imported. It has no
    state: all instances are equal and pickle as their class.

    Raises:
      CoderError: from ``encode``, naming the field that is not a valid
        ChangeRecord value; from ``decode``, naming what is wrong with the
        bytes (version, tag, truncation, UTF-8) and where.
    """

    def encode(self, value: ChangeRecord) -> bytes:
        try:
            return _encode(value)
        except Exception as err:  # noqa: BLE001 - re-raised with the field to blame
            raise _encode_error(value, err) from None

    def decode(self, encoded: bytes) -> ChangeRecord:
        if type(encoded) is not bytes:
            encoded = bytes(encoded)
        return _decode(encoded)

    def is_deterministic(self) -> bool:
        return True

    def to_type_hint(self):
        return ChangeRecord

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        return "ChangeRecordCoder"


beam_coders.registry.register_coder(ChangeRecord, ChangeRecordCoder)
