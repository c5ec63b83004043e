"""The README's main job, `beam-tunnel demo` (a Beam pipeline syncing a
changing table into SQLite), and the TunnelWorker demo, `beam-tunnel
demo-worker`, run end to end on the emulator as real subprocesses."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys

from beam_tunnel.demo import run_demo


def _cli(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "beam_tunnel.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_pipeline_demo_syncs_the_changing_table_and_proves_it(tmp_path):
    db = tmp_path / "orders.db"
    done = _cli("demo", "--orders", "600", "--seconds", "2", "--target", f"sqlite:///{db}")
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    proof = re.fullmatch(r"target equals source: (\d+) rows", lines[-1])
    assert proof, lines[-5:]
    assert "tunnel 'orders-sync'" in done.stdout and "expiry guard" in done.stdout, "the lag summary"
    assert "[##############################] 100%" in done.stderr, "the progress bar ends full"
    changes = re.search(r"the writer made (\d+) changes: (.*)", done.stdout)
    assert changes and int(changes.group(1)) > 0
    for kind in ("new orders", "status updates", "coupon deletes (all versions)", "order deletes"):
        assert kind in changes.group(2)
    stream_read = [int(line.split()[-1]) for line in lines if line.startswith("orders_")]
    assert len(stream_read) == 3 and sum(stream_read) == int(changes.group(1)), "each change read once"
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == int(proof.group(1))
        full, stream, deleted = conn.execute(
            "SELECT SUM(sync_epoch < 0), SUM(sync_epoch >= 0), SUM(sync_deleted) FROM orders__sync_state"
        ).fetchone()
    assert full > 0 and stream > 0 and deleted > 0, (full, stream, deleted)


def test_pipeline_demo_rejects_bad_sizes():
    done = _cli("demo", "--orders", "0", timeout=60)
    assert done.returncode != 0
    assert "--orders must be >= 1" in done.stderr


def test_worker_demo_reads_every_write_exactly_once():
    lines = []
    assert run_demo(orders=400, changes=300, seed=3, timeout_s=60, say=lines.append) is True
    text = "\n".join(lines)
    assert "[ok] every one of 400 orders read once in the full phase" in text
    assert "[ok] every one of 300 changes read once in the stream" in text
    assert "FAILED" not in text
    # Three partitions: three full-data channels and three stream channels.
    assert sum(1 for line in lines if line.strip().startswith("channel BaseData_")) == 3
    assert sum(1 for line in lines if line.strip().startswith("channel orders_")) == 3


def test_worker_demo_command_exits_zero_and_tells_the_story():
    for args in (["demo-worker"], ["demo", "--worker"]):
        done = _cli(*args, "--orders", "200", "--changes", "100", timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "tunnel 'orders-demo'" in done.stdout
        assert "[ok] stream records in write order within each channel" in done.stdout


def test_worker_demo_command_rejects_bad_sizes():
    done = _cli("demo-worker", "--orders", "0", timeout=60)
    assert done.returncode != 0
    assert "--orders must be >= 1" in done.stderr
