"""ReadFromTunnel against the readers it is built on, in one run.

The same BaseData tunnel (~300-byte rows, 4 channels) is read by:

* a raw ``TunnelClient`` loop (the baseline: ReadRecords and decoding only),
* ``TunnelWorker`` (threads, heartbeats, checkpoints),
* ``ReadFromTunnel`` on FnApiRunner, and on Prism when it is installed
  (``make runners``),

each into a counter, against an emulator running in its own process (as the
service would be). Then: the ChangeRecord coder's µs/element, the peak RSS of
a process that reads ``--rss-rows`` rows with ReadFromTunnel, and on Prism
the write -> emit latency of a Stream tunnel written at ``--rate`` rows/s.
The last line is ``pipeline/raw ratio: X`` (FnApiRunner records/s over raw).

Usage::

    python benchmarks/pipeline_bench.py [--rows 100000] [--rss-rows 1000000] [--rate 1000]
"""

from __future__ import annotations

import argparse
import glob
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import apache_beam as beam  # noqa: E402
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402

from beam_tunnel import ReadFromTunnel, TunnelClient, TunnelWorker, WorkerConfig  # noqa: E402
from beam_tunnel.beam.coders import ChangeRecordCoder  # noqa: E402
from beam_tunnel.emulator import EmulatorServer  # noqa: E402
from beam_tunnel.emulator.model.keys import PkColumn  # noqa: E402
from beam_tunnel.emulator.model.tables import PUT, RowChange, StreamSpec  # noqa: E402
from beam_tunnel.protocol.rows import Cell, Row  # noqa: E402

TABLE = "bench"
_PAYLOAD = "x" * 100
_KEY, _SECRET, _INSTANCE = "emulator-access-key-id", "emulator-access-key-secret", "beam-tunnel"


def _rows(start: int, count: int):
    for i in range(start, start + count):
        yield Row(
            (("shard", i % 16), ("id", f"user-{i:012d}")),
            (Cell("name", f"customer number {i}"), Cell("payload", _PAYLOAD), Cell("amount", i * 0.25),
             Cell("count", i), Cell("active", i % 2 == 0)),
        )


def populate(data_dir: str, rows: int) -> None:
    """Write the table into ``data_dir`` in process (setup, not measured)."""
    with EmulatorServer(data_dir=data_dir) as server:
        server.backend.tables.create_table(
            TABLE, [PkColumn("shard", "INTEGER"), PkColumn("id", "STRING")], split_points=(4, 8, 12),
            stream=StreamSpec(True, 24))
        batch = []
        for row in _rows(0, rows):
            batch.append(RowChange(PUT, TABLE, row))
            if len(batch) == 200:
                server.backend.tables.batch_write(batch)
                batch = []
        if batch:
            server.backend.tables.batch_write(batch)


class Emulator:
    """``beam-tunnel emulator`` in its own process over ``data_dir``."""

    def __init__(self, data_dir: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "beam_tunnel.cli", "emulator", "--port", "0", "--data-dir", data_dir],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        deadline = time.time() + 60
        self.endpoint = None
        while time.time() < deadline and self.endpoint is None:
            line = self.process.stdout.readline()
            if not line:
                break
            for word in line.split():
                if word.startswith("http://"):
                    self.endpoint = word.rstrip(",")
        if self.endpoint is None:
            self.stop()
            raise RuntimeError("the emulator did not print its endpoint within 60 s")
        threading.Thread(target=self.process.stdout.read, daemon=True).start()

    def client(self) -> TunnelClient:
        return TunnelClient(self.endpoint, _INSTANCE, _KEY, _SECRET)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(30)


def read_raw(client: TunnelClient, tunnel: str) -> int:
    tunnel_id = client.create_tunnel(TABLE, tunnel, "BaseData")
    client_id = client.connect(tunnel_id)
    count = 0
    for channel in client.heartbeat(tunnel_id, client_id, []):
        token = client.get_checkpoint(tunnel_id, client_id, channel.channel_id).checkpoint
        while token != "finished":
            result = client.read_records(tunnel_id, client_id, channel.channel_id, token)
            count += len(result.records)
            token = result.next_token
    client.shutdown(tunnel_id, client_id)
    return count


def read_worker(client: TunnelClient, tunnel: str, rows: int) -> int:
    tunnel_id = client.create_tunnel(TABLE, tunnel, "BaseData")
    seen = [0]
    lock = threading.Lock()
    done = threading.Event()

    def process(records, context):
        with lock:
            seen[0] += len(records)
            if seen[0] >= rows:
                done.set()

    config = WorkerConfig(heartbeat_interval_s=1, heartbeat_timeout_s=10)
    with TunnelWorker(client, tunnel_id, process, config):
        done.wait(600)
    return seen[0]


def read_pipeline(endpoint: str, tunnel: str, options: PipelineOptions) -> None:
    with beam.Pipeline(options=options) as pipeline:
        _ = (
            pipeline
            | ReadFromTunnel(endpoint=endpoint, instance=_INSTANCE, access_key_id=_KEY, access_key_secret=_SECRET,
                             table=TABLE, tunnel=tunnel, tunnel_type="BaseData", num_slots=2)
            | beam.combiners.Count.Globally()
        )


def timed(label: str, rows: int, action) -> float:
    start = time.perf_counter()
    action()
    seconds = time.perf_counter() - start
    rate = rows / seconds
    print(f"{label:<28} {rows:>9} records in {seconds:6.2f} s: {rate:>9.0f} records/s", flush=True)
    return rate


def prism_binary():
    cache = os.environ.get("BEAM_TUNNEL_RUNNER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "beam_tunnel", "runners")
    found = sorted(glob.glob(os.path.join(cache, "prism", "*", "prism")))
    return found[-1] if found else None


def prism_options(streaming: bool = False) -> PipelineOptions:
    args = ["--runner=PrismRunner", f"--prism_location={prism_binary()}", "--environment_type=LOOPBACK"]
    return PipelineOptions(args + (["--streaming"] if streaming else []))


def coder_micros() -> float:
    client_records = []
    with EmulatorServer() as server:
        server.backend.tables.create_table("c", [PkColumn("shard", "INTEGER"), PkColumn("id", "STRING")],
                                           stream=StreamSpec(True, 24))
        server.backend.tables.batch_write([RowChange(PUT, "c", row) for row in _rows(0, 200)])
        client = TunnelClient(server.endpoint, server.instance_name, server.access_key_id, server.access_key_secret)
        tunnel_id = client.create_tunnel("c", "c", "Stream", start_offset="EARLIEST")
        client_id = client.connect(tunnel_id)
        for channel in client.heartbeat(tunnel_id, client_id, []):
            token = client.get_checkpoint(tunnel_id, client_id, channel.channel_id).checkpoint
            client_records.extend(client.read_records(tunnel_id, client_id, channel.channel_id, token).records)
        client.close()
    coder = ChangeRecordCoder()
    rounds = 50
    start = time.perf_counter()
    for _ in range(rounds):
        for record in client_records:
            coder.decode(coder.encode(record))
    return (time.perf_counter() - start) / (rounds * len(client_records)) * 1e6


def peak_rss_mb(endpoint: str, tunnel: str) -> float:
    """Peak RSS of a separate process that reads the tunnel with ReadFromTunnel."""
    code = (
        "import sys; sys.path.insert(0, %r)\n"
        "from benchmarks.pipeline_bench import read_pipeline\n"
        "from apache_beam.options.pipeline_options import PipelineOptions\n"
        "read_pipeline(%r, %r, PipelineOptions(['--runner=FnApiRunner']))\n"
    ) % (os.path.dirname(os.path.dirname(os.path.abspath(__file__))), endpoint, tunnel)
    subprocess.run([sys.executable, "-c", code], check=True)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def prism_latency(rate: int, seconds: float):
    """(p50, p99) ms from the emulator's write time to the record leaving the source on Prism."""
    class Measure(beam.DoFn):
        """Appends write->emit ms to a file: the DoFn runs in the SDK harness,
        on a pickled copy, so a list here would never be seen."""

        def __init__(self, path):
            self._path = path

        def process(self, record):
            with open(self._path, "a", encoding="ascii") as out:
                out.write(f"{time.time() * 1000 - record.write_time_us / 1000:.3f}\n")

    with tempfile.TemporaryDirectory() as data_dir, EmulatorServer(data_dir=data_dir) as server:
        log = os.path.join(data_dir, "latencies.txt")
        server.backend.tables.create_table("live", [PkColumn("shard", "INTEGER"), PkColumn("id", "STRING")],
                                           stream=StreamSpec(True, 24))
        pipeline = beam.Pipeline(options=prism_options(streaming=True))
        _ = (
            pipeline
            | ReadFromTunnel(endpoint=server.endpoint, instance=server.instance_name,
                             access_key_id=server.access_key_id, access_key_secret=server.access_key_secret,
                             table="live", tunnel="live", tunnel_type="Stream", idle_wait_s=0.5)
            | beam.ParDo(Measure(log))
        )
        result = pipeline.run()
        time.sleep(8)  # the pipeline starts and the slot takes its channel
        if os.path.exists(log):
            os.remove(log)
        written, start = 0, time.time()
        while time.time() - start < seconds:
            batch = max(1, rate // 20)
            server.backend.tables.batch_write([RowChange(PUT, "live", row) for row in _rows(written, batch)])
            written += batch
            time.sleep(max(0.0, start + written / rate - time.time()))
        time.sleep(3)
        result.cancel()
        with open(log, encoding="ascii") as lines:
            latencies = [float(line) for line in lines if line.strip()]
    ordered = sorted(latencies)
    if not ordered:
        return None
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], len(ordered)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rss-rows", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        print(f"writing {args.rows} rows ...", flush=True)
        populate(data_dir, args.rows)
        emulator = Emulator(data_dir)
        try:
            client = emulator.client()
            raw = timed("raw TunnelClient loop", args.rows, lambda: read_raw(client, "raw"))
            timed("TunnelWorker", args.rows, lambda: read_worker(client, "worker", args.rows))
            fnapi = timed("ReadFromTunnel FnApiRunner", args.rows, lambda: read_pipeline(
                emulator.endpoint, "fnapi", PipelineOptions(["--runner=FnApiRunner"])))
            if prism_binary():
                timed("ReadFromTunnel Prism", args.rows, lambda: read_pipeline(
                    emulator.endpoint, "prism", prism_options()))
            else:
                print("ReadFromTunnel Prism: not installed (make runners)")
        finally:
            emulator.stop()
    print(f"coder µs/element (encode+decode): {coder_micros():.1f}")
    if args.rss_rows:
        with tempfile.TemporaryDirectory() as data_dir:
            print(f"writing {args.rss_rows} rows for the memory run ...", flush=True)
            populate(data_dir, args.rss_rows)
            emulator = Emulator(data_dir)
            try:
                print(f"peak RSS reading {args.rss_rows} rows: {peak_rss_mb(emulator.endpoint, 'rss'):.0f} MB "
                      "(target <= 300)")
            finally:
                emulator.stop()
    if prism_binary() and args.rate:
        latency = prism_latency(args.rate, seconds=10)
        if latency:
            print(f"Prism write->emit latency at {args.rate} writes/s: p50 {latency[0]:.0f} ms, "
                  f"p99 {latency[1]:.0f} ms over {latency[2]} records (targets 100 / 500)")
    print(f"pipeline/raw ratio: {fnapi / raw:.2f}")


if __name__ == "__main__":
    main()
