"""Tables: rows with multi-version cells, partitions, stream log.

:class:`TableBackend` has one method per table operation, taking plain
Python values and returning plain values or ready PlainBuffer bytes; it
knows nothing of HTTP or protobuf. Every write runs in one SQLite
transaction that also appends the stream-log records of the rows it
changed, so a change is either stored and logged, or neither.

Table metadata and its checks live in ``schema.py``, read helpers in
``rowreads.py``, version rules in ``versions.py``. Storage layout (see
``keys.py`` for the key encoding)::

    tbl_tables      table id, name, schema/options as JSON, auto-increment counter
    tbl_partitions  see partitions.py
    tbl_rows        (table id, sortable key) -> latest row, all versions
    tbl_meta        last stream-log write time, so it stays monotonic
    stream_log      see streamlog.py

``tbl_rows.latest`` is the row as a PlainBuffer (header, key, newest
version of each cell): exactly a GetRow answer and a base-data tunnel
record, served without decoding. ``history`` holds every version, and is
NULL when no column has more than one.
"""

from __future__ import annotations

import logging
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

from beam_tunnel.errors import ServiceError
from beam_tunnel.protocol.plainbuffer import decode_row, encode_primary_key, encode_row, encode_row_without_pk
from beam_tunnel.protocol.rows import AUTO_INCREMENT, PrimaryKey, Row, SequenceInfo

from .. import errors
from . import partitions as parts_db
from . import rowreads, streamlog
from .keys import PkColumn, check_primary_key, sort_key, sort_value
from .partitions import Partition, PartitionMap
from .rowreads import RangeResult
from .schema import (
    StreamInfo,
    StreamSpec,
    TableInfo,
    check_defined,
    check_options,
    check_schema,
    check_split_points,
    info_from_json,
    info_to_json,
    next_stream_info,
)
from .versions import ReadOptions, all_cells, apply_put, apply_update, check_name, from_cells, latest_cells

__all__ = [
    "TableBackend", "TableInfo", "StreamSpec", "StreamInfo", "RowChange", "WriteResult", "RangeResult",
    "Partition", "PkColumn", "ReadOptions",
    "PUT", "UPDATE", "DELETE", "IGNORE", "EXPECT_EXIST", "EXPECT_NOT_EXIST", "RT_NONE", "RT_PK", "RT_AFTER_MODIFY",
]

_LOGGER = logging.getLogger(__name__)

# Write kinds: the tunnel ActionType numbers (also the table OperationType ones).
PUT, UPDATE, DELETE = 1, 2, 3
# Row existence expectations (table.proto RowExistenceExpectation).
IGNORE, EXPECT_EXIST, EXPECT_NOT_EXIST = 0, 1, 2
# Return types (table.proto ReturnType).
RT_NONE, RT_PK, RT_AFTER_MODIFY = 0, 1, 2

_DDL = """
CREATE TABLE IF NOT EXISTS tbl_tables (
    table_id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    info TEXT NOT NULL,
    auto_increment INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS tbl_rows (
    table_id INTEGER NOT NULL,
    pk BLOB NOT NULL,
    latest BLOB NOT NULL,
    history BLOB,
    PRIMARY KEY (table_id, pk)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tbl_meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""

_MAX_BATCH_ROWS = 200  # the real service's BatchWriteRow limit
_PURGE_EVERY_US = 60 * 1_000_000  # lazy retention purge, at most once a minute per table
_WRITE_CU_BYTES = 4096


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
    """Outcome of one row write: the row to return (PlainBuffer) or None."""

    row: Optional[bytes]
    write_cu: int


class _Table(NamedTuple):
    """Cached, immutable state of one table (replaced wholesale on change)."""

    table_id: int
    info: TableInfo
    key_names: frozenset
    partitions: PartitionMap


class TableBackend:
    """Tables, rows and partitions of one emulator.

    Args:
      storage: the emulator's :class:`~beam_tunnel.emulator.storage.Storage`.
      clock: the emulator's clock.
      range_max_rows: most rows in one GetRange page.
      range_max_bytes: most row bytes in one GetRange page.
    """

    def __init__(self, storage, clock, range_max_rows: int = 5000, range_max_bytes: int = 4 << 20) -> None:
        self._storage = storage
        self._clock = clock
        self._range_max_rows = range_max_rows
        self._range_max_bytes = range_max_bytes
        self._deleted_callbacks: List[Callable] = []
        self._purged_at: Dict[int, int] = {}
        self._auto_increment: Dict[int, int] = {}
        storage.ensure_schema(_DDL + parts_db.DDL + streamlog.DDL)
        self._tables: Dict[str, _Table] = {}
        with storage.transaction() as conn:
            row = conn.execute("SELECT value FROM tbl_meta WHERE key = 'last_write_us'").fetchone()
            self._last_write_us = row[0] if row else 0
            partition_rows = parts_db.load_all(conn)
            for table_id, name, info_json, auto in conn.execute(
                "SELECT table_id, name, info, auto_increment FROM tbl_tables"
            ).fetchall():
                self._auto_increment[table_id] = auto
                self._cache(table_id, info_from_json(info_json), partition_rows.get(table_id, []))

    # ------------------------------------------------------------------
    # Cache and lookups

    def _cache(self, table_id: int, info: TableInfo, partition_rows) -> _Table:
        pmap = PartitionMap(info.name, info.primary_key, partition_rows)
        info = info._replace(split_points=pmap.split_points())
        state = _Table(table_id, info, frozenset(c.name for c in info.primary_key), pmap)
        self._tables[info.name] = state
        return state

    def _recache(self, conn, state: _Table, info: Optional[TableInfo] = None) -> _Table:
        rows = parts_db.load_all(conn, state.table_id).get(state.table_id, [])
        return self._cache(state.table_id, info or state.info, rows)

    def _table(self, name: str) -> _Table:
        state = self._tables.get(name)
        if state is None:
            raise errors.object_not_exist(f"Requested table {name!r} does not exist.")
        return state

    def _log_source(self, table: str, partition_id: str) -> Tuple[int, int]:
        """(pid, epoch) of a partition, for the stream log."""
        part = self._table(table).partitions.by_id.get(partition_id)
        if part is None:
            raise errors.object_not_exist(f"Partition {partition_id!r} of table {table!r} does not exist.")
        return part.pid, part.partition.epoch

    def _retention_floor_us(self, table: str) -> int:
        stream = self._table(table).info.stream
        now = self._clock.now_us()
        if not stream.enabled:
            return now
        return now - stream.expiration_hours * 3600 * 1_000_000

    def on_table_deleted(self, callback: Callable) -> None:
        """Run ``callback(conn, table_name)`` inside every DeleteTable transaction."""
        self._deleted_callbacks.append(callback)

    # ------------------------------------------------------------------
    # Table operations

    def create_table(
        self,
        name: str,
        primary_key: Sequence[PkColumn],
        *,
        defined_columns: Sequence[Tuple[str, str]] = (),
        time_to_live: int = -1,
        max_versions: int = 1,
        deviation_s: int = 86400,
        allow_update: bool = True,
        reserved_read: int = 0,
        reserved_write: int = 0,
        split_points: Sequence = (),
        stream: Optional[StreamSpec] = None,
    ) -> TableInfo:
        """Create a table with one partition per range between split points.

        Args:
          name: table name.
          primary_key: 1-4 key columns; auto-increment only on a non-first
            INTEGER column.
          defined_columns: (name, type) of predefined attribute columns.
          time_to_live: seconds cells live, or -1 (forever); >= 86400.
          max_versions: versions kept per column (>= 1).
          split_points: increasing first-column values where partitions begin.
          stream: stream settings, or None for no stream.

        Raises:
          ServiceError: OTSObjectAlreadyExist, or OTSParameterInvalid naming
            the bad argument.
        """
        check_name("table", name)
        schema = check_schema(primary_key)
        defined = check_defined(defined_columns, schema)
        check_options(time_to_live, max_versions, deviation_s)
        points = check_split_points(schema, split_points)
        now_us = self._clock.now_us()
        stream_info = next_stream_info(name, StreamInfo(), stream, now_us) if stream else StreamInfo()
        info = TableInfo(
            name=name, primary_key=schema, defined_columns=defined, time_to_live=time_to_live,
            max_versions=max_versions, deviation_s=deviation_s, allow_update=bool(allow_update),
            reserved_read=reserved_read, reserved_write=reserved_write,
            throughput_changed_s=now_us // 1_000_000, created_us=now_us, stream=stream_info,
        )
        with self._storage.transaction() as conn:
            if name in self._tables:
                raise errors.object_already_exist(f"Requested table {name!r} already exists.")
            table_id = conn.execute(
                "INSERT INTO tbl_tables (name, info) VALUES (?, ?)", (name, info_to_json(info))
            ).lastrowid
            bounds = [None, *points, None]
            for ordinal, (low, high) in enumerate(zip(bounds, bounds[1:])):
                parts_db.insert(conn, table_id, self._partition_id(info, ordinal), ordinal, low, high, 0, ())
            self._auto_increment[table_id] = 0
            state = self._recache(conn, _Table(table_id, info, frozenset(), None))
        _LOGGER.info("[tables] created %s with %d partition(s)", name, len(points) + 1)
        return state.info

    @staticmethod
    def _partition_id(info: TableInfo, ordinal: int) -> str:
        # Table name plus creation time, so a re-created table never reuses
        # an id a tunnel of the old one may still remember.
        return f"{info.name}_{info.created_us}_{ordinal}"

    def delete_table(self, name: str) -> None:
        """Delete a table, its rows, partitions and stream log.

        Raises:
          ServiceError: OTSObjectNotExist.
        """
        with self._storage.transaction() as conn:
            state = self._table(name)
            streamlog.drop(conn, [p.pid for p in state.partitions.parts])
            parts_db.drop(conn, state.table_id)
            conn.execute("DELETE FROM tbl_rows WHERE table_id = ?", (state.table_id,))
            conn.execute("DELETE FROM tbl_tables WHERE table_id = ?", (state.table_id,))
            for callback in self._deleted_callbacks:
                callback(conn, name)
            del self._tables[name]
        _LOGGER.info("[tables] deleted %s", name)

    def list_tables(self) -> List[str]:
        """Names of all tables, sorted."""
        return sorted(self._tables)

    def describe_table(self, name: str) -> TableInfo:
        """The table's schema, options, stream and split points.

        Raises:
          ServiceError: OTSObjectNotExist.
        """
        return self._table(name).info

    def update_table(
        self,
        name: str,
        *,
        time_to_live: Optional[int] = None,
        max_versions: Optional[int] = None,
        deviation_s: Optional[int] = None,
        allow_update: Optional[bool] = None,
        reserved_read: Optional[int] = None,
        reserved_write: Optional[int] = None,
        stream: Optional[StreamSpec] = None,
    ) -> TableInfo:
        """Change options, reserved throughput or the stream (None = keep).

        Disabling the stream drops its log; enabling it starts a new stream
        id with an empty log.

        Raises:
          ServiceError: OTSObjectNotExist or OTSParameterInvalid.
        """
        with self._storage.transaction() as conn:
            state = self._table(name)
            info = state.info
            changes = {}
            for field, value in (("time_to_live", time_to_live), ("max_versions", max_versions),
                                 ("deviation_s", deviation_s), ("allow_update", allow_update)):
                if value is not None:
                    changes[field] = value
            check_options(
                changes.get("time_to_live", info.time_to_live),
                changes.get("max_versions", info.max_versions),
                changes.get("deviation_s", info.deviation_s),
            )
            now_us = self._clock.now_us()
            if reserved_read is not None or reserved_write is not None:
                changes["reserved_read"] = info.reserved_read if reserved_read is None else reserved_read
                changes["reserved_write"] = info.reserved_write if reserved_write is None else reserved_write
                changes["throughput_changed_s"] = now_us // 1_000_000
            if stream is not None:
                changes["stream"] = next_stream_info(name, info.stream, stream, now_us)
                if info.stream.enabled and not stream.enabled:
                    streamlog.drop(conn, [p.pid for p in state.partitions.parts])
            info = info._replace(**changes)
            conn.execute("UPDATE tbl_tables SET info = ? WHERE table_id = ?", (info_to_json(info), state.table_id))
            state = self._recache(conn, state, info)
        return state.info

    # ------------------------------------------------------------------
    # Partitions (admin actions)

    def list_partitions(self, table: str) -> List[Partition]:
        """All partitions of a table, open and closed, in key order.

        Raises:
          ServiceError: OTSObjectNotExist.
        """
        return [p.partition for p in self._table(table).partitions.parts]

    def split_partition(self, table: str, partition_id: str, split_key) -> Tuple[Partition, Partition]:
        """Split an open partition at ``split_key`` (a first-column value or a
        PrimaryKey whose first column holds it); close the parent.

        Returns:
          The two children, lower range first.

        Raises:
          ServiceError: OTSObjectNotExist, or OTSParameterInvalid when the
            partition is closed or the key is not strictly inside it.
        """
        with self._storage.transaction() as conn:
            state = self._table(table)
            parent = self._open_part(state, partition_id)
            value = self._split_value(state, split_key)
            key = sort_value(value)
            if not parent.low_key < key < parent.high_key:
                raise errors.parameter_invalid(
                    f"Split key {value!r} is not strictly inside partition {partition_id!r}."
                )
            ordinal = state.partitions.next_ordinal
            epoch = parent.partition.epoch + 1
            ids = (self._partition_id(state.info, ordinal), self._partition_id(state.info, ordinal + 1))
            parts_db.close(conn, [parent.pid])
            parts_db.insert(conn, state.table_id, ids[0], ordinal, parent.low, value, epoch, (partition_id,))
            parts_db.insert(conn, state.table_id, ids[1], ordinal + 1, value, parent.high, epoch, (partition_id,))
            state = self._recache(conn, state)
        _LOGGER.info("[tables] split %s/%s at %r into %s", table, partition_id, value, ids)
        return state.partitions.by_id[ids[0]].partition, state.partitions.by_id[ids[1]].partition

    def merge_partitions(self, table: str, left_id: str, right_id: str) -> Partition:
        """Merge two adjacent open partitions (``left`` ends where ``right``
        starts) into one; close both.

        Raises:
          ServiceError: OTSObjectNotExist, or OTSParameterInvalid when either
            is closed or they are not adjacent in that order.
        """
        with self._storage.transaction() as conn:
            state = self._table(table)
            left = self._open_part(state, left_id)
            right = self._open_part(state, right_id)
            if left.high_key != right.low_key:
                raise errors.parameter_invalid(
                    f"Partitions {left_id!r} and {right_id!r} are not adjacent (left must end where right starts)."
                )
            ordinal = state.partitions.next_ordinal
            child_id = self._partition_id(state.info, ordinal)
            epoch = max(left.partition.epoch, right.partition.epoch) + 1
            parts_db.close(conn, [left.pid, right.pid])
            parts_db.insert(conn, state.table_id, child_id, ordinal, left.low, right.high, epoch, (left_id, right_id))
            state = self._recache(conn, state)
        _LOGGER.info("[tables] merged %s/%s and %s into %s", table, left_id, right_id, child_id)
        return state.partitions.by_id[child_id].partition

    @staticmethod
    def _open_part(state: _Table, partition_id: str):
        part = state.partitions.by_id.get(partition_id)
        if part is None:
            raise errors.object_not_exist(f"Partition {partition_id!r} of table {state.info.name!r} does not exist.")
        if part.partition.closed:
            raise errors.parameter_invalid(f"Partition {partition_id!r} is closed (already split or merged).")
        return part

    @staticmethod
    def _split_value(state: _Table, split_key):
        first = state.info.primary_key[0]
        value = split_key
        if isinstance(split_key, tuple):
            if not split_key or not isinstance(split_key[0], tuple) or split_key[0][0] != first.name:
                raise errors.parameter_invalid(
                    f"Split key {split_key!r:.200} must start with column {first.name!r}."
                )
            value = split_key[0][1]
        check_primary_key((first,), ((first.name, value),))
        return value

    # ------------------------------------------------------------------
    # Writes

    def write_row(self, change: RowChange) -> WriteResult:
        """PutRow / UpdateRow / DeleteRow.

        Raises:
          ServiceError: OTSObjectNotExist, OTSParameterInvalid (naming the
            bad column or value) or OTSConditionCheckFail.
        """
        result = self._write([change])[0]
        if isinstance(result, ServiceError):
            raise result
        return result

    def batch_write(self, changes: Sequence[RowChange]) -> List:
        """BatchWriteRow: every row in one transaction, each with its own outcome.

        Returns:
          Per change, in order: a :class:`WriteResult` or the ServiceError
          that row failed with (the other rows are still written).

        Raises:
          ServiceError: OTSParameterInvalid for an empty or oversized batch
            or a row key given twice.
        """
        if not changes:
            raise errors.parameter_invalid("BatchWriteRow needs at least one row.")
        if len(changes) > _MAX_BATCH_ROWS:
            raise errors.parameter_invalid(
                f"BatchWriteRow takes at most {_MAX_BATCH_ROWS} rows, got {len(changes)}."
            )
        seen = set()
        for change in changes:
            marker = (change.table, change.row.primary_key)
            if marker in seen and AUTO_INCREMENT not in (v for _, v in change.row.primary_key):
                raise errors.parameter_invalid(
                    f"BatchWriteRow has the row {change.row.primary_key!r:.300} of table {change.table!r} twice."
                )
            seen.add(marker)
        return self._write(changes)

    def _next_write_us(self, conn) -> int:
        # Strictly increasing across all partitions, even if the clock stalls
        # or steps back, and persisted so a restart keeps it so.
        now = max(self._clock.now_us(), self._last_write_us + 1)
        self._last_write_us = now
        conn.execute("INSERT OR REPLACE INTO tbl_meta (key, value) VALUES ('last_write_us', ?)", (now,))
        return now

    def _write(self, changes: Sequence[RowChange]) -> List:
        results: List = []
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
        return results

    def _apply(self, conn, change: RowChange, batch: "_WriteBatch") -> WriteResult:
        state = self._table(change.table)
        info = state.info
        action = change.action
        if action not in (PUT, UPDATE, DELETE):
            raise errors.parameter_invalid(f"Unknown row operation {action!r}.")
        if action == UPDATE and not info.allow_update:
            raise errors.parameter_invalid(f"Table {info.name!r} does not allow UpdateRow (allow_update is false).")
        values = check_primary_key(info.primary_key, change.row.primary_key, allow_auto=action == PUT)
        if AUTO_INCREMENT in values:
            values = self._assign_auto_increment(conn, state, values, batch.write_us)
        pk = tuple(zip((c.name for c in info.primary_key), values))
        key = sort_key(values)
        stream = info.stream
        want_origin = stream.enabled and bool(stream.columns_to_get)
        old = None
        if change.condition != IGNORE or action == UPDATE or want_origin:
            old = conn.execute(
                "SELECT latest, history FROM tbl_rows WHERE table_id = ? AND pk = ?", (state.table_id, key)
            ).fetchone()
        if change.condition == EXPECT_EXIST and old is None:
            raise errors.condition_check_fail()
        if change.condition == EXPECT_NOT_EXIST and old is not None:
            raise errors.condition_check_fail()
        old_row = decode_row(old[1] or old[0]) if old is not None and (action == UPDATE or want_origin) else None

        write_ms = batch.write_us // 1000
        if action == PUT:
            versions, logged = apply_put(change.row.cells, state.key_names, write_ms, info.max_versions)
        elif action == UPDATE:
            current = from_cells(old_row.cells) if old_row is not None else {}
            versions, logged = apply_update(current, change.row.cells, state.key_names, write_ms, info.max_versions)
            if old is None and not versions:
                versions = None  # only deletes on a missing row: it stays missing
        else:
            versions, logged = None, ()

        # Encode everything before touching storage, so a failure leaves no trace.
        latest = history = None
        if versions is not None:
            latest = encode_row(Row(pk, latest_cells(versions)))
            if any(len(column) > 1 for column in versions.values()):
                history = encode_row(Row(pk, all_cells(versions)))
        log_row = None
        if stream.enabled:
            part = state.partitions.route(values[0])
            index = batch.next_index(part.pid)
            record = encode_row(Row(pk, logged, action == DELETE, SequenceInfo(part.partition.epoch, batch.write_us, index)))
            origin = None
            if want_origin and old_row is not None:
                wanted = set(stream.columns_to_get)
                origin = encode_row_without_pk(tuple(latest_cells(
                    {n: v for n, v in from_cells(old_row.cells).items() if n in wanted}
                )))
            log_row = (part.pid, batch.write_us, index, action, record, origin)
        returned = self._returned_row(change, pk, versions)

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

    def _assign_auto_increment(self, conn, state: _Table, values, write_us: int) -> Tuple:
        # Increasing per table, and time-like, as the real service's values are.
        value = max(self._auto_increment.get(state.table_id, 0) + 1, write_us)
        self._auto_increment[state.table_id] = value
        conn.execute("UPDATE tbl_tables SET auto_increment = ? WHERE table_id = ?", (value, state.table_id))
        return tuple(value if v is AUTO_INCREMENT else v for v in values)

    @staticmethod
    def _returned_row(change: RowChange, pk, versions) -> Optional[bytes]:
        if change.return_type == RT_PK:
            return encode_primary_key(pk)
        if change.return_type == RT_AFTER_MODIFY and versions is not None:
            names = set(change.return_columns) or {c.name for c in change.row.cells}
            cells = tuple(c for c in latest_cells(versions) if c.name in names)
            return encode_row(Row(pk, cells))
        return None

    def _maybe_purge(self, conn, tables, now_us: int) -> None:
        for name in tables:
            state = self._tables[name]
            if now_us - self._purged_at.get(state.table_id, 0) < _PURGE_EVERY_US:
                continue
            self._purged_at[state.table_id] = now_us
            streamlog.purge(conn, [p.pid for p in state.partitions.parts], self._retention_floor_us(name))

    # ------------------------------------------------------------------
    # Reads

    # ------------------------------------------------------------------
    # Reads

    def _ttl_floor_ms(self, info: TableInfo) -> Optional[int]:
        if info.time_to_live == -1:
            return None
        return self._clock.now_ms() - info.time_to_live * 1000

    def get_row(self, table: str, primary_key: PrimaryKey, options: ReadOptions = ReadOptions()) -> bytes:
        """GetRow: the row as PlainBuffer (with header), or b"" when absent.

        Raises:
          ServiceError: OTSObjectNotExist or OTSParameterInvalid (bad key).
        """
        state = self._table(table)
        values = check_primary_key(state.info.primary_key, primary_key)
        with self._storage.read() as conn:
            found = conn.execute(
                "SELECT latest, history FROM tbl_rows WHERE table_id = ? AND pk = ?",
                (state.table_id, sort_key(values)),
            ).fetchone()
        if found is None:
            return b""
        return rowreads.select_row(found[0], found[1], options, self._ttl_floor_ms(state.info)) or b""

    def get_range(
        self,
        table: str,
        start,
        end,
        *,
        backward: bool = False,
        limit: Optional[int] = None,
        options: ReadOptions = ReadOptions(),
    ) -> RangeResult:
        """GetRange: rows from ``start`` (inclusive) to ``end`` (exclusive),
        ascending, or descending with ``backward`` (then start > end).

        Bounds are full PrimaryKeys (INF_MIN/INF_MAX allowed per column) or
        INF_MIN/INF_MAX. A page holds at most ``limit`` rows and the
        configured row/byte caps; ``next_start`` says where to go on.

        Raises:
          ServiceError: OTSObjectNotExist or OTSParameterInvalid.
        """
        state = self._table(table)
        low, high = rowreads.range_bounds(state.info.primary_key, start, end, backward)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise errors.parameter_invalid(f"limit must be a positive integer, got {limit!r}.")
        cap = min(limit or self._range_max_rows, self._range_max_rows)
        with self._storage.read() as conn:
            rows, next_start = rowreads.read_page(
                rowreads.iterate(conn, state.table_id, low, high, backward),
                options, self._ttl_floor_ms(state.info), cap, self._range_max_bytes,
            )
        return RangeResult(rowreads.join_rows(rows), next_start, len(rows))

    def scan(self, table: str, start_pk, end_pk, max_rows: int,
             max_bytes: int) -> Tuple[List[bytes], Optional[PrimaryKey]]:
        """Current rows in key order, for base-data tunnel channels.

        Args:
          start_pk: inclusive lower bound (PrimaryKey or INF_MIN).
          end_pk: exclusive upper bound (PrimaryKey or INF_MAX).
          max_rows: at most this many records (>= 1).
          max_bytes: stop once this many record bytes are collected (at
            least one record is returned when any is left).

        Returns:
          (records, next_pk): each record a PlainBuffer row with header and
          the newest version of each cell; next_pk is the first key not
          returned, or None when the range is exhausted.

        Raises:
          ServiceError: OTSObjectNotExist or OTSParameterInvalid.
        """
        if max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, got {max_rows!r}")
        state = self._table(table)
        low = rowreads.scan_bound(state.info.primary_key, start_pk)
        high = rowreads.scan_bound(state.info.primary_key, end_pk)
        if low >= high:
            return [], None
        with self._storage.read() as conn:
            return rowreads.read_page(
                rowreads.iterate(conn, state.table_id, low, high, False),
                None, self._ttl_floor_ms(state.info), max_rows, max_bytes,
            )


class _WriteBatch:
    """Per-request write state: one write time, row indexes per partition."""

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
