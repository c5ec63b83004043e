"""A pipeline killed with SIGKILL mid-stream and started again: nothing
acknowledged is lost, and what comes twice is at most the work that was not
committed yet (the records of the bundles in flight)."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time

from beam_kit import client_of, keys, make_table, read_log, write

_HERE = os.path.dirname(os.path.abspath(__file__))
_SLOTS = 3
_BUNDLE_RECORDS = 100


def _start(server, log, mode):
    env = dict(os.environ)
    env.update(ALIBABA_CLOUD_ACCESS_KEY_ID=server.access_key_id,
               ALIBABA_CLOUD_ACCESS_KEY_SECRET=server.access_key_secret)
    env["PYTHONPATH"] = os.pathsep.join([_HERE, env.get("PYTHONPATH", "")])
    return subprocess.Popen(
        [sys.executable, os.path.join(_HERE, "pipeline_main.py"), server.endpoint, server.instance_name,
         "orders", "tail", log, mode],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )


def _wait_for_lines(path, count, process, timeout_s):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if len(read_log(path)) >= count:
            return
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        time.sleep(0.2)
    raise AssertionError(f"waited {timeout_s} s for {count} records in {path}; got {len(read_log(path))}")


def test_sigkill_mid_stream_then_restart_loses_nothing(server, tmp_path):
    make_table(server, "orders", partitions=_SLOTS)
    client_of(server).create_tunnel("orders", "tail", "Stream")
    written = write(server, "orders", keys(1500))
    first_log, second_log = str(tmp_path / "first.jsonl"), str(tmp_path / "second.jsonl")
    first = _start(server, first_log, "unbounded")
    try:
        _wait_for_lines(first_log, 600, first, timeout_s=120)
        written += write(server, "orders", keys(300))
        time.sleep(0.5)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(30)
    written += write(server, "orders", keys(300))
    second = _start(server, second_log, "caught_up")
    try:
        assert second.wait(180) == 0, second.stderr.read().decode()[-3000:]
    finally:
        if second.poll() is None:
            os.killpg(second.pid, signal.SIGKILL)
            second.wait(30)

    first_rows, second_rows = read_log(first_log), read_log(second_log)
    seen = collections.Counter(r[2] for r in first_rows + second_rows)
    assert set(seen) == {n for _, n in written}, "every write arrives"
    duplicates = sum(count - 1 for count in seen.values())
    assert max(collections.Counter(r[2] for r in first_rows).values()) == 1
    assert max(collections.Counter(r[2] for r in second_rows).values()) == 1
    print(f"killed after {len(first_rows)} records; {duplicates} came again after the restart")
    # At most the bundles in flight: one per slot (each at most _BUNDLE_RECORDS
    # records) plus the one whose finalizer had not run yet.
    assert duplicates <= 2 * _SLOTS * _BUNDLE_RECORDS
