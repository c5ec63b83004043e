"""Plain value types for rows as the PlainBuffer codec reads and writes them.

Cell values are ordinary Python values, chosen so that the PlainBuffer value
type follows from the Python type:

=================  =====================
Python value        PlainBuffer type
=================  =====================
``int``             INTEGER (int64)
``float``           DOUBLE
``bool``            BOOLEAN
``str``             STRING (UTF-8)
``bytes``           BLOB (BINARY in keys)
``INF_MIN``         INF_MIN (range bounds)
``INF_MAX``         INF_MAX (range bounds)
``AUTO_INCREMENT``  AUTO_INCREMENT (keys)
=================  =====================

``bool`` is tested before ``int`` everywhere, since ``True`` is an ``int``.
All types here are immutable and picklable.
"""

from __future__ import annotations

import enum
from typing import NamedTuple, Optional, Tuple, Union

__all__ = [
    "INF_MIN",
    "INF_MAX",
    "AUTO_INCREMENT",
    "CellOp",
    "Cell",
    "SequenceInfo",
    "Row",
    "Value",
    "PrimaryKey",
]


class _Sentinel:
    """A named singleton value that survives pickling as itself."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name

    def __reduce__(self):
        return self._name


INF_MIN = _Sentinel("INF_MIN")
"""Sorts before every value: the open lower bound of a key range."""

INF_MAX = _Sentinel("INF_MAX")
"""Sorts after every value: the open upper bound of a key range."""

AUTO_INCREMENT = _Sentinel("AUTO_INCREMENT")
"""Asks the server to fill an auto-increment primary-key column."""

Value = Union[int, float, bool, str, bytes, _Sentinel]
PrimaryKey = Tuple[Tuple[str, Value], ...]


class CellOp(enum.IntEnum):
    """What a data cell does. Values are the PlainBuffer CELL_TYPE bytes;
    ``PUT`` (no CELL_TYPE on the wire) is 0."""

    PUT = 0
    DELETE_ALL_VERSIONS = 1
    DELETE_ONE_VERSION = 3
    INCREMENT = 4


class Cell(NamedTuple):
    """One data cell.

    Shapes by op: PUT has a value and usually a timestamp; DELETE_ONE_VERSION
    has a timestamp and no value; DELETE_ALL_VERSIONS has neither; INCREMENT
    (requests only) has an integer value.
    """

    name: str
    value: Optional[Value] = None
    timestamp: Optional[int] = None  # cell version, ms since epoch
    op: CellOp = CellOp.PUT


class SequenceInfo(NamedTuple):
    """Position of a stream record in its partition's log.

    Records order lexicographically by (epoch, timestamp, row_index).
    """

    epoch: int
    timestamp: int  # write time, µs since epoch
    row_index: int

    def __str__(self) -> str:
        return f"{self.epoch:08x}:{self.timestamp:016x}:{self.row_index:08x}"


class Row(NamedTuple):
    """One PlainBuffer row: primary key, data cells, delete marker, sequence info."""

    primary_key: PrimaryKey
    cells: Tuple[Cell, ...] = ()
    deleted: bool = False
    sequence: Optional[SequenceInfo] = None
