"""Tunnel Service state as records, and their SQLite tables.

Three tables, owned by this module (DDL below): tunnels, channels and client
leases. One :class:`TunnelState` holds a tunnel with its channels and
clients, loaded inside a transaction, changed by the pure rules in
``channels.py`` and written back with :meth:`TunnelState.save`, which writes
only the records that changed. Nothing here decides behaviour.

Status values are the wire strings; ``WAIT`` is stored for a channel that was
never opened (it may or may not be blocked by predecessors, see
``channels.is_blocked``).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import sqlite3
from typing import Dict, Iterable, List, Optional, Tuple

__all__ = [
    "WAIT",
    "OPEN",
    "CLOSING",
    "CLOSE",
    "TERMINATED",
    "BASE",
    "STREAM",
    "BASE_AND_STREAM",
    "STAGE_INIT",
    "STAGE_BASE",
    "STAGE_STREAM",
    "TUNNEL_DDL",
    "upgrade",
    "TunnelRecord",
    "ChannelRecord",
    "ClientRecord",
    "TunnelState",
    "load_tunnel",
    "load_channel",
    "load_client",
    "load_state",
    "find_tunnel",
    "list_tunnels",
    "delete_tunnel",
    "delete_table_tunnels",
]

WAIT, OPEN, CLOSING, CLOSE, TERMINATED = "WAIT", "OPEN", "CLOSING", "CLOSE", "TERMINATED"
# Channel kinds and tunnel types, as the wire spells them.
BASE, STREAM, BASE_AND_STREAM = "BaseData", "Stream", "BaseAndStream"
STAGE_INIT = "InitBaseDataAndStreamShard"
STAGE_BASE = "ProcessBaseData"
STAGE_STREAM = "ProcessStream"

TUNNEL_DDL = """
CREATE TABLE IF NOT EXISTS tunnel_tunnels (
    tunnel_id   TEXT PRIMARY KEY,
    table_name  TEXT NOT NULL,
    tunnel_name TEXT NOT NULL,
    tunnel_type TEXT NOT NULL,
    stage       TEXT NOT NULL,
    create_us   INTEGER NOT NULL,
    stream_id   TEXT NOT NULL,
    start_flag  INTEGER,
    start_ns    INTEGER NOT NULL,
    end_ns      INTEGER NOT NULL,
    expired     INTEGER NOT NULL,
    UNIQUE (table_name, tunnel_name)
);
CREATE TABLE IF NOT EXISTS tunnel_channels (
    tunnel_id    TEXT NOT NULL,
    channel_id   TEXT NOT NULL,
    kind         TEXT NOT NULL,
    partition_id TEXT NOT NULL,
    parents      TEXT NOT NULL,
    range_start  BLOB,
    range_end    BLOB,
    status       TEXT NOT NULL,
    version      INTEGER NOT NULL,
    owner        TEXT,
    checkpoint   TEXT NOT NULL,
    sequence     INTEGER NOT NULL,
    count        INTEGER NOT NULL,
    suspended    INTEGER NOT NULL,
    released_by  TEXT,
    PRIMARY KEY (tunnel_id, channel_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tunnel_clients (
    client_id    TEXT PRIMARY KEY,
    tunnel_id    TEXT NOT NULL,
    tag          TEXT NOT NULL,
    timeout_us   INTEGER NOT NULL,
    connected_us INTEGER NOT NULL,
    last_seen_us INTEGER NOT NULL,
    gone_us      INTEGER,
    gone_reason  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tunnel_clients_by_tunnel ON tunnel_clients (tunnel_id);
"""


@dataclasses.dataclass
class TunnelRecord:
    """A tunnel. Times are µs (create) and ns (offsets, 0 = unset) since the epoch."""

    tunnel_id: str
    table_name: str
    tunnel_name: str
    tunnel_type: str
    stage: str
    create_us: int
    stream_id: str
    start_flag: Optional[int]
    start_ns: int
    end_ns: int
    expired: bool

    @property
    def has_base(self) -> bool:
        return self.tunnel_type in (BASE, BASE_AND_STREAM)

    @property
    def has_stream(self) -> bool:
        return self.tunnel_type in (STREAM, BASE_AND_STREAM)


@dataclasses.dataclass
class ChannelRecord:
    """One channel of a tunnel.

    Attributes:
      kind: ``BaseData`` or ``Stream``.
      partition_id: the partition it reads (its key range for base channels,
        its log for stream channels).
      parents: channel ids that must be TERMINATED before this one opens.
      range_start, range_end: PlainBuffer primary keys bounding a base
        channel's range (None = open end); None for stream channels.
      status: stored status (see module doc); version: bumped on every
        server-side transition; owner: the client holding it, or None.
      checkpoint, sequence: the last checkpoint (the initial token and 0
        until the first one).
      count: records read through the channel as of the last checkpoint (or
        of the read that finished it).
      suspended: set by Schedule CLOSING; never assigned while set.
      released_by: the client that held the channel when it shut down, until
        the channel is assigned again (its late final checkpoints are
        accepted for a while, see ``dataplane.py``); else None.
    """

    tunnel_id: str
    channel_id: str
    kind: str
    partition_id: str
    parents: Tuple[str, ...]
    range_start: Optional[bytes]
    range_end: Optional[bytes]
    status: str
    version: int
    owner: Optional[str]
    checkpoint: str
    sequence: int
    count: int
    suspended: bool
    released_by: Optional[str] = None


@dataclasses.dataclass
class ClientRecord:
    """A connected client's lease. ``gone_us`` is set once it ended."""

    client_id: str
    tunnel_id: str
    tag: str
    timeout_us: int
    connected_us: int
    last_seen_us: int
    gone_us: Optional[int] = None
    gone_reason: str = ""

    @property
    def alive(self) -> bool:
        return self.gone_us is None


_TUNNEL_COLUMNS = [f.name for f in dataclasses.fields(TunnelRecord)]
_CHANNEL_COLUMNS = [f.name for f in dataclasses.fields(ChannelRecord)]
_CLIENT_COLUMNS = [f.name for f in dataclasses.fields(ClientRecord)]


def _select(table: str, columns: List[str]) -> str:
    return f"SELECT {', '.join(columns)} FROM {table}"


def _upsert(table: str, columns: List[str]) -> str:
    return f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


_SELECT_TUNNEL = _select("tunnel_tunnels", _TUNNEL_COLUMNS)
_SELECT_CHANNEL = _select("tunnel_channels", _CHANNEL_COLUMNS)
_SELECT_CLIENT = _select("tunnel_clients", _CLIENT_COLUMNS)
_UPSERT_TUNNEL = _upsert("tunnel_tunnels", _TUNNEL_COLUMNS)
_UPSERT_CHANNEL = _upsert("tunnel_channels", _CHANNEL_COLUMNS)
_UPSERT_CLIENT = _upsert("tunnel_clients", _CLIENT_COLUMNS)


def _tunnel_from_row(row) -> TunnelRecord:
    record = TunnelRecord(*row)
    record.expired = bool(record.expired)
    return record


def _tunnel_values(record: TunnelRecord) -> list:
    values = [getattr(record, name) for name in _TUNNEL_COLUMNS]
    values[_TUNNEL_COLUMNS.index("expired")] = int(record.expired)
    return values


def _channel_from_row(row) -> ChannelRecord:
    record = ChannelRecord(*row)
    record.parents = tuple(json.loads(record.parents))
    record.suspended = bool(record.suspended)
    return record


def _channel_values(record: ChannelRecord) -> list:
    values = [getattr(record, name) for name in _CHANNEL_COLUMNS]
    values[_CHANNEL_COLUMNS.index("parents")] = json.dumps(list(record.parents))
    values[_CHANNEL_COLUMNS.index("suspended")] = int(record.suspended)
    return values


def _client_values(record: ClientRecord) -> list:
    return [getattr(record, name) for name in _CLIENT_COLUMNS]


class TunnelState:
    """A tunnel with its channels and clients, as loaded in one transaction."""

    def __init__(
        self,
        tunnel: TunnelRecord,
        channels: Iterable[ChannelRecord] = (),
        clients: Iterable[ClientRecord] = (),
        *,
        stored: bool = False,
    ) -> None:
        self.tunnel = tunnel
        self.channels: Dict[str, ChannelRecord] = {c.channel_id: c for c in channels}
        self.clients: Dict[str, ClientRecord] = {c.client_id: c for c in clients}
        # Snapshots of what storage holds, to write back only what changed.
        self._saved = self._snapshot() if stored else (None, {}, {})

    def _snapshot(self):
        # Records hold only immutable values, so a shallow copy of each is
        # a full snapshot (deepcopy would cost more on every heartbeat).
        return (
            copy.copy(self.tunnel),
            {key: copy.copy(channel) for key, channel in self.channels.items()},
            {key: copy.copy(client) for key, client in self.clients.items()},
        )

    def live_clients(self) -> List[ClientRecord]:
        """Alive clients in connection order (the balancer's stable order)."""
        alive = [c for c in self.clients.values() if c.alive]
        return sorted(alive, key=lambda c: (c.connected_us, c.client_id))

    def sorted_channels(self) -> List[ChannelRecord]:
        """Base channels first, then stream channels, each by id."""
        return sorted(self.channels.values(), key=lambda c: (c.kind != BASE, c.channel_id))

    def save(self, conn: sqlite3.Connection) -> None:
        """Write every record that differs from what was loaded."""
        saved_tunnel, saved_channels, saved_clients = self._saved
        if self.tunnel != saved_tunnel:
            conn.execute(_UPSERT_TUNNEL, _tunnel_values(self.tunnel))
        for channel_id, channel in self.channels.items():
            if saved_channels.get(channel_id) != channel:
                conn.execute(_UPSERT_CHANNEL, _channel_values(channel))
        for client_id, client in self.clients.items():
            if saved_clients.get(client_id) != client:
                conn.execute(_UPSERT_CLIENT, _client_values(client))
        self._saved = self._snapshot()


_TABLES = ("tunnel_tunnels", "tunnel_channels", "tunnel_clients")


def upgrade(conn: sqlite3.Connection, old_db_path: str) -> None:
    """Bring a data dir of an earlier emulator version up to date: add the
    columns it lacks, and move its tunnel tables out of the table database
    (``old_db_path``) into this one. Idempotent; ``conn`` is the tunnel
    database's writer, outside any transaction."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(tunnel_channels)")}
    if "released_by" not in columns:
        conn.execute("ALTER TABLE tunnel_channels ADD COLUMN released_by TEXT")
    if not os.path.exists(old_db_path):
        return
    conn.execute("ATTACH DATABASE ? AS old", (old_db_path,))
    try:
        found = {row[0] for row in conn.execute("SELECT name FROM old.sqlite_master WHERE type = 'table'")}
        if not found.intersection(_TABLES):
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            empty = conn.execute("SELECT COUNT(*) FROM main.tunnel_tunnels").fetchone()[0] == 0
            for table in _TABLES:
                if table not in found:
                    continue
                if empty:
                    old_columns = [row[1] for row in conn.execute(f"PRAGMA old.table_info({table})")]
                    names = ", ".join(old_columns)
                    conn.execute(f"INSERT OR IGNORE INTO main.{table} ({names}) SELECT {names} FROM old.{table}")
                conn.execute(f"DROP TABLE old.{table}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.execute("DETACH DATABASE old")


def load_tunnel(conn: sqlite3.Connection, tunnel_id: str) -> Optional[TunnelRecord]:
    """The tunnel with this id, or None."""
    row = conn.execute(_SELECT_TUNNEL + " WHERE tunnel_id = ?", (tunnel_id,)).fetchone()
    return _tunnel_from_row(row) if row else None


def find_tunnel(conn: sqlite3.Connection, table_name: str, tunnel_name: str) -> Optional[TunnelRecord]:
    """The tunnel named ``tunnel_name`` on ``table_name``, or None."""
    row = conn.execute(
        _SELECT_TUNNEL + " WHERE table_name = ? AND tunnel_name = ?", (table_name, tunnel_name)
    ).fetchone()
    return _tunnel_from_row(row) if row else None


def list_tunnels(conn: sqlite3.Connection, table_name: Optional[str]) -> List[TunnelRecord]:
    """Tunnels of one table (or of all tables when None), by creation time."""
    sql = _SELECT_TUNNEL
    args: tuple = ()
    if table_name is not None:
        sql += " WHERE table_name = ?"
        args = (table_name,)
    rows = conn.execute(sql + " ORDER BY create_us, tunnel_id", args).fetchall()
    return [_tunnel_from_row(row) for row in rows]


def load_channel(conn: sqlite3.Connection, tunnel_id: str, channel_id: str) -> Optional[ChannelRecord]:
    """One channel, or None."""
    row = conn.execute(
        _SELECT_CHANNEL + " WHERE tunnel_id = ? AND channel_id = ?", (tunnel_id, channel_id)
    ).fetchone()
    return _channel_from_row(row) if row else None


def load_client(conn: sqlite3.Connection, client_id: str) -> Optional[ClientRecord]:
    """One client lease, or None."""
    row = conn.execute(_SELECT_CLIENT + " WHERE client_id = ?", (client_id,)).fetchone()
    return ClientRecord(*row) if row else None


def load_state(conn: sqlite3.Connection, tunnel: TunnelRecord) -> TunnelState:
    """The tunnel's channels and clients."""
    args = (tunnel.tunnel_id,)
    channels = [_channel_from_row(row) for row in conn.execute(_SELECT_CHANNEL + " WHERE tunnel_id = ?", args)]
    clients = [ClientRecord(*row) for row in conn.execute(_SELECT_CLIENT + " WHERE tunnel_id = ?", args)]
    return TunnelState(tunnel, channels, clients, stored=True)


def delete_tunnel(conn: sqlite3.Connection, tunnel_id: str) -> None:
    """Remove a tunnel with its channels and clients."""
    for table in ("tunnel_channels", "tunnel_clients", "tunnel_tunnels"):
        conn.execute(f"DELETE FROM {table} WHERE tunnel_id = ?", (tunnel_id,))


def delete_table_tunnels(conn: sqlite3.Connection, table_name: str) -> int:
    """Remove every tunnel of a table; returns how many there were."""
    ids = [row[0] for row in conn.execute("SELECT tunnel_id FROM tunnel_tunnels WHERE table_name = ?", (table_name,))]
    for tunnel_id in ids:
        delete_tunnel(conn, tunnel_id)
    return len(ids)
