"""beam_tunnel.TunnelWorker against the official SDK workers, on one tunnel shape.

The same 50,000-row BaseData tunnel (~300-byte rows: a two-column key and
five attribute columns, 4 channels) is read by the official Go TunnelDaemon,
the official Java TunnelWorker (one warm JVM for all its runs) and
``beam_tunnel.TunnelWorker``, alternating, 3 runs each, each on a fresh
tunnel over the same table, after one untimed warm-up round (the emulator's
page cache, the JVM's JIT). The order rotates every round so no consumer
always runs first. Every consumer reads every key and column value of every
record and prints nothing per record. A run's time is from starting the
worker to its last record; records/s = rows / that time.

The emulator runs in a child process (so it shares no interpreter lock with
the Python worker); the Go and Java programs are tests/compat/go and
tests/compat/java (``make compat`` builds them). Prints each run, the
medians, and as the last line ``python/go ratio: X`` (Python records/s over
Go records/s).

Usage::

    python benchmarks/sdk_bench.py [--rows 50000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _ROOT)
sys.path.insert(0, os.path.join(_ROOT, "tests", "compat"))

from beam_tunnel import TunnelClient  # noqa: E402
from beam_tunnel.worker import TunnelWorker, WorkerConfig  # noqa: E402

TABLE = "bench"
_PAYLOAD = "x" * 100
_CHECKPOINT_S = 5.0  # the same for every consumer (Java's default)
_RUN_TIMEOUT_S = 600


# ---- the emulator child process ---------------------------------------------------------


def _serve_emulator(data_dir: str, port: int, rows: int) -> None:
    """Child process: an emulator holding the bench table; serves until stdin closes."""
    from beam_tunnel.emulator import EmulatorServer
    from beam_tunnel.emulator.model.keys import PkColumn
    from beam_tunnel.emulator.model.tables import PUT, RowChange
    from beam_tunnel.protocol.rows import Cell, Row

    with EmulatorServer(data_dir=data_dir, port=port) as server:
        tables = server.backend.tables
        tables.create_table(TABLE, [PkColumn("shard", "INTEGER"), PkColumn("id", "STRING")], split_points=(4, 8, 12))
        for start in range(0, rows, 200):
            changes = [
                RowChange(PUT, TABLE, Row(
                    (("shard", i % 16), ("id", f"user-{i:012d}")),
                    (Cell("name", f"customer number {i}"), Cell("payload", _PAYLOAD), Cell("amount", i * 0.25),
                     Cell("count", i), Cell("active", i % 2 == 0)),
                ))
                for i in range(start, min(start + 200, rows))
            ]
            for result in tables.batch_write(changes):
                if isinstance(result, Exception):
                    raise result
        print("ready", flush=True)
        sys.stdin.read()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---- consumers --------------------------------------------------------------------------


def _python_run(client: TunnelClient, tunnel_id: str, rows: int) -> float:
    """beam_tunnel.TunnelWorker reads the tunnel; returns seconds to the last record."""
    lock = threading.Lock()
    state = {"count": 0, "touched": 0}
    finished = threading.Event()

    def process(records, context):
        touched = 0
        for record in records:
            for _, value in record.primary_key:
                touched += len(value) if isinstance(value, str) else 8
            for column in record.columns:
                value = column.value
                touched += len(column.name) + (len(value) if isinstance(value, (str, bytes)) else 8)
        with lock:
            state["count"] += len(records)
            state["touched"] += touched
            if state["count"] >= rows and not finished.is_set():
                state["elapsed"] = time.perf_counter() - started
                finished.set()

    config = WorkerConfig(heartbeat_interval_s=5, heartbeat_timeout_s=60, checkpoint_interval_s=_CHECKPOINT_S)
    worker = TunnelWorker(client, tunnel_id, process, config)
    started = time.perf_counter()
    worker.start()
    try:
        if not finished.wait(_RUN_TIMEOUT_S):
            raise RuntimeError(f"python worker read {state['count']} of {rows} records in {_RUN_TIMEOUT_S} s")
    finally:
        worker.stop(timeout=60)
    return state["elapsed"]


def _sdk_run(program, connection: dict, tunnel_id: str, rows: int) -> float:
    done = program.call(
        "consume", timeout_s=_RUN_TIMEOUT_S, tunnel_id=tunnel_id, expect=rows, emit=False,
        heartbeat_s=5, checkpoint_s=_CHECKPOINT_S, **connection,
    )
    if done["reason"] != "expect" or done["records"] < rows:
        raise RuntimeError(f"{program.language} consumer stopped early: {done}")
    return done["elapsed_s"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--serve-emulator", nargs=2, metavar=("DATA_DIR", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_emulator:
        _serve_emulator(args.serve_emulator[0], int(args.serve_emulator[1]), args.rows)
        return 0

    import sdk_build
    from sdk_kit import SdkProgram

    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="sdk-bench-") as data_dir:
        emulator = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--rows", str(args.rows), "--serve-emulator", data_dir, str(port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        programs: Dict[str, SdkProgram] = {}
        try:
            started = time.perf_counter()
            if emulator.stdout.readline().strip() != "ready":
                raise RuntimeError("the emulator child process did not start")
            print(f"table {TABLE}: {args.rows} rows in 4 partitions, written in {time.perf_counter() - started:.1f} s")
            from beam_tunnel.emulator.config import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, DEFAULT_INSTANCE

            connection = {"endpoint": f"http://127.0.0.1:{port}", "instance": DEFAULT_INSTANCE,
                          "key_id": DEFAULT_ACCESS_KEY_ID, "key_secret": DEFAULT_ACCESS_KEY_SECRET}
            client = TunnelClient(connection["endpoint"], DEFAULT_INSTANCE, DEFAULT_ACCESS_KEY_ID,
                                  DEFAULT_ACCESS_KEY_SECRET)
            programs["go"] = SdkProgram("go", sdk_build.go_program())
            programs["java"] = SdkProgram("java", sdk_build.java_program())
            rates: Dict[str, List[float]] = {"go": [], "java": [], "python": []}
            names = list(rates)
            for run in range(args.runs + 1):
                for name in names[run % 3 :] + names[: run % 3]:
                    tunnel_id = client.create_tunnel(TABLE, f"{name}-{run}", "BaseData")
                    if name == "python":
                        elapsed = _python_run(client, tunnel_id, args.rows)
                    else:
                        elapsed = _sdk_run(programs[name], connection, tunnel_id, args.rows)
                    label = "warm-up" if run == 0 else f"run {run}"
                    if run:
                        rates[name].append(args.rows / elapsed)
                    print(f"{label:>7} {name:>6}: {args.rows} records in {elapsed:6.2f} s = "
                          f"{args.rows / elapsed:8.0f} records/s", flush=True)
            medians = {name: statistics.median(values) for name, values in rates.items()}
            for name, median in medians.items():
                print(f"median {name:>6}: {median:8.0f} records/s")
            print(f"python/java ratio: {medians['python'] / medians['java']:.2f}")
            print(f"python/go ratio: {medians['python'] / medians['go']:.2f}")
        finally:
            for program in programs.values():
                program.close()
            emulator.stdin.close()
            try:
                emulator.wait(30)
            except subprocess.TimeoutExpired:
                emulator.kill()
                emulator.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
