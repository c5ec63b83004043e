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


def _slowly(record):
    # A slow consumer behind the source (fused with it), so the read is still
    # going when the other client joins and the service rebalances.
    time.sleep(0.002)
    return record


def test_a_pipeline_and_a_tunnel_worker_share_a_tunnel(server, tmp_path):
    make_table(server, "orders", partitions=4)
    written = write(server, "orders", keys(3000))
    client = client_of(server)
    tunnel_id = client.create_tunnel("orders", "shared", "BaseData")
    by_worker = []
    lock = threading.Lock()

    def process(records, context):
        time.sleep(0.2)
        with lock:
            by_worker.extend((r.key["id"], dict((c.name, c.value) for c in r.columns)["n"]) for r in records)

    log = str(tmp_path / "pipeline.jsonl")
    errors = []

    def run_pipeline():
        try:
            with beam.Pipeline(options=fnapi_options()) as pipeline:
                _ = (pipeline | read(server, "orders", "shared", tunnel_type="BaseData", num_slots=2)
                     | beam.Map(_slowly) | beam.ParDo(RecordLog(log)))
        except Exception as error:  # reported below, in the test thread
            errors.append(error)

    runner = threading.Thread(target=run_pipeline)
    runner.start()
    deadline = time.time() + 60
    while not read_log(log) and time.time() < deadline:
        time.sleep(0.1)
    config = WorkerConfig(heartbeat_interval_s=0.5, heartbeat_timeout_s=5, checkpoint_interval_s=0.5)
    with TunnelWorker(client_of(server), tunnel_id, process, config):
        runner.join(180)
    assert not runner.is_alive() and not errors, errors
    by_pipeline = [(r[1], r[2]) for r in read_log(log)]
    assert by_pipeline and by_worker, "the service gave both clients channels"
    seen = collections.Counter(by_pipeline + by_worker)
    assert set(seen) == set(written), "together they read every row"
    duplicates = sum(count - 1 for count in seen.values())
    # A channel handed over is re-read from its last checkpoint: at most the
    # batch in flight (200 records) per channel moved.
    assert duplicates <= 4 * 200, duplicates


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
