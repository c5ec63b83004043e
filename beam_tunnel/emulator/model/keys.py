"""Primary keys: schema checks and a byte encoding that sorts like Tablestore.

Rows are stored under :func:`sort_key` of their primary key, so that SQLite's
byte-wise BLOB order is Tablestore's key order and a GetRange is an index
range scan. Per column, in schema order:

* ``INF_MIN`` -> ``00``; ``INF_MAX`` -> ``02``; a value -> ``01`` + payload;
* INTEGER: 8 bytes big-endian of ``value + 2**63`` (signed order);
* STRING (UTF-8) / BINARY: the bytes with ``00`` escaped as ``00 FF``, then
  ``00 00`` - so a shorter value sorts before any longer one it prefixes and
  the columns after it cannot interfere.

Whole-key bounds: ``INF_MIN`` is ``b""`` (before every key), ``INF_MAX`` is
``b"\\xff"`` (after every key, since keys start with 00, 01 or 02).
"""

from __future__ import annotations

import struct
from typing import NamedTuple, Sequence, Tuple

from beam_tunnel.protocol.rows import AUTO_INCREMENT, INF_MAX, INF_MIN, PrimaryKey

from .. import errors

__all__ = [
    "PK_TYPES",
    "PkColumn",
    "sort_key",
    "sort_value",
    "bound_key",
    "check_primary_key",
    "type_of",
]

PK_TYPES = ("INTEGER", "STRING", "BINARY")
_MAX_PK_STRING_BYTES = 1024  # the real service's limit for STRING/BINARY keys

_PACK_U64 = struct.Struct(">Q").pack
_BIAS = 1 << 63
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
KEY_MIN = b""
KEY_MAX = b"\xff"


class PkColumn(NamedTuple):
    """One primary-key column of a table schema."""

    name: str
    type: str  # one of PK_TYPES
    auto_increment: bool = False


def type_of(value) -> str:
    """The Tablestore type name of a Python key value, for messages."""
    if value is INF_MIN or value is INF_MAX or value is AUTO_INCREMENT:
        return repr(value)
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "INTEGER"
    if isinstance(value, float):
        return "DOUBLE"
    if isinstance(value, str):
        return "STRING"
    if isinstance(value, bytes):
        return "BINARY"
    return type(value).__name__


def sort_value(value) -> bytes:
    """The sortable encoding of one key column value (or INF_MIN/INF_MAX)."""
    kind = type(value)
    if kind is int:
        return b"\x01" + _PACK_U64(value + _BIAS)
    if kind is str:
        value = value.encode("utf-8")
        kind = bytes
    if kind is bytes:
        return b"\x01" + value.replace(b"\x00", b"\x00\xff") + b"\x00\x00"
    if value is INF_MIN:
        return b"\x00"
    if value is INF_MAX:
        return b"\x02"
    raise ValueError(f"cannot order primary-key value {value!r} of type {type_of(value)}")


def sort_key(values: Sequence) -> bytes:
    """The sortable encoding of a key given as its values in schema order."""
    return b"".join([sort_value(v) for v in values])


def bound_key(bound) -> bytes:
    """Encoding of a range bound: INF_MIN / INF_MAX or a checked value tuple."""
    if bound is INF_MIN:
        return KEY_MIN
    if bound is INF_MAX:
        return KEY_MAX
    return sort_key(bound)


_TYPE_CHECK = {
    "INTEGER": lambda v: type(v) is int,
    "STRING": lambda v: type(v) is str,
    "BINARY": lambda v: type(v) is bytes,
}


def check_primary_key(
    schema: Sequence[PkColumn],
    primary_key: PrimaryKey,
    *,
    allow_inf: bool = False,
    allow_auto: bool = False,
) -> Tuple:
    """Check a primary key against the table schema; return its values.

    Args:
      schema: the table's key columns, in order.
      primary_key: (name, value) pairs as decoded from the request.
      allow_inf: accept INF_MIN / INF_MAX (range bounds).
      allow_auto: accept AUTO_INCREMENT in auto-increment columns (PutRow).

    Returns:
      The values in schema order.

    Raises:
      ServiceError: OTSParameterInvalid naming the column and the problem.
    """
    if len(primary_key) != len(schema):
        expected = ", ".join(c.name for c in schema)
        got = ", ".join(str(name) for name, _ in primary_key)
        raise errors.parameter_invalid(
            f"Validate PK size fail: the table's primary key is ({expected}), "
            f"the request has {len(primary_key)} column(s) ({got})."
        )
    values = []
    for position, (column, (name, value)) in enumerate(zip(schema, primary_key)):
        if name != column.name:
            raise errors.parameter_invalid(
                f"Validate PK name fail: primary-key column {position} must be {column.name!r}, got {name!r}."
            )
        if value is INF_MIN or value is INF_MAX:
            if not allow_inf:
                raise errors.parameter_invalid(
                    f"Primary-key column {name!r} cannot be {value!r} here; INF_MIN/INF_MAX only bound ranges."
                )
        elif value is AUTO_INCREMENT:
            if not (allow_auto and column.auto_increment):
                where = "outside PutRow" if column.auto_increment else "for a column without the AUTO_INCREMENT option"
                raise errors.parameter_invalid(
                    f"Primary-key column {name!r} cannot take AUTO_INCREMENT {where}."
                )
        elif not _TYPE_CHECK[column.type](value):
            raise errors.parameter_invalid(
                f"Validate PK type fail: column {name!r} is {column.type}, got {type_of(value)} {value!r:.100}."
            )
        elif column.type == "INTEGER":
            # PlainBuffer cannot carry more, but split keys and in-process
            # callers can.
            if not _INT64_MIN <= value <= _INT64_MAX:
                raise errors.parameter_invalid(f"Primary-key column {name!r}: integer {value} is outside int64.")
        else:
            size = len(value.encode("utf-8")) if column.type == "STRING" else len(value)
            if size > _MAX_PK_STRING_BYTES:
                raise errors.parameter_invalid(
                    f"Primary-key column {name!r} is {size} bytes long, more than {_MAX_PK_STRING_BYTES}."
                )
        values.append(value)
    return tuple(values)
