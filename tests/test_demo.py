"""The README's main job, `beam-tunnel demo`, run end to end on the emulator."""

from __future__ import annotations

import subprocess
import sys

from beam_tunnel.demo import run_demo


def test_demo_reads_every_write_exactly_once():
    lines = []
    assert run_demo(orders=400, changes=300, seed=3, timeout_s=60, say=lines.append) is True
    text = "\n".join(lines)
    assert "[ok] every one of 400 orders read once in the full phase" in text
    assert "[ok] every one of 300 changes read once in the stream" in text
    assert "FAILED" not in text
    # Three partitions: three full-data channels and three stream channels.
    assert sum(1 for line in lines if line.strip().startswith("channel BaseData_")) == 3
    assert sum(1 for line in lines if line.strip().startswith("channel orders_")) == 3


def test_demo_command_exits_zero_and_tells_the_story():
    done = subprocess.run(
        [sys.executable, "-m", "beam_tunnel.cli", "demo", "--orders", "200", "--changes", "100"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "tunnel 'orders-demo'" in done.stdout
    assert "[ok] stream records in write order within each channel" in done.stdout


def test_demo_command_rejects_bad_sizes():
    done = subprocess.run(
        [sys.executable, "-m", "beam_tunnel.cli", "demo", "--orders", "0"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode != 0
    assert "--orders must be >= 1" in done.stderr
