"""Multi-version cells of one row: applying writes, selecting for reads.

A row's state is ``{column name: [(timestamp ms, value), ...]}`` with each
list newest first. Pure functions, no storage: the table backend decodes a
stored row, calls these, and encodes the result.
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

from beam_tunnel.protocol.rows import Cell, CellOp

from .. import errors

__all__ = [
    "Versions",
    "ReadOptions",
    "check_name",
    "from_cells",
    "apply_put",
    "apply_update",
    "latest_cells",
    "all_cells",
    "select_cells",
]

Versions = Dict[str, List[Tuple[int, object]]]

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
_INT64_MAX = (1 << 63) - 1
_ATTRIBUTE_TYPES = (int, float, bool, str, bytes)


class ReadOptions(NamedTuple):
    """What GetRow / GetRange return of each row.

    Attributes:
      columns: names to return (key and attribute columns alike); empty
        means all.
      max_versions: newest versions per column to return; None means all
        versions in ``time_range``.
      time_range: ``(start, end)`` ms, start inclusive, end exclusive; or None.
      start_column / end_column: attribute names in [start, end) only.
    """

    columns: Tuple[str, ...] = ()
    max_versions: Optional[int] = 1
    time_range: Optional[Tuple[int, int]] = None
    start_column: Optional[str] = None
    end_column: Optional[str] = None

    @property
    def whole_row(self) -> bool:
        """True when no column, time or column-range filter applies (only
        ``max_versions`` may limit what is returned)."""
        return not self.columns and self.time_range is None and self.start_column is None and self.end_column is None


def check_name(kind: str, name) -> str:
    """Tablestore naming rule: a letter or ``_``, then letters, digits, ``_``; 1-255."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise errors.parameter_invalid(
            f"Invalid {kind} name {name!r:.300}: use 1-255 letters, digits or '_', not starting with a digit."
        )
    return name


def _check_value(name: str, value) -> None:
    if isinstance(value, bool) or type(value) in _ATTRIBUTE_TYPES:
        if type(value) is int and not -(1 << 63) <= value <= _INT64_MAX:
            raise errors.parameter_invalid(f"Column {name!r}: integer {value} is outside int64.")
        return
    raise errors.parameter_invalid(f"Column {name!r}: {value!r:.100} is not a valid attribute value.")


def _check_timestamp(name: str, timestamp) -> int:
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or not 0 <= timestamp <= _INT64_MAX:
        raise errors.parameter_invalid(f"Column {name!r}: invalid timestamp {timestamp!r}.")
    return timestamp


def _insert(column: List[Tuple[int, object]], timestamp: int, value) -> None:
    """Insert keeping newest-first order; a version with the same timestamp is replaced."""
    for index, (ts, _) in enumerate(column):
        if ts == timestamp:
            column[index] = (timestamp, value)
            return
        if ts < timestamp:
            column.insert(index, (timestamp, value))
            return
    column.append((timestamp, value))


def _trim(versions: Versions, max_versions: int) -> Versions:
    for name, column in versions.items():
        if len(column) > max_versions:
            del column[max_versions:]
    return versions


def from_cells(cells: Iterable[Cell]) -> Versions:
    """Versions of a stored row (cells carry name, value, timestamp)."""
    versions: Versions = {}
    for cell in cells:
        _insert(versions.setdefault(cell.name, []), cell.timestamp or 0, cell.value)
    return versions


def apply_put(cells: Sequence[Cell], key_names, write_ms: int, max_versions: int) -> Tuple[Versions, Tuple[Cell, ...]]:
    """A PutRow: the new row state and the cells as logged (timestamps filled).

    Raises:
      ServiceError: OTSParameterInvalid for a non-put cell, a bad name,
        value or timestamp, or a column named like a key column.
    """
    versions: Versions = {}
    logged = []
    for cell in cells:
        name = check_name("column", cell.name)
        if name in key_names:
            raise errors.parameter_invalid(f"Attribute column {name!r} has the name of a primary-key column.")
        if cell.op is not CellOp.PUT:
            raise errors.parameter_invalid(f"PutRow column {name!r} has op {cell.op.name}; PutRow only puts values.")
        _check_value(name, cell.value)
        ts = write_ms if cell.timestamp is None else _check_timestamp(name, cell.timestamp)
        _insert(versions.setdefault(name, []), ts, cell.value)
        logged.append(Cell(name, cell.value, ts))
    return _trim(versions, max_versions), tuple(logged)


def apply_update(
    versions: Versions, cells: Sequence[Cell], key_names, write_ms: int, max_versions: int
) -> Tuple[Versions, Tuple[Cell, ...]]:
    """An UpdateRow on ``versions`` (changed in place): the new state and the
    cells as logged (puts with timestamps; increments become puts of the sum).

    Raises:
      ServiceError: OTSParameterInvalid for a malformed cell or an increment
        of a non-integer column.
    """
    logged = []
    for cell in cells:
        name = check_name("column", cell.name)
        if name in key_names:
            raise errors.parameter_invalid(f"Attribute column {name!r} has the name of a primary-key column.")
        op = cell.op
        if op is CellOp.PUT:
            _check_value(name, cell.value)
            ts = write_ms if cell.timestamp is None else _check_timestamp(name, cell.timestamp)
            _insert(versions.setdefault(name, []), ts, cell.value)
            logged.append(Cell(name, cell.value, ts))
        elif op is CellOp.DELETE_ONE_VERSION:
            if cell.timestamp is None:
                raise errors.parameter_invalid(f"Column {name!r}: deleting one version needs its timestamp.")
            ts = _check_timestamp(name, cell.timestamp)
            column = versions.get(name)
            if column:
                column[:] = [version for version in column if version[0] != ts]
                if not column:
                    del versions[name]
            logged.append(Cell(name, None, ts, CellOp.DELETE_ONE_VERSION))
        elif op is CellOp.DELETE_ALL_VERSIONS:
            versions.pop(name, None)
            logged.append(Cell(name, None, None, CellOp.DELETE_ALL_VERSIONS))
        elif op is CellOp.INCREMENT:
            delta = cell.value
            if isinstance(delta, bool) or not isinstance(delta, int):
                raise errors.parameter_invalid(f"Column {name!r}: increment needs an integer, got {delta!r:.100}.")
            column = versions.get(name)
            current = column[0][1] if column else 0
            if isinstance(current, bool) or not isinstance(current, int):
                raise errors.parameter_invalid(f"Column {name!r} holds {current!r:.100}; only integers can be incremented.")
            total = current + delta
            _check_value(name, total)
            _insert(versions.setdefault(name, []), write_ms, total)
            logged.append(Cell(name, total, write_ms))
        else:  # pragma: no cover - the codec only produces the ops above
            raise errors.parameter_invalid(f"Column {name!r}: unsupported op {op!r}.")
    return _trim(versions, max_versions), tuple(logged)


def latest_cells(versions: Versions) -> Tuple[Cell, ...]:
    """The newest version of each column, columns in name order."""
    return tuple(Cell(name, versions[name][0][1], versions[name][0][0]) for name in sorted(versions) if versions[name])


def all_cells(versions: Versions) -> Tuple[Cell, ...]:
    """Every version, columns in name order, newest first within a column."""
    return tuple(Cell(name, value, ts) for name in sorted(versions) for ts, value in versions[name])


def select_cells(cells: Sequence[Cell], options: ReadOptions, expired_before_ms: Optional[int]) -> List[Cell]:
    """The stored ``cells`` (name order, newest first) a read asks for.

    ``expired_before_ms`` drops versions older than the table's TTL.
    """
    wanted = set(options.columns) if options.columns else None
    start, end = options.time_range if options.time_range else (None, None)
    out: List[Cell] = []
    taken_name, taken = None, 0
    for cell in cells:
        name, ts = cell.name, cell.timestamp
        if wanted is not None and name not in wanted:
            continue
        if options.start_column is not None and name < options.start_column:
            continue
        if options.end_column is not None and name >= options.end_column:
            continue
        if expired_before_ms is not None and ts < expired_before_ms:
            continue
        if start is not None and not start <= ts < end:
            continue
        if name != taken_name:
            taken_name, taken = name, 0
        if options.max_versions is not None and taken >= options.max_versions:
            continue
        taken += 1
        out.append(cell)
    return out
