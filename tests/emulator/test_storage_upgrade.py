"""A data dir of the one-file layout (tunnel state inside the table
database, channels without ``released_by``) opens with its tunnels,
channels, checkpoints and leases intact, moved to the tunnel file."""

import os
import sqlite3

from beam_tunnel.emulator import EmulatorServer, ManualClock
from beam_tunnel.emulator.storage import DB_FILE_NAME, TUNNEL_DB_FILE_NAME

from tunnel_kit import Worker, make_table, put_direct, tunnel_client

_TABLES = ("tunnel_tunnels", "tunnel_channels", "tunnel_clients")


def _to_one_file_layout(data_dir):
    """Rewrite the data dir as the emulator before the split stored it."""
    tunnel_path = os.path.join(data_dir, TUNNEL_DB_FILE_NAME)
    conn = sqlite3.connect(os.path.join(data_dir, DB_FILE_NAME), isolation_level=None)
    try:
        conn.execute("ATTACH DATABASE ? AS t", (tunnel_path,))
        for table in _TABLES:
            sql = conn.execute("SELECT sql FROM t.sqlite_master WHERE name = ?", (table,)).fetchone()[0]
            conn.execute(sql.replace("    released_by  TEXT,\n", ""))
            columns = [row[1] for row in conn.execute(f"PRAGMA t.table_info({table})") if row[1] != "released_by"]
            names = ", ".join(columns)
            conn.execute(f"INSERT INTO main.{table} ({names}) SELECT {names} FROM t.{table}")
        conn.execute("DETACH DATABASE t")
    finally:
        conn.close()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(tunnel_path + suffix):
            os.remove(tunnel_path + suffix)


def test_one_file_data_dir_is_upgraded(tmp_path):
    clock = ManualClock()
    data_dir = str(tmp_path)
    with EmulatorServer(clock=clock, data_dir=data_dir) as server:
        make_table(server, "t", stream_columns=())
        client = tunnel_client(server)
        tunnel_id = client.create_tunnel("t", "s", "Stream")
        put_direct(server, "t", "a", v=1)
        worker = Worker(client, tunnel_id, timeout_s=600)
        worker.heartbeat()
        (channel_id,) = worker.open_channels()
        assert worker.drain(channel_id) == 1
        checkpoint = client.get_checkpoint(tunnel_id, worker.client_id, channel_id)
    _to_one_file_layout(data_dir)
    with sqlite3.connect(os.path.join(data_dir, DB_FILE_NAME)) as conn:
        assert conn.execute("SELECT COUNT(*) FROM tunnel_channels").fetchone()[0] == 1
    for _ in range(2):  # the second start finds nothing left to move
        with EmulatorServer(clock=clock, data_dir=data_dir) as server:
            client = tunnel_client(server)
            assert client.get_checkpoint(tunnel_id, worker.client_id, channel_id) == checkpoint
            worker.client = client
            assert worker.heartbeat() == {channel_id: ("OPEN", 1)}
            put_direct(server, "t", "b", v=1)
            assert worker.drain(channel_id) == 1
            checkpoint = client.get_checkpoint(tunnel_id, worker.client_id, channel_id)
    conn = sqlite3.connect(os.path.join(data_dir, DB_FILE_NAME))
    try:
        left = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()
    assert not left.intersection(_TABLES)
