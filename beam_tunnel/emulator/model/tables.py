"""Tables: rows with multi-version cells, partitions, stream log.

:class:`TableBackend` has one method per table operation, taking plain
Python values and returning plain values or ready PlainBuffer bytes; it
knows nothing of HTTP or protobuf. Every write runs in one SQLite
transaction that also appends the stream-log records of the rows it
changed, so a change is either stored and logged, or neither.

This module keeps the table catalog (an in-memory cache of every table's
:class:`~.schema.TableState`, reloaded after each change) and the table and
partition operations; row writes are in ``writes.py``, row reads in
``rowreads.py``, table metadata and its checks in ``schema.py``, version
rules in ``versions.py``. Storage layout (see ``keys.py`` for the key
encoding)::

    tbl_tables      table id, name, schema/options as JSON, auto-increment counter
    tbl_partitions  see partitions.py
    tbl_rows        (table id, sortable key) -> latest row, all versions
    tbl_meta        see writes.py
    stream_log      see streamlog.py

``tbl_rows.latest`` is the row as a PlainBuffer (header, key, newest
version of each cell): exactly a GetRow answer and a base-data tunnel
record, served without decoding. ``history`` holds every version, and is
NULL when no column has more than one.
"""

from __future__ import annotations

import logging
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from beam_tunnel.protocol.rows import PrimaryKey, SequenceInfo

from .. import errors
from . import partitions as parts_db
from . import streamlog, writes
from .snapshots import DDL as SNAPSHOT_DDL
from .snapshots import Snapshots
from .keys import PkColumn, check_primary_key, sort_value
from .partitions import Partition, PartitionMap
from .rowreads import RangeResult, RowReader, scan_bound
from .schema import (
    StreamInfo,
    StreamSpec,
    TableInfo,
    TableState,
    check_defined,
    check_options,
    check_schema,
    check_split_points,
    info_from_json,
    info_to_json,
    next_stream_info,
)
from .versions import ReadOptions, check_name
from .writes import (
    DELETE,
    EXPECT_EXIST,
    EXPECT_NOT_EXIST,
    IGNORE,
    PUT,
    RT_AFTER_MODIFY,
    RT_NONE,
    RT_PK,
    UPDATE,
    RowChange,
    RowWriter,
    WriteResult,
)

__all__ = [
    "TableBackend", "TableInfo", "StreamSpec", "StreamInfo", "RowChange", "WriteResult", "RangeResult",
    "Partition", "PkColumn", "ReadOptions",
    "PUT", "UPDATE", "DELETE", "IGNORE", "EXPECT_EXIST", "EXPECT_NOT_EXIST", "RT_NONE", "RT_PK", "RT_AFTER_MODIFY",
]

_LOGGER = logging.getLogger(__name__)

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
"""


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
        self._deleted_callbacks: List[Callable] = []
        storage.ensure_schema(_DDL + parts_db.DDL + streamlog.DDL + writes.DDL + SNAPSHOT_DDL)
        self._tables: Dict[str, TableState] = {}
        with storage.transaction() as conn:
            self._snapshots = Snapshots(conn)
            partition_rows = parts_db.load_all(conn)
            for table_id, info_json in conn.execute("SELECT table_id, info FROM tbl_tables").fetchall():
                self._cache(table_id, info_from_json(info_json), partition_rows.get(table_id, []))
        self._writer = RowWriter(storage, clock, self._table, self.retention_floor_us)
        self._reader = RowReader(storage, clock, range_max_rows, range_max_bytes, self._snapshots)

    # ------------------------------------------------------------------
    # Catalog

    def _cache(self, table_id: int, info: TableInfo, partition_rows) -> TableState:
        pmap = PartitionMap(info.name, info.primary_key, partition_rows)
        info = info._replace(split_points=pmap.split_points())
        state = TableState(table_id, info, frozenset(c.name for c in info.primary_key), pmap)
        self._tables[info.name] = state
        return state

    def _reload(self, conn, table_id: int, info: TableInfo) -> TableState:
        """Cache the table anew after a change made in ``conn``'s transaction."""
        return self._cache(table_id, info, parts_db.load_all(conn, table_id).get(table_id, []))

    def _table(self, name: str) -> TableState:
        state = self._tables.get(name)
        if state is None:
            raise errors.object_not_exist(f"Requested table {name!r} does not exist.")
        return state

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
            state = self._reload(conn, table_id, info)
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
            self._snapshots.drop(conn, Snapshots.of_table(conn, state.table_id))
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
            state = self._reload(conn, state.table_id, info)
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
            state = self._reload(conn, state.table_id, state.info)
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
            state = self._reload(conn, state.table_id, state.info)
        _LOGGER.info("[tables] merged %s/%s and %s into %s", table, left_id, right_id, child_id)
        return state.partitions.by_id[child_id].partition

    @staticmethod
    def _open_part(state: TableState, partition_id: str):
        part = state.partitions.by_id.get(partition_id)
        if part is None:
            raise errors.object_not_exist(f"Partition {partition_id!r} of table {state.info.name!r} does not exist.")
        if part.partition.closed:
            raise errors.parameter_invalid(f"Partition {partition_id!r} is closed (already split or merged).")
        return part

    @staticmethod
    def _split_value(state: TableState, split_key):
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
    # For the stream log (StreamLog reads and the writer purges through these)

    @property
    def timeline(self):
        """The :class:`~.timeline.Timeline` of write times (for consume points)."""
        return self._writer.timeline

    def log_source(self, table: str, partition_id: str) -> Tuple[int, int]:
        """``(pid, epoch)`` of a partition: the storage key of its stream-log
        entries and the epoch they carry.

        Raises:
          ServiceError: OTSObjectNotExist for an unknown table or partition.
        """
        part = self._table(table).partitions.by_id.get(partition_id)
        if part is None:
            raise errors.object_not_exist(f"Partition {partition_id!r} of table {table!r} does not exist.")
        return part.pid, part.partition.epoch

    def retention_floor_us(self, table: str) -> int:
        """µs before which the table's stream-log entries are expired: now
        minus the stream's retention, or now when the stream is off.

        Raises:
          ServiceError: OTSObjectNotExist for an unknown table.
        """
        stream = self._table(table).info.stream
        now = self._clock.now_us()
        if not stream.enabled:
            return now
        return now - stream.expiration_hours * 3600 * 1_000_000

    # ------------------------------------------------------------------
    # Writes

    def write_row(self, change: RowChange) -> WriteResult:
        """PutRow / UpdateRow / DeleteRow.

        Raises:
          ServiceError: OTSObjectNotExist, OTSParameterInvalid (naming the
            bad column or value) or OTSConditionCheckFail.
        """
        return self._writer.write_row(change)

    def batch_write(self, changes: Sequence[RowChange]) -> List:
        """BatchWriteRow: every row in one transaction, each with its own outcome.

        Returns:
          Per change, in order: a :class:`WriteResult` or the ServiceError
          that row failed with (the other rows are still written).

        Raises:
          ServiceError: OTSParameterInvalid for an empty or oversized batch
            or a row key given twice.
        """
        return self._writer.batch_write(changes)

    # ------------------------------------------------------------------
    # Reads

    def get_row(self, table: str, primary_key: PrimaryKey, options: ReadOptions = ReadOptions()) -> bytes:
        """GetRow: the row as PlainBuffer (with header), or b"" when absent.

        Raises:
          ServiceError: OTSObjectNotExist or OTSParameterInvalid (bad key).
        """
        return self._reader.get_row(self._table(table), primary_key, options)

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
        return self._reader.get_range(self._table(table), start, end, backward, limit, options)

    # ------------------------------------------------------------------
    # Full-data snapshots (see snapshots.py)

    def take_snapshot(self, table: str, snapshot: str) -> Tuple[int, Dict[str, Optional[SequenceInfo]]]:
        """Copy the table's rows as of now under ``snapshot`` (a new id).

        Returns:
          ``(taken_us, last)``: the snapshot time (every write in it is at
          or before it, every later one at or after it) and, per partition
          id, the position of the last stream-log record the snapshot
          includes (None for an empty log) - where a stream that continues
          the snapshot starts.

        Raises:
          ServiceError: OTSObjectNotExist.
        """
        with self._storage.transaction() as conn:
            state = self._table(table)
            taken_us = self._writer.timeline.snapshot_us()
            self._snapshots.take(conn, snapshot, state.table_id, taken_us)
            last = {}
            for part in state.partitions.parts:
                row = conn.execute(
                    "SELECT ts_us, row_index FROM stream_log WHERE pid = ? ORDER BY ts_us DESC, row_index DESC LIMIT 1",
                    (part.pid,),
                ).fetchone()
                last[part.partition.partition_id] = SequenceInfo(part.partition.epoch, *row) if row else None
        return taken_us, last

    def drop_snapshot(self, table: str, snapshot: str, start_pk=None, end_pk=None) -> None:
        """Forget a snapshot, or only its rows from ``start_pk`` (inclusive)
        to ``end_pk`` (exclusive) when both are given. Nothing happens when
        the table or snapshot is gone."""
        if snapshot not in self._snapshots:
            return
        with self._storage.transaction() as conn:
            state = self._tables.get(table)
            if start_pk is None or end_pk is None or state is None:
                self._snapshots.drop(conn, [snapshot])
                return
            low = scan_bound(state.info.primary_key, start_pk)
            high = scan_bound(state.info.primary_key, end_pk)
            self._snapshots.drop_range(conn, snapshot, low, high)

    def scan(self, table: str, start_pk, end_pk, max_rows: int,
             max_bytes: int, snapshot: Optional[str] = None) -> Tuple[List[bytes], Optional[PrimaryKey]]:
        """Rows in key order, for base-data tunnel channels: as of
        ``snapshot`` when it exists, else current.

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
          ValueError: for max_rows < 1 (a caller's bug, not a request's).
        """
        if max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, got {max_rows!r}")
        return self._reader.scan(self._table(table), start_pk, end_pk, max_rows, max_bytes, snapshot)

