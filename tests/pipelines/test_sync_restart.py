"""sync_table.py killed with SIGKILL mid-stream, while writers keep changing
the table, then started again: the target converges to the source (replayed
changes are skipped by sequence, nothing is lost)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

from sync_kit import Writer, make_orders, write_all

from beam_tunnel.client import TunnelClient


def _command(server, db, *extra):
    return [sys.executable, "-m", "pipelines.sync_table", "--endpoint", server.endpoint,
            "--instance", server.instance_name, "--table", "orders", "--target", f"sqlite:///{db}",
            "--heartbeat-interval", "0.5", "--heartbeat-timeout", "5", "--max-bundle-records", "100",
            "--batch-size", "100", *extra]


def _stream_rows_applied(db) -> int:
    try:
        with sqlite3.connect(db, timeout=10) as conn:
            return conn.execute("SELECT COUNT(*) FROM orders__sync_state WHERE sync_epoch >= 0").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_sigkill_mid_stream_then_restart_converges(server, tmp_path):
    make_orders(server)
    write_all(server, "orders", writers=2, orders=400, changes=500, seed=3)
    TunnelClient(server.endpoint, server.instance_name, server.access_key_id,
                 server.access_key_secret).create_tunnel("orders", "orders-sync", "BaseAndStream")
    db = tmp_path / "target.db"
    writers = [Writer(server, "orders", 400, 3000, seed, pause_s=0.05) for seed in (31, 32, 33)]
    for writer in writers:
        writer.start()
    first = subprocess.Popen(_command(server, db), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             start_new_session=True)
    try:
        deadline = time.time() + 120
        while _stream_rows_applied(db) < 200:
            assert first.poll() is None, first.stderr.read().decode()[-3000:]
            assert time.time() < deadline, "waited 120 s for 200 rows changed by the stream in the target"
            time.sleep(0.2)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(30)
    for writer in writers:
        writer.join(120)
        assert not writer.is_alive() and writer.error is None, writer.error
    second = subprocess.run(_command(server, db, "--until-caught-up", "--verify"), capture_output=True,
                            text=True, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr[-3000:]
    assert "target equals source:" in second.stdout
    print(second.stdout)  # the restart's tally: changes applied, and replays skipped
