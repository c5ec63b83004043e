"""Full-data snapshots: a table's rows as of a tunnel's creation.

The full phase of a BaseData or BaseAndStream tunnel reads the table as it
was when the tunnel was created; a row written later appears only in the
stream (BaseAndStream) or not at all (BaseData), so each change is seen in
exactly one phase, and a reader may give every full-data record the
tunnel's creation time as its event time.

A snapshot is a copy of the table's stored rows (``tbl_rows.latest``) taken
in the same write transaction that reads the stream log's last positions:
no write falls between the two. It costs one copy of the table per tunnel
with a full phase; a full-data channel's key range is dropped once the
channel is finished, and the rest when the tunnel or its table is deleted.
Tunnels from before snapshots existed have none and read live rows.

Owned tables (in the table-data file)::

    tbl_snapshot_list  snapshot id (the tunnel id), table id, time taken (µs)
    tbl_snapshot_rows  (snapshot id, sortable key) -> row as of the snapshot
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Iterable, Iterator, Optional, Set, Tuple

__all__ = ["DDL", "Snapshots"]

DDL = """
CREATE TABLE IF NOT EXISTS tbl_snapshot_list (
    snapshot TEXT PRIMARY KEY,
    table_id INTEGER NOT NULL,
    taken_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tbl_snapshot_rows (
    snapshot TEXT NOT NULL,
    pk BLOB NOT NULL,
    latest BLOB NOT NULL,
    PRIMARY KEY (snapshot, pk)
) WITHOUT ROWID;
"""


class Snapshots:
    """The snapshot registry, cached in memory (checked on every full-data
    read). All changes run inside the caller's table-data transaction.

    Args:
      conn: a connection to load the registry from.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._lock = threading.Lock()
        self._ids: Set[str] = {row[0] for row in conn.execute("SELECT snapshot FROM tbl_snapshot_list")}

    def __contains__(self, snapshot: str) -> bool:
        with self._lock:
            return snapshot in self._ids

    def take(self, conn: sqlite3.Connection, snapshot: str, table_id: int, taken_us: int) -> None:
        """Copy the table's current rows under ``snapshot``."""
        conn.execute("INSERT INTO tbl_snapshot_list (snapshot, table_id, taken_us) VALUES (?, ?, ?)",
                     (snapshot, table_id, taken_us))
        conn.execute(
            "INSERT INTO tbl_snapshot_rows (snapshot, pk, latest) SELECT ?, pk, latest FROM tbl_rows "
            "WHERE table_id = ?",
            (snapshot, table_id),
        )
        with self._lock:
            self._ids.add(snapshot)

    def drop_range(self, conn: sqlite3.Connection, snapshot: str, low: bytes, high: bytes) -> None:
        """Forget the rows of ``[low, high)`` (sortable keys): read for good."""
        conn.execute("DELETE FROM tbl_snapshot_rows WHERE snapshot = ? AND pk >= ? AND pk < ?",
                     (snapshot, low, high))

    def drop(self, conn: sqlite3.Connection, snapshots: Iterable[str]) -> None:
        """Remove whole snapshots."""
        ids = [(snapshot,) for snapshot in snapshots]
        conn.executemany("DELETE FROM tbl_snapshot_rows WHERE snapshot = ?", ids)
        conn.executemany("DELETE FROM tbl_snapshot_list WHERE snapshot = ?", ids)
        with self._lock:
            self._ids.difference_update(snapshot for (snapshot,) in ids)

    @staticmethod
    def of_table(conn: sqlite3.Connection, table_id: int) -> Tuple[str, ...]:
        """The snapshots of one table."""
        return tuple(row[0] for row in conn.execute(
            "SELECT snapshot FROM tbl_snapshot_list WHERE table_id = ?", (table_id,)))

    @staticmethod
    def iterate(conn: sqlite3.Connection, snapshot: str, low: bytes,
                high: bytes) -> Iterator[Tuple[bytes, Optional[bytes]]]:
        """(latest, None) of the snapshot's rows in ``[low, high)``, in key
        order - the shape ``rowreads.read_page`` takes."""
        return conn.execute(
            "SELECT latest, NULL FROM tbl_snapshot_rows WHERE snapshot = ? AND pk >= ? AND pk < ? ORDER BY pk",
            (snapshot, low, high),
        )
