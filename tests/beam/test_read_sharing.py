"""ReadFromTunnel is a well-mannered tunnel client: it shares a tunnel's
channels with other pipelines and with TunnelWorkers, as the service
balances them, and together they read every row."""

from __future__ import annotations

import collections
import threading
import time

import apache_beam as beam

from beam_kit import RecordLog, client_of, fnapi_options, keys, make_table, read, read_log, write
from test_read_restart import _start

from beam_tunnel import TunnelWorker, WorkerConfig


def test_a_pipeline_and_a_tunnel_worker_share_a_tunnel(server, tmp_path):
    make_table(server, "orders", partitions=4)
    written = write(server, "orders", keys(4000))
    client = client_of(server)
    tunnel_id = client.create_tunnel("orders", "shared", "BaseData")
    by_worker = []
    lock = threading.Lock()

    def process(records, context):
        # A slow consumer: its channels are still being read when the
        # pipeline's clients join, so the service has some to move to them.
        time.sleep(1.0)
        with lock:
            by_worker.extend((r.key["id"], dict((c.name, c.value) for c in r.columns)["n"]) for r in records)

    log = str(tmp_path / "pipeline.jsonl")
    config = WorkerConfig(heartbeat_interval_s=0.5, heartbeat_timeout_s=20, checkpoint_interval_s=0.5)
    with TunnelWorker(client_of(server), tunnel_id, process, config):
        deadline = time.time() + 60
        while not by_worker and time.time() < deadline:
            time.sleep(0.1)
        with beam.Pipeline(options=fnapi_options()) as pipeline:
            _ = (pipeline | read(server, "orders", "shared", tunnel_type="BaseData", num_slots=2)
                 | beam.ParDo(RecordLog(log)))
    by_pipeline = [(r[1], r[2]) for r in read_log(log)]
    assert by_pipeline and by_worker, "the service gave both clients channels"
    seen = collections.Counter(by_pipeline + by_worker)
    assert set(seen) == set(written), "together they read every row"
    duplicates = sum(count - 1 for count in seen.values())
    # A channel handed over is re-read from its last checkpoint: at most the
    # batches in flight (200 records each) per channel moved.
    assert duplicates <= 4 * 2 * 200, duplicates


def test_two_pipelines_share_a_tunnel(server, tmp_path):
    make_table(server, "orders", partitions=4)
    written = write(server, "orders", keys(2000))
    client_of(server).create_tunnel("orders", "tail", "BaseData")
    logs = [str(tmp_path / f"p{i}.jsonl") for i in range(2)]
    processes = [_start(server, log, "base_data") for log in logs]
    try:
        for process in processes:
            assert process.wait(180) == 0, process.stderr.read().decode()[-3000:]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(30)
    rows = [read_log(log) for log in logs]
    seen = collections.Counter((r[1], r[2]) for part in rows for r in part)
    assert set(seen) == set(written)
    assert sum(count - 1 for count in seen.values()) <= 200
