"""The write path: PutRow, UpdateRow, DeleteRow and BatchWriteRow.

:class:`RowWriter` applies the rows of one request in one SQLite
transaction: it checks each row, applies it to the stored versions
(``versions.py``), stores the new row and appends its stream-log record, so
a change is either stored and logged, or neither. In a batch a failing row
leaves no trace and the others are still written.

Write times: one per request, strictly increasing across the whole
emulator, shared by the request's rows; stream-log row indexes count from 0
per partition within the request. This module owns ``tbl_meta`` (the last
write time, so it stays monotonic across restarts) and the
``auto_increment`` column of ``tbl_tables``.
"""

from __future__ import annotations

from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

from beam_tunnel.errors import ServiceError
from beam_tunnel.protocol.plainbuffer import decode_row, encode_primary_key, encode_row, encode_row_without_pk
from beam_tunnel.protocol.rows import AUTO_INCREMENT, Row, SequenceInfo

from .. import errors
from . import streamlog
from .keys import check_primary_key, sort_key
from .schema import TableState
from .timeline import Timeline
from .versions import Versions, all_cells, apply_put, apply_update, from_cells, latest_cells

__all__ = [
    "DDL", "RowChange", "WriteResult", "RowWriter",
    "PUT", "UPDATE", "DELETE", "IGNORE", "EXPECT_EXIST", "EXPECT_NOT_EXIST", "RT_NONE", "RT_PK", "RT_AFTER_MODIFY",
]

# Write kinds: the tunnel ActionType numbers (also the table OperationType ones).
PUT, UPDATE, DELETE = 1, 2, 3
# Row existence expectations (table.proto RowExistenceExpectation).
IGNORE, EXPECT_EXIST, EXPECT_NOT_EXIST = 0, 1, 2
# Return types (table.proto ReturnType).
RT_NONE, RT_PK, RT_AFTER_MODIFY = 0, 1, 2

DDL = """
CREATE TABLE IF NOT EXISTS tbl_meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""

_MAX_BATCH_ROWS = 200  # the real service's BatchWriteRow limit
_PURGE_EVERY_US = 60 * 1_000_000  # lazy retention purge, at most once a minute per table
_WRITE_CU_BYTES = 4096  # one write capacity unit per started 4 KiB, as the service bills


class RowChange(NamedTuple):
    """One row write.

    Attributes:
      action: PUT, UPDATE or DELETE.
      table: table name.
      row: the key and, for PUT/UPDATE, the cells (UPDATE cells carry ops).
      condition: IGNORE, EXPECT_EXIST or EXPECT_NOT_EXIST.
      return_type: RT_NONE, RT_PK or RT_AFTER_MODIFY.
      return_columns: for RT_AFTER_MODIFY, the columns to return.
    """

    action: int
    table: str
    row: Row
    condition: int = IGNORE
    return_type: int = RT_NONE
    return_columns: Tuple[str, ...] = ()


class WriteResult(NamedTuple):
    """Outcome of one row write.

    Attributes:
      row: the row the request asked back (PlainBuffer), or None.
      write_cu: write capacity units consumed.
    """

    row: Optional[bytes]
    write_cu: int


class _WriteBatch:
    """Per-request write state: one write time, row indexes per partition,
    and the stream-log rows to append at the end."""

    __slots__ = ("write_us", "log_rows", "logged_tables", "_indexes")

    def __init__(self, write_us: int) -> None:
        self.write_us = write_us
        self.log_rows: List[tuple] = []
        self.logged_tables: set = set()
        self._indexes: Dict[int, int] = {}

    def next_index(self, pid: int) -> int:
        index = self._indexes.get(pid, 0)
        self._indexes[pid] = index + 1
        return index


class RowWriter:
    """Applies row writes for :class:`~.tables.TableBackend`.

    Its counters (last write time, auto-increment values, last purge) change
    only under the storage write lock. They are bumped before the
    transaction commits, so a rolled-back one leaves a gap, never a repeat.

    Args:
      storage: the emulator's :class:`~beam_tunnel.emulator.storage.Storage`.
      clock: the emulator's clock.
      lookup: ``lookup(table name) -> TableState``; raises OTSObjectNotExist.
      retention_floor_us: ``retention_floor_us(table name) -> µs``: stream-log
        entries written before it are expired (and purged here, lazily).
    """

    def __init__(
        self,
        storage,
        clock,
        lookup: Callable[[str], TableState],
        retention_floor_us: Callable[[str], int],
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._lookup = lookup
        self._retention_floor_us = retention_floor_us
        self._purged_at: Dict[int, int] = {}
        with storage.transaction() as conn:
            row = conn.execute("SELECT value FROM tbl_meta WHERE key = 'last_write_us'").fetchone()
            self.timeline = Timeline(clock, row[0] if row else 0)
            self._auto_increment: Dict[int, int] = dict(
                conn.execute("SELECT table_id, auto_increment FROM tbl_tables").fetchall()
            )

    def write_row(self, change: RowChange) -> WriteResult:
        """One row write; see ``TableBackend.write_row``."""
        result = self._write([change])[0]
        if isinstance(result, ServiceError):
            raise result
        return result

    def batch_write(self, changes: Sequence[RowChange]) -> List:
        """Rows written together; see ``TableBackend.batch_write``."""
        if not changes:
            raise errors.parameter_invalid("BatchWriteRow needs at least one row.")
        if len(changes) > _MAX_BATCH_ROWS:
            raise errors.parameter_invalid(
                f"BatchWriteRow takes at most {_MAX_BATCH_ROWS} rows, got {len(changes)}."
            )
        seen = set()
        for change in changes:
            marker = (change.table, change.row.primary_key)
            # Rows with an AUTO_INCREMENT column get distinct keys when written.
            if marker in seen and AUTO_INCREMENT not in (v for _, v in change.row.primary_key):
                raise errors.parameter_invalid(
                    f"BatchWriteRow has the row {change.row.primary_key!r:.300} of table {change.table!r} twice."
                )
            seen.add(marker)
        return self._write(changes)

    def _write(self, changes: Sequence[RowChange]) -> List:
        results: List = []
        write_us = None
        try:
            with self._storage.transaction() as conn:
                write_us = self._next_write_us(conn)
                batch = _WriteBatch(write_us)
                for change in changes:
                    try:
                        results.append(self._apply(conn, change, batch))
                    except ServiceError as err:
                        results.append(err)
                if batch.log_rows:
                    streamlog.append(conn, batch.log_rows)
                    self._maybe_purge(conn, batch.logged_tables, write_us)
        finally:
            if write_us is not None:
                # After the commit: from now on a snapshot read sees it.
                self.timeline.end_write(write_us)
        return results

    def _next_write_us(self, conn) -> int:
        # Strictly increasing across all partitions, even if the clock stalls
        # or steps back, and persisted so a restart keeps it so.
        now = self.timeline.begin_write()
        conn.execute("INSERT OR REPLACE INTO tbl_meta (key, value) VALUES ('last_write_us', ?)", (now,))
        return now

    def _apply(self, conn, change: RowChange, batch: _WriteBatch) -> WriteResult:
        state = self._lookup(change.table)
        info = state.info
        action = change.action
        if action not in (PUT, UPDATE, DELETE):
            raise errors.parameter_invalid(f"Unknown row operation {action!r}.")
        if action == UPDATE and not info.allow_update:
            raise errors.parameter_invalid(f"Table {info.name!r} does not allow UpdateRow (allow_update is false).")
        values = check_primary_key(info.primary_key, change.row.primary_key, allow_auto=action == PUT)
        if AUTO_INCREMENT in values:
            values = self._assign_auto_increment(conn, state.table_id, values, batch.write_us)
        pk = tuple(zip((c.name for c in info.primary_key), values))
        key = sort_key(values)
        stream = info.stream
        want_origin = stream.enabled and bool(stream.columns_to_get)
        # The stored row is read only when something depends on it.
        old = None
        if change.condition != IGNORE or action == UPDATE or want_origin:
            old = conn.execute(
                "SELECT latest, history FROM tbl_rows WHERE table_id = ? AND pk = ?", (state.table_id, key)
            ).fetchone()
        if change.condition == EXPECT_EXIST and old is None:
            raise errors.condition_check_fail()
        if change.condition == EXPECT_NOT_EXIST and old is not None:
            raise errors.condition_check_fail()
        # From ``history`` when there is one: an UPDATE keeps the older versions.
        old_row = decode_row(old[1] or old[0]) if old is not None and (action == UPDATE or want_origin) else None
        versions, logged = _new_versions(change, state, old is not None, old_row, batch.write_us // 1000)

        # Encode everything before touching the rows or the log, so a failing
        # row leaves neither (at most a gap in the auto-increment counter).
        latest = history = None
        if versions is not None:
            latest = encode_row(Row(pk, latest_cells(versions)))
            if any(len(column) > 1 for column in versions.values()):
                history = encode_row(Row(pk, all_cells(versions)))
        log_row = None
        if stream.enabled:
            part = state.partitions.route(values[0])
            index = batch.next_index(part.pid)
            sequence = SequenceInfo(part.partition.epoch, batch.write_us, index)
            record = encode_row(Row(pk, logged, action == DELETE, sequence))
            origin = _before_image(old_row, stream.columns_to_get) if want_origin else None
            log_row = (part.pid, batch.write_us, index, action, record, origin)
        returned = _returned_row(change, pk, versions)

        if action == DELETE:
            conn.execute("DELETE FROM tbl_rows WHERE table_id = ? AND pk = ?", (state.table_id, key))
        elif latest is not None:
            conn.execute(
                "INSERT OR REPLACE INTO tbl_rows (table_id, pk, latest, history) VALUES (?, ?, ?, ?)",
                (state.table_id, key, latest, history),
            )
        if log_row is not None:
            batch.log_rows.append(log_row)
            batch.logged_tables.add(info.name)
        size = len(latest) if latest is not None else len(key)
        return WriteResult(returned, max(1, -(-size // _WRITE_CU_BYTES)))

    def _assign_auto_increment(self, conn, table_id: int, values, write_us: int) -> Tuple:
        # Increasing per table, and time-like, as the real service's values are.
        value = max(self._auto_increment.get(table_id, 0) + 1, write_us)
        self._auto_increment[table_id] = value
        conn.execute("UPDATE tbl_tables SET auto_increment = ? WHERE table_id = ?", (value, table_id))
        return tuple(value if v is AUTO_INCREMENT else v for v in values)

    def _maybe_purge(self, conn, tables, now_us: int) -> None:
        for name in tables:
            state = self._lookup(name)
            if now_us - self._purged_at.get(state.table_id, 0) < _PURGE_EVERY_US:
                continue
            self._purged_at[state.table_id] = now_us
            streamlog.purge(conn, [p.pid for p in state.partitions.parts], self._retention_floor_us(name))


def _new_versions(
    change: RowChange, state: TableState, existed: bool, old_row: Optional[Row], write_ms: int
) -> Tuple[Optional[Versions], Tuple]:
    """The row's versions after ``change`` (None: no row) and its cells as
    the stream log records them."""
    if change.action == PUT:
        return apply_put(change.row.cells, state.key_names, write_ms, state.info.max_versions)
    if change.action == UPDATE:
        current = from_cells(old_row.cells) if old_row is not None else {}
        versions, logged = apply_update(current, change.row.cells, state.key_names, write_ms, state.info.max_versions)
        if not existed and not versions:
            return None, logged  # only deletes on a missing row: it stays missing
        return versions, logged
    return None, ()


def _before_image(old_row: Optional[Row], columns_to_get: Sequence[str]) -> Optional[bytes]:
    """The stream's ``columns_to_get`` of the row before the write (newest
    versions, without the key), or None when there was no row."""
    if old_row is None:
        return None
    wanted = set(columns_to_get)
    kept = {name: column for name, column in from_cells(old_row.cells).items() if name in wanted}
    return encode_row_without_pk(tuple(latest_cells(kept)))


def _returned_row(change: RowChange, pk, versions: Optional[Versions]) -> Optional[bytes]:
    if change.return_type == RT_PK:
        return encode_primary_key(pk)
    if change.return_type == RT_AFTER_MODIFY and versions is not None:
        names = set(change.return_columns) or {c.name for c in change.row.cells}
        cells = tuple(c for c in latest_cells(versions) if c.name in names)
        return encode_row(Row(pk, cells))
    return None
