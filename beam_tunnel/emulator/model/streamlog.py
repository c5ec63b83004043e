"""The stream log: per-partition, append-only change records of a table.

Entries are keyed by (partition, write time µs, row index); a partition's
epoch is constant, so that key orders them by the protocol's
(epoch, timestamp, row_index). Each entry stores the tunnel ``Record``
payload ready to serve (the PlainBuffer row with header and sequence-info
extension, and the before-image), so reading is an index range scan with no
per-record decoding.

Appends happen inside the table backend's write transaction
(:func:`append`); reads go through :class:`StreamLog`. Entries older than
the table's stream retention are invisible to reads and purged lazily.
"""

from __future__ import annotations

import sqlite3
from typing import Iterable, List, NamedTuple, Optional, Sequence, Tuple

from beam_tunnel.protocol.rows import SequenceInfo

__all__ = ["LogEntry", "StreamLog", "DDL", "append", "drop", "purge"]

DDL = """
CREATE TABLE IF NOT EXISTS stream_log (
    pid INTEGER NOT NULL,
    ts_us INTEGER NOT NULL,
    row_index INTEGER NOT NULL,
    action INTEGER NOT NULL,
    record BLOB NOT NULL,
    origin BLOB,
    PRIMARY KEY (pid, ts_us, row_index)
) WITHOUT ROWID;
"""

_MIB = 1024 * 1024


class LogEntry(NamedTuple):
    """One change record.

    Attributes:
      sequence: (epoch, write time µs, row index) of the record.
      action: ActionType (1 PUT_ROW, 2 UPDATE_ROW, 3 DELETE_ROW).
      record: PlainBuffer row with header and sequence-info extension.
      origin: before-image (PlainBuffer row without PK), or None.
    """

    sequence: SequenceInfo
    action: int
    record: bytes
    origin: Optional[bytes]


def append(conn: sqlite3.Connection, rows: Sequence[Tuple[int, int, int, int, bytes, Optional[bytes]]]) -> None:
    """Append ``(pid, ts_us, row_index, action, record, origin)`` rows.

    Must run inside the write transaction that made the changes.
    """
    conn.executemany(
        "INSERT INTO stream_log (pid, ts_us, row_index, action, record, origin) VALUES (?, ?, ?, ?, ?, ?)",
        rows,
    )


def drop(conn: sqlite3.Connection, pids: Iterable[int]) -> None:
    """Delete every entry of the given partitions (stream disabled, table deleted)."""
    conn.executemany("DELETE FROM stream_log WHERE pid = ?", [(pid,) for pid in pids])


def purge(conn: sqlite3.Connection, pids: Iterable[int], floor_us: int) -> None:
    """Delete entries written before ``floor_us`` (retention)."""
    conn.executemany("DELETE FROM stream_log WHERE pid = ? AND ts_us < ?", [(pid, floor_us) for pid in pids])


class StreamLog:
    """Read side of the stream log.

    Args:
      storage: the emulator's :class:`~beam_tunnel.emulator.storage.Storage`.
      tables: the :class:`~beam_tunnel.emulator.model.tables.TableBackend`,
        which knows partitions (ids, epochs) and retention.
    """

    def __init__(self, storage, tables) -> None:
        self._storage = storage
        self._tables = tables

    def expired_before(self, table: str) -> int:
        """The retention floor in µs: entries written before it are gone.

        The current time when the table's stream is disabled.

        Raises:
          ServiceError: OTSObjectNotExist for an unknown table.
        """
        return self._tables.retention_floor_us(table)

    def read(
        self,
        table: str,
        partition_id: str,
        after: Optional[SequenceInfo] = None,
        max_records: int = 1000,
        max_bytes: int = 4 * _MIB,
    ) -> List[LogEntry]:
        """Entries of one partition after ``after``, oldest first.

        Args:
          table: table name.
          partition_id: the partition (see ``TableBackend.list_partitions``).
          after: return entries strictly after this position; None means
            from the oldest retained entry.
          max_records: at most this many entries (>= 1).
          max_bytes: the entries' record + origin bytes stay within this,
            except that one entry is returned when any is available,
            however large.

        Raises:
          ServiceError: OTSObjectNotExist for an unknown table or partition.
        """
        if max_records < 1:
            raise ValueError(f"max_records must be >= 1, got {max_records!r}")
        pid, epoch = self._tables.log_source(table, partition_id)
        floor = self._tables.retention_floor_us(table)
        if after is not None and after.epoch > epoch:
            return []
        with self._storage.read() as conn:
            if after is None or after.epoch < epoch:
                cursor = conn.execute(
                    "SELECT ts_us, row_index, action, record, origin FROM stream_log "
                    "WHERE pid = ? AND ts_us >= ? ORDER BY ts_us, row_index LIMIT ?",
                    (pid, floor, max_records),
                )
            else:
                cursor = conn.execute(
                    "SELECT ts_us, row_index, action, record, origin FROM stream_log "
                    "WHERE pid = ? AND (ts_us, row_index) > (?, ?) AND ts_us >= ? "
                    "ORDER BY ts_us, row_index LIMIT ?",
                    (pid, after.timestamp, after.row_index, floor, max_records),
                )
            rows = cursor.fetchall()
        entries: List[LogEntry] = []
        size = 0
        for ts_us, row_index, action, record, origin in rows:
            size += len(record) + (len(origin) if origin else 0)
            if size > max_bytes and entries:
                break
            entries.append(LogEntry(SequenceInfo(epoch, ts_us, row_index), action, record, origin))
        return entries

    def first_after(self, table: str, partition_id: str, after: Optional[SequenceInfo]) -> Optional[SequenceInfo]:
        """Position of the first retained entry strictly after ``after``
        (None: from the oldest retained), or None when there is none.

        Raises:
          ServiceError: OTSObjectNotExist for an unknown table or partition.
        """
        pid, epoch = self._tables.log_source(table, partition_id)
        floor = self._tables.retention_floor_us(table)
        if after is not None and after.epoch > epoch:
            return None
        with self._storage.read() as conn:
            if after is None or after.epoch < epoch:
                row = conn.execute(
                    "SELECT ts_us, row_index FROM stream_log WHERE pid = ? AND ts_us >= ? "
                    "ORDER BY ts_us, row_index LIMIT 1",
                    (pid, floor),
                ).fetchone()
            else:
                row = conn.execute(
                    "SELECT ts_us, row_index FROM stream_log WHERE pid = ? AND (ts_us, row_index) > (?, ?) "
                    "AND ts_us >= ? ORDER BY ts_us, row_index LIMIT 1",
                    (pid, after.timestamp, after.row_index, floor),
                ).fetchone()
        return SequenceInfo(epoch, *row) if row else None

    def bounds(self, table: str, partition_id: str) -> Tuple[Optional[SequenceInfo], Optional[SequenceInfo]]:
        """(first, last) retained positions of a partition; (None, None) when empty.

        Raises:
          ServiceError: OTSObjectNotExist for an unknown table or partition.
        """
        pid, epoch = self._tables.log_source(table, partition_id)
        floor = self._tables.retention_floor_us(table)
        with self._storage.read() as conn:
            first = conn.execute(
                "SELECT ts_us, row_index FROM stream_log WHERE pid = ? AND ts_us >= ? "
                "ORDER BY ts_us, row_index LIMIT 1",
                (pid, floor),
            ).fetchone()
            last = conn.execute(
                "SELECT ts_us, row_index FROM stream_log WHERE pid = ? AND ts_us >= ? "
                "ORDER BY ts_us DESC, row_index DESC LIMIT 1",
                (pid, floor),
            ).fetchone()
        if first is None:
            return None, None
        return SequenceInfo(epoch, *first), SequenceInfo(epoch, *last)
