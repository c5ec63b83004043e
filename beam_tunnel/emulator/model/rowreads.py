"""The read path: GetRow, GetRange and the base-data scan over stored rows.

A stored row is ``latest`` (PlainBuffer: key + newest version of each cell)
and ``history`` (every version, or None when no column has more than one).
Plain reads hand ``latest`` back untouched; only reads that select versions
or columns, or tables with a TTL, decode the row. :class:`RowReader` serves
the reads of ``TableBackend``; the functions below it are its pieces.
"""

from __future__ import annotations

import sqlite3
from typing import Iterator, List, NamedTuple, Optional, Sequence, Tuple

from beam_tunnel.errors import ServiceError
from beam_tunnel.protocol.plainbuffer import HEADER, decode_row, encode_row
from beam_tunnel.protocol.rows import INF_MAX, INF_MIN, PrimaryKey, Row

from .. import errors
from .keys import PkColumn, bound_key, check_primary_key, sort_key
from .schema import TableInfo, TableState
from .versions import ReadOptions, select_cells

__all__ = [
    "RangeResult", "RowReader", "select_row", "range_bounds", "scan_bound", "iterate", "read_page", "join_rows",
]


_CURRENT = ReadOptions()  # newest version of every column


class RangeResult(NamedTuple):
    """One GetRange page: PlainBuffer rows (b"" when none), the key to go on
    from (None when the range is exhausted) and the row count."""

    rows: bytes
    next_start: Optional[PrimaryKey]
    count: int


class RowReader:
    """Reads stored rows for :class:`~.tables.TableBackend` (which documents
    each read and resolves the table).

    Args:
      storage: the emulator's :class:`~beam_tunnel.emulator.storage.Storage`.
      clock: the emulator's clock (for TTL).
      range_max_rows: most rows in one GetRange page.
      range_max_bytes: most row bytes in one GetRange page.
      snapshots: the :class:`~.snapshots.Snapshots` full-data scans may read.
    """

    def __init__(self, storage, clock, range_max_rows: int, range_max_bytes: int, snapshots=None) -> None:
        self._storage = storage
        self._snapshots = snapshots
        self._clock = clock
        self._range_max_rows = range_max_rows
        self._range_max_bytes = range_max_bytes

    def _ttl_floor_ms(self, info: TableInfo) -> Optional[int]:
        if info.time_to_live == -1:
            return None
        return self._clock.now_ms() - info.time_to_live * 1000

    def get_row(self, state: TableState, primary_key: PrimaryKey, options: ReadOptions) -> bytes:
        values = check_primary_key(state.info.primary_key, primary_key)
        with self._storage.read() as conn:
            found = conn.execute(
                "SELECT latest, history FROM tbl_rows WHERE table_id = ? AND pk = ?",
                (state.table_id, sort_key(values)),
            ).fetchone()
        if found is None:
            return b""
        return select_row(found[0], found[1], options, self._ttl_floor_ms(state.info)) or b""

    def get_range(self, state: TableState, start, end, backward: bool, limit: Optional[int],
                  options: ReadOptions) -> RangeResult:
        low, high = range_bounds(state.info.primary_key, start, end, backward)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise errors.parameter_invalid(f"limit must be a positive integer, got {limit!r}.")
        cap = min(limit or self._range_max_rows, self._range_max_rows)
        with self._storage.read() as conn:
            rows, next_start = read_page(
                iterate(conn, state.table_id, low, high, backward),
                options, self._ttl_floor_ms(state.info), cap, self._range_max_bytes,
            )
        return RangeResult(join_rows(rows), next_start, len(rows))

    def scan(self, state: TableState, start_pk, end_pk, max_rows: int,
             max_bytes: int, snapshot: Optional[str] = None) -> Tuple[List[bytes], Optional[PrimaryKey]]:
        low = scan_bound(state.info.primary_key, start_pk)
        high = scan_bound(state.info.primary_key, end_pk)
        if low >= high:
            return [], None
        with self._storage.read() as conn:
            if snapshot is not None and self._snapshots is not None and snapshot in self._snapshots:
                rows = self._snapshots.iterate(conn, snapshot, low, high)
            else:
                rows = iterate(conn, state.table_id, low, high, False)
            return read_page(rows, None, self._ttl_floor_ms(state.info), max_rows, max_bytes)


def select_row(latest: bytes, history: Optional[bytes], options: ReadOptions,
               ttl_floor_ms: Optional[int]) -> Optional[bytes]:
    """The row bytes (with header) a read returns, or None for "no row"."""
    # ``latest`` is the answer when nothing is filtered and only the newest
    # versions are asked for, or when there are no older ones anyway.
    if ttl_floor_ms is None and options.whole_row and (options.max_versions == 1 or history is None):
        return latest
    row = decode_row(history or latest)
    cells = select_cells(row.cells, options, ttl_floor_ms)
    wanted = set(options.columns)
    if not cells:
        # Nothing asked for is there: like the service, return no row unless
        # the caller asked for key columns by name (or for the whole row of
        # a row that has no attribute columns).
        key_named = any(name in wanted for name, _ in row.primary_key)
        if (wanted and not key_named) or (not wanted and row.cells):
            return None
    # The whole key, whatever columns_to_get names: the official SDKs parse
    # every returned row as key + attributes.
    return encode_row(Row(row.primary_key, tuple(cells)))


def range_bounds(schema: Sequence[PkColumn], start, end, backward: bool) -> Tuple[bytes, bytes]:
    """Sortable keys of a GetRange's start and end, checked for direction.

    Raises:
      ServiceError: OTSParameterInvalid naming the bad bound.
    """
    keys = []
    for label, bound in (("inclusive_start_primary_key", start), ("exclusive_end_primary_key", end)):
        try:
            keys.append(scan_bound(schema, bound))
        except ServiceError as err:
            raise errors.parameter_invalid(f"{label}: {err.message}") from None
    low, high = keys
    if (low <= high) if backward else (low >= high):
        raise errors.parameter_invalid(
            f"The start primary key must be {'greater' if backward else 'less'} than the end "
            f"primary key for a {'BACKWARD' if backward else 'FORWARD'} range."
        )
    return low, high


def scan_bound(schema: Sequence[PkColumn], bound) -> bytes:
    """Sortable key of a scan bound (PrimaryKey, INF_MIN or INF_MAX)."""
    if bound is INF_MIN or bound is INF_MAX:
        return bound_key(bound)
    return sort_key(check_primary_key(schema, bound, allow_inf=True))


def iterate(conn: sqlite3.Connection, table_id: int, low: bytes, high: bytes,
            backward: bool) -> Iterator[Tuple[bytes, Optional[bytes]]]:
    """(latest, history) of stored rows between two sortable keys, lazily.

    Forward: low inclusive, high exclusive, ascending. Backward: ``low`` is
    the inclusive upper key and ``high`` the exclusive lower one, descending.
    """
    if backward:
        return conn.execute(
            "SELECT latest, history FROM tbl_rows WHERE table_id = ? AND pk <= ? AND pk > ? ORDER BY pk DESC",
            (table_id, low, high),
        )
    return conn.execute(
        "SELECT latest, history FROM tbl_rows WHERE table_id = ? AND pk >= ? AND pk < ? ORDER BY pk",
        (table_id, low, high),
    )


def read_page(rows: Iterator[Tuple[bytes, Optional[bytes]]], options: Optional[ReadOptions],
              ttl_floor_ms: Optional[int], max_rows: int, max_bytes: int) -> Tuple[List[bytes], Optional[PrimaryKey]]:
    """Collect selected rows (each with header) until a cap; return them and
    the key of the first row left unread (None when ``rows`` ran out).

    ``options`` None means "current state" (newest versions, all columns).
    At least one row is returned when any is selected, whatever max_bytes.
    """
    out: List[bytes] = []
    size = 0
    for latest, history in rows:
        if len(out) >= max_rows or (out and size >= max_bytes):
            return out, decode_row(latest).primary_key
        if options is None:
            # The base-data scan: the stored row as is, without a call per
            # row, unless a TTL may have expired some of its cells.
            selected = latest if ttl_floor_ms is None else select_row(latest, None, _CURRENT, ttl_floor_ms)
        else:
            selected = select_row(latest, history, options, ttl_floor_ms)
        if selected is not None:
            out.append(selected)
            size += len(selected)
    return out, None


def join_rows(rows: Sequence[bytes]) -> bytes:
    """Rows (each with header) as one PlainBuffer, b"" when there are none."""
    return HEADER + b"".join([row[len(HEADER):] for row in rows]) if rows else b""
