"""Emulator memory under concurrent reads: SQLite page caches and pooled
connections, with the former settings (64 MiB cache per connection, 16 idle
readers kept) as the baseline, each in a fresh process, in one run.

Each process writes ``--rows`` rows of ~1 KiB (through the model API), then
``--readers`` threads scan the whole table at the same time (every reader
connection open at once, each filling its page cache), ``--rounds`` times.
Prints peak and after-burst resident memory per setting and, as the last
line, ``memory ratio (peak, baseline/current): X``.

Usage::

    python benchmarks/emulator_memory_bench.py [--rows 40000] [--readers 17] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from beam_tunnel.emulator.clock import Clock  # noqa: E402
from beam_tunnel.emulator.model.tables import PUT, PkColumn, RowChange, TableBackend  # noqa: E402
from beam_tunnel.emulator.storage import Storage  # noqa: E402
from beam_tunnel.protocol.rows import INF_MAX, INF_MIN, Cell, Row  # noqa: E402

SETTINGS = {
    "baseline (64 MiB x 16 idle)": {"cache_kib": 64 * 1024, "max_idle_readers": 16},
    "current (defaults)": {},
}
_BATCH = 200


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _measure(settings: dict, rows: int, readers: int, rounds: int) -> dict:
    with tempfile.TemporaryDirectory() as data_dir:
        storage = Storage(data_dir, **settings)
        try:
            tables = TableBackend(storage, Clock())
            tables.create_table("t", [PkColumn("id", "INTEGER")])
            payload = "x" * 1000
            for start in range(0, rows, _BATCH):
                tables.batch_write([
                    RowChange(PUT, "t", Row((("id", i),), (Cell("v", payload),)))
                    for i in range(start, min(start + _BATCH, rows))
                ])
            barrier = threading.Barrier(readers)

            def scan():
                with storage.read():  # hold one connection while the others open theirs
                    barrier.wait(120)
                next_key = INF_MIN
                while next_key is not None:
                    _, next_key = tables.scan("t", next_key, INF_MAX, 5000, 8 << 20)

            baseline_kib = _rss_kib()
            for _ in range(rounds):
                # Each scan page takes a pooled reader; with every thread
                # scanning at once the pool holds ``readers`` connections.
                threads = [threading.Thread(target=scan) for _ in range(readers)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
            return {
                "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "after_mib": _rss_kib() / 1024,
                "loaded_mib": baseline_kib / 1024,
                "kept": storage.connections_kept,
            }
        finally:
            storage.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--readers", type=int, default=17)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--setting", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setting:
        print(json.dumps(_measure(SETTINGS[args.setting], args.rows, args.readers, args.rounds)))
        return
    results = {}
    for name in SETTINGS:
        out = subprocess.run(
            [sys.executable, __file__, "--rows", str(args.rows), "--readers", str(args.readers),
             "--rounds", str(args.rounds), "--setting", name],
            check=True, capture_output=True, text=True, timeout=900,
        ).stdout
        results[name] = json.loads(out.strip().splitlines()[-1])
        r = results[name]
        print(f"{name}: peak RSS {r['peak_mib']:.0f} MiB, after the bursts {r['after_mib']:.0f} MiB "
              f"(after loading {r['loaded_mib']:.0f} MiB), connections kept {r['kept']}")
    baseline, current = (results[name]["peak_mib"] for name in SETTINGS)
    print(f"memory ratio (peak, baseline/current): {baseline / current:.2f}")


if __name__ == "__main__":
    main()
