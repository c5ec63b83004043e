"""Emulator throughput, measured the way users see it: over loopback HTTP.

Write part: BatchWriteRow of ~300-byte rows, 200 rows per batch, through
the official tablestore Python SDK, into a table whose stream is on (so
every row is also appended to the stream log). Prints ``write rows/s: N``.

Read part: ReadRecords through ``TunnelClient.read_records`` (records
decoded, as users get them), single-threaded, of a Stream tunnel (EARLIEST,
every logged record) and a BaseData tunnel over the same table; prints
records/s and MB/s (response bodies) of each and, as the last line,
``read records/s: N`` over both.

Usage::

    python benchmarks/emulator_bench.py [--rows 20000] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from typing import Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tablestore  # noqa: E402  (test-only dependency, fine for a benchmark)

from beam_tunnel import TunnelClient  # noqa: E402
from beam_tunnel.client import StartOffset  # noqa: E402
from beam_tunnel.emulator import EmulatorServer  # noqa: E402
from beam_tunnel.emulator.model.tables import StreamSpec  # noqa: E402

TABLE = "bench"
BATCH_ROWS = 200  # the service's BatchWriteRow limit
_PAYLOAD = "x" * 100


def make_client(server: EmulatorServer) -> "tablestore.OTSClient":
    """The official SDK client for ``server`` (no retries: failures show)."""
    return tablestore.OTSClient(
        server.endpoint, server.access_key_id, server.access_key_secret, server.instance_name,
        retry_policy=tablestore.NoRetryPolicy(),
    )


def bench_row(i: int) -> "tablestore.Row":
    """Row ``i``: about 300 bytes as PlainBuffer (key + 5 attribute columns)."""
    return tablestore.Row(
        [("shard", i % 16), ("id", f"user-{i:012d}")],
        [("name", f"customer number {i}"), ("payload", _PAYLOAD), ("amount", i * 0.25),
         ("count", i), ("active", i % 2 == 0)],
    )


def create_table(server: EmulatorServer, ots, name: str = TABLE, stream_hours: int = 24) -> None:
    """A two-column-key table split in 4 partitions, with its stream on."""
    ots.create_table(
        tablestore.TableMeta(name, [("shard", "INTEGER"), ("id", "STRING")]),
        tablestore.TableOptions(), tablestore.ReservedThroughput(tablestore.CapacityUnit(0, 0)),
    )
    # The Python SDK cannot send a stream spec; turn the stream on in the model.
    tables = server.backend.tables
    tables.update_table(name, stream=StreamSpec(True, stream_hours))
    for split in (4, 8, 12):
        # Splitting in ascending order: the last open partition holds the point.
        last = [p for p in tables.list_partitions(name) if not p.closed][-1]
        tables.split_partition(name, last.partition_id, split)


def write_rows(ots, n_rows: int, threads: int = 1, name: str = TABLE, first: int = 0) -> float:
    """Write rows ``first .. first+n_rows-1`` in batches; return seconds taken."""
    batches = [list(range(start, min(start + BATCH_ROWS, first + n_rows)))
               for start in range(first, first + n_rows, BATCH_ROWS)]
    errors = []
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                if not batches:
                    return
                ids = batches.pop()
            request = tablestore.BatchWriteRowRequest()
            request.add(tablestore.TableInBatchWriteRowItem(name, [
                tablestore.PutRowItem(bench_row(i), tablestore.Condition(tablestore.RowExistenceExpectation.IGNORE))
                for i in ids
            ]))
            result = ots.batch_write_row(request)
            if not result.is_all_succeed():
                errors.append(ids[0])

    started = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} batches had failed rows (first ids {errors[:5]})")
    return elapsed


def prepare_table(n_rows: int, data_dir: Optional[str] = None, threads: int = 1) -> Tuple[EmulatorServer, float]:
    """Start an emulator and fill table :data:`TABLE` (stream on) with ``n_rows``.

    Returns:
      (running server - stop it when done, seconds the writes took).
    """
    server = EmulatorServer(data_dir=data_dir).start()
    try:
        ots = make_client(server)
        create_table(server, ots)
        return server, write_rows(ots, n_rows, threads)
    except BaseException:
        server.stop()
        raise


def read_channels(client, tunnel_id: str) -> Tuple[int, int, float]:
    """Connect, take every channel, and read each to its end (full data) or
    until caught up (stream) through ``TunnelClient.read_records``.

    Returns:
      (records read, response bytes, seconds spent reading).
    """
    client_id = client.connect(tunnel_id, 300, "bench")
    channels = client.heartbeat(tunnel_id, client_id, [])
    records = size = 0
    started = time.perf_counter()
    for channel in channels:
        token = client.get_checkpoint(tunnel_id, client_id, channel.channel_id).checkpoint
        while token != "finished":
            result = client.read_records(tunnel_id, client_id, channel.channel_id, token)
            records += len(result.records)
            size += result.size_bytes
            if not result.records and not result.finished:
                break  # a caught-up stream channel
            token = result.next_token
    elapsed = time.perf_counter() - started
    client.shutdown(tunnel_id, client_id)
    return records, size, elapsed


def read_part(server: EmulatorServer, n_rows: int) -> None:
    """ReadRecords throughput of a stream tunnel (EARLIEST: every logged
    record) and a full-data tunnel over the table; prints records/s and
    MB/s of each, then ``read records/s: N`` over both."""
    client = TunnelClient(server.endpoint, server.instance_name, server.access_key_id, server.access_key_secret)
    total_records, total_seconds = 0, 0.0
    try:
        for kind, tunnel_type, start in (("stream", "Stream", StartOffset.EARLIEST), ("full-data", "BaseData", None)):
            tunnel_id = client.create_tunnel(TABLE, f"bench-{kind}", tunnel_type, start_offset=start)
            records, size, seconds = read_channels(client, tunnel_id)
            if records != n_rows:
                raise RuntimeError(f"{kind} tunnel read {records} records, expected {n_rows}")
            print(f"{kind} tunnel: {records} records, {size / 1e6:.1f} MB in {seconds:.2f} s: "
                  f"{records / seconds:.0f} records/s, {size / 1e6 / seconds:.1f} MB/s")
            total_records += records
            total_seconds += seconds
    finally:
        client.close()
    print(f"read records/s: {total_records / total_seconds:.0f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows to write (default 20000)")
    parser.add_argument("--threads", type=int, default=1, help="concurrent SDK writers (default 1)")
    parser.add_argument("--data-dir", default=None, help="data dir (default: a temporary one)")
    args = parser.parse_args(argv)

    server, seconds = prepare_table(args.rows, args.data_dir, args.threads)
    try:
        logged = sum(len(server.backend.streams.read(TABLE, p.partition_id, max_records=10 ** 9, max_bytes=1 << 40))
                     for p in server.backend.tables.list_partitions(TABLE))
        print(f"wrote {args.rows} rows in {-(-args.rows // BATCH_ROWS)} batches of up to {BATCH_ROWS} "
              f"with {args.threads} thread(s) in {seconds:.2f} s; {logged} stream records logged")
        print(f"write rows/s: {args.rows / seconds:.0f}")

        # ---- Read throughput (ReadRecords): the same table through the tunnel
        # ---- API; "read records/s: N" is the last line.
        read_part(server, args.rows)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
