"""Tunnel control calls do not depend on a slow or blocked commit.

A write transaction is held open from another sqlite3 connection (as a slow
fsync, a WAL checkpoint or a big batch would hold the write lock): with the
table data locked, heartbeats, DescribeTunnel, GetRpo and checkpoints still
answer before it is released; with the tunnel state itself locked, a
heartbeat that arrived in time keeps its lease however long the emulator
took to answer it, and DescribeTunnel still answers."""

import contextlib
import os
import sqlite3
import threading
import time

import pytest

from beam_tunnel.client import TunnelClient
from beam_tunnel.emulator import EmulatorServer, ManualClock
from beam_tunnel.emulator.storage import DB_FILE_NAME, TUNNEL_DB_FILE_NAME

from tunnel_kit import Worker, make_table, put_direct

# The client gives up after this; the lock is held longer than any answer
# that had to wait for it could take to arrive.
_CALL_TIMEOUT_S = 8.0


def _client(server) -> TunnelClient:
    return TunnelClient(server.endpoint, server.instance_name, server.access_key_id, server.access_key_secret,
                        retry_deadline=0, timeout=(2.0, _CALL_TIMEOUT_S))


@contextlib.contextmanager
def _write_locked(path):
    """Hold the database's write lock from another connection."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("CREATE TABLE IF NOT EXISTS stall_probe (x)")
        conn.execute("INSERT INTO stall_probe VALUES (1)")
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


@pytest.fixture
def env(tmp_path):
    clock = ManualClock()
    with EmulatorServer(clock=clock, data_dir=str(tmp_path)) as server:
        make_table(server, "t", split_points=("m",), stream_columns=())
        client = _client(server)
        tunnel_id = client.create_tunnel("t", "s", "Stream")
        yield server, clock, client, tunnel_id, str(tmp_path)


def test_control_calls_answer_while_the_table_data_is_write_locked(env):
    server, clock, client, tunnel_id, data_dir = env
    worker = Worker(client, tunnel_id, timeout_s=10)
    worker.heartbeat()
    channel_id = worker.open_channels()[0]
    put_direct(server, "t", "a", v=1)
    with _write_locked(os.path.join(data_dir, DB_FILE_NAME)):
        assert sorted(worker.heartbeat().values()) == [("OPEN", 1)] * 2
        other = Worker(client, tunnel_id, timeout_s=10, tag="other")
        other.heartbeat()
        described = client.describe_tunnel("t", "s")
        assert {c.client_id for c in described.channels} == {worker.client_id}
        client.get_rpo(tunnel_id)
        # Reading and checkpointing need no table write either.
        assert worker.drain(channel_id) == 1
        assert client.get_checkpoint(tunnel_id, worker.client_id, channel_id).sequence_number == 1


def test_a_heartbeat_held_up_by_the_emulator_keeps_its_lease(env):
    server, clock, client, tunnel_id, data_dir = env
    worker = Worker(client, tunnel_id, timeout_s=10)
    worker.heartbeat()
    held = worker.open_channels()
    outcome = {}

    def heartbeat():
        try:
            outcome["view"] = worker.heartbeat()
        except Exception as err:  # noqa: BLE001 - reported below
            outcome["error"] = err

    with _write_locked(os.path.join(data_dir, TUNNEL_DB_FILE_NAME)):
        thread = threading.Thread(target=heartbeat, daemon=True)
        thread.start()
        _wait_for_arrival(server, worker.client_id)
        # The emulator cannot answer; meanwhile its clock passes the lease
        # timeout. The client did its part: the heartbeat is in.
        clock.advance(11)
        described = client.describe_tunnel("t", "s")
        assert {c.client_id for c in described.channels} == {worker.client_id}
    thread.join(_CALL_TIMEOUT_S + 5)
    assert not thread.is_alive(), "the heartbeat never came back"
    assert "error" not in outcome, outcome.get("error")
    assert sorted(outcome["view"]) == held
    # Renewed when it was answered, not when it arrived.
    clock.advance(9)
    assert sorted(worker.heartbeat()) == held


def _wait_for_arrival(server, client_id, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.backend.tunnels.pending_since(client_id) is not None:
            return
        time.sleep(0.01)
    raise AssertionError(f"the heartbeat of {client_id} did not reach the emulator within {timeout_s} s")
