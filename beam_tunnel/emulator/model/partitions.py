"""Table partitions: ranges of the first primary-key column.

A partition owns the stream log of the rows whose first key value falls in
``[low, high)``. Splitting or merging closes the parents (their logs are
sealed) and creates children with ``epoch = max(parent epochs) + 1``; rows
themselves never move, they are stored by key, not by partition.
"""

from __future__ import annotations

import bisect
import json
import sqlite3
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from beam_tunnel.protocol.rows import INF_MAX, INF_MIN

from .keys import PkColumn, sort_value

__all__ = ["Partition", "PartitionMap", "DDL", "bound_primary_key", "insert", "close", "load_all", "drop"]

DDL = """
CREATE TABLE IF NOT EXISTS tbl_partitions (
    pid INTEGER PRIMARY KEY AUTOINCREMENT,
    table_id INTEGER NOT NULL,
    partition_id TEXT NOT NULL UNIQUE,
    ordinal INTEGER NOT NULL,
    low_value,
    high_value,
    epoch INTEGER NOT NULL,
    parents TEXT NOT NULL,
    closed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS tbl_partitions_by_table ON tbl_partitions (table_id);
"""


class Partition(NamedTuple):
    """One partition of a table (the unit of a stream shard / channel).

    Attributes:
      partition_id: unique id, stable across restarts.
      table: table name.
      start: INF_MIN, or a full-width PrimaryKey: the first column holds
        the lower bound (inclusive), the others INF_MIN.
      end: INF_MAX, or such a PrimaryKey: the upper bound (exclusive).
      epoch: 0 for a table's first partitions, parent epoch + 1 after a
        split or merge.
      parent_ids: the partitions this one was split from or merged from.
      closed: True once split or merged: its log is sealed.
    """

    partition_id: str
    table: str
    start: object
    end: object
    epoch: int
    parent_ids: Tuple[str, ...]
    closed: bool


def bound_primary_key(schema: Sequence[PkColumn], value, sentinel):
    """The Partition bound for a first-column ``value`` (None = open end)."""
    if value is None:
        return sentinel
    return ((schema[0].name, value),) + tuple((column.name, INF_MIN) for column in schema[1:])


class _Part(NamedTuple):
    pid: int
    ordinal: int
    partition: Partition
    low: object  # first-column value, or None for INF_MIN
    high: object  # first-column value, or None for INF_MAX
    low_key: bytes
    high_key: bytes


def _make_part(table: str, schema, row) -> _Part:
    pid, partition_id, ordinal, low, high, epoch, parents, closed = row
    partition = Partition(
        partition_id,
        table,
        bound_primary_key(schema, low, INF_MIN),
        bound_primary_key(schema, high, INF_MAX),
        epoch,
        tuple(json.loads(parents)),
        bool(closed),
    )
    return _Part(
        pid, ordinal, partition, low, high,
        sort_value(INF_MIN if low is None else low),
        sort_value(INF_MAX if high is None else high),
    )


class PartitionMap:
    """Immutable view of a table's partitions, with routing of writes."""

    def __init__(self, table: str, schema: Sequence[PkColumn], rows: Sequence[tuple]) -> None:
        parts = [_make_part(table, schema, row) for row in rows]
        self.parts: Tuple[_Part, ...] = tuple(sorted(parts, key=lambda p: (p.low_key, p.partition.epoch)))
        self.by_id: Dict[str, _Part] = {p.partition.partition_id: p for p in self.parts}
        self._open = [p for p in self.parts if not p.partition.closed]
        self._open_lows = [p.low_key for p in self._open]
        self.next_ordinal = max((p.ordinal for p in self.parts), default=-1) + 1

    def route(self, first_value) -> _Part:
        """The open partition holding rows whose first key value is ``first_value``."""
        return self._open[bisect.bisect_right(self._open_lows, sort_value(first_value)) - 1]

    def split_points(self) -> Tuple:
        """First-column values where open partitions begin (all but the first)."""
        return tuple(p.low for p in self._open[1:])


def insert(
    conn: sqlite3.Connection, table_id: int, partition_id: str, ordinal: int,
    low, high, epoch: int, parents: Sequence[str],
) -> int:
    """Store a new open partition; return its pid."""
    cursor = conn.execute(
        "INSERT INTO tbl_partitions (table_id, partition_id, ordinal, low_value, high_value, epoch, parents) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (table_id, partition_id, ordinal, low, high, epoch, json.dumps(list(parents))),
    )
    return cursor.lastrowid


def close(conn: sqlite3.Connection, pids: Sequence[int]) -> None:
    conn.executemany("UPDATE tbl_partitions SET closed = 1 WHERE pid = ?", [(pid,) for pid in pids])


def drop(conn: sqlite3.Connection, table_id: int) -> None:
    conn.execute("DELETE FROM tbl_partitions WHERE table_id = ?", (table_id,))


def load_all(conn: sqlite3.Connection, table_id: Optional[int] = None) -> Dict[int, List[tuple]]:
    """Partition rows by table id, in the shape :class:`PartitionMap` takes."""
    sql = "SELECT table_id, pid, partition_id, ordinal, low_value, high_value, epoch, parents, closed FROM tbl_partitions"
    args: tuple = ()
    if table_id is not None:
        sql += " WHERE table_id = ?"
        args = (table_id,)
    out: Dict[int, List[tuple]] = {}
    for row in conn.execute(sql, args):
        out.setdefault(row[0], []).append(row[1:])
    return out
