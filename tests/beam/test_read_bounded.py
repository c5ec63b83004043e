"""Bounded ReadFromTunnel reads on FnApiRunner against the emulator.

Each test runs a real pipeline that reaches the emulator over loopback and
checks what matters to a user: every row or change exactly once, full data
before the stream, write order per channel, the checkpoints on the service.
"""

from __future__ import annotations

import collections
import time

import apache_beam as beam
import pytest

from beam_kit import RecordLog, client_of, delete, fnapi_options, keys, make_table, read, read_log, write

from beam_tunnel.client.models import ChannelStatus


def _run(transform, path, *extra):
    with beam.Pipeline(options=fnapi_options(*extra)) as pipeline:
        _ = pipeline | transform | beam.ParDo(RecordLog(path))
    return read_log(path)


def _stream_in_order(rows):
    """True when each channel's stream records came in sequence order."""
    last = {}
    for channel, _key, _n, full, seq, _ts, _action in rows:
        if full:
            continue
        if channel in last and tuple(seq) < last[channel]:
            return False
        last[channel] = tuple(seq)
    return True


def test_base_data_reads_every_row_once_and_terminates(server, tmp_path):
    make_table(server, "orders", partitions=3)
    written = write(server, "orders", keys(1500))
    rows = _run(read(server, "orders", "full", tunnel_type="BaseData"), str(tmp_path / "out.jsonl"))
    assert sorted((r[1], r[2]) for r in rows) == sorted(written)
    assert all(r[3] for r in rows), "a BaseData tunnel delivers full-data records only"
    description = client_of(server).describe_tunnel("orders", "full")
    assert {c.status for c in description.channels} == {ChannelStatus.TERMINATED}
    # Full-data records carry the tunnel's creation time as event time.
    created_us = description.tunnel.create_time_ns // 1000
    assert {r[5] for r in rows} == {created_us}


def test_base_and_stream_caught_up_reads_full_then_stream_once_in_order(server, tmp_path):
    make_table(server, "orders", partitions=3)
    before = write(server, "orders", keys(900))
    client = client_of(server)
    client.create_tunnel("orders", "sync", "BaseAndStream")
    changes = write(server, "orders", [k for k, _ in before[:300]]) + write(server, "orders", keys(300))
    delete(server, "orders", [k for k, _ in before[300:400]])
    rows = _run(read(server, "orders", "sync", stop_when_caught_up=True), str(tmp_path / "out.jsonl"))

    full = [r for r in rows if r[3]]
    stream = [r for r in rows if not r[3]]
    assert sorted((r[1], r[2]) for r in full) == sorted(before), \
        "the full data is the table as it was when the tunnel was created, each row once"
    assert sorted(r[2] for r in stream if r[6] == "put") == sorted(n for _, n in changes)
    assert sorted(r[1] for r in stream if r[6] == "delete") == sorted(k for k, _ in before[300:400])
    assert len(stream) == len({(r[0], tuple(r[4])) for r in stream}), "each change once"
    first_stream = next(i for i, r in enumerate(rows) if not r[3])
    assert all(r[3] for r in rows[:first_stream]) and not any(r[3] for r in rows[first_stream:]), \
        "the stream starts only after the full data"
    assert _stream_in_order(rows)
    assert all(r[5] == r[4][1] for r in stream), "stream records carry their write time as event time"


def test_stop_at_ends_each_channel_before_the_first_later_write(server, tmp_path):
    make_table(server, "orders", partitions=2)
    client = client_of(server)
    client.create_tunnel("orders", "tail", "Stream")
    early = write(server, "orders", keys(400))
    time.sleep(0.05)
    stop = time.time()
    time.sleep(0.05)
    late = write(server, "orders", keys(400))
    rows = _run(read(server, "orders", "tail", tunnel_type="Stream", stop_at=stop), str(tmp_path / "out.jsonl"))
    assert sorted(r[2] for r in rows) == sorted(n for _, n in early)
    assert not {r[2] for r in rows} & {n for _, n in late}
    assert all(r[5] < stop * 1e6 for r in rows)
    assert _stream_in_order(rows)


def test_second_read_resumes_from_the_service_checkpoints(server, tmp_path):
    make_table(server, "orders", partitions=2)
    client = client_of(server)
    client.create_tunnel("orders", "tail", "Stream")
    first = write(server, "orders", keys(300))
    rows = _run(read(server, "orders", "tail", tunnel_type="Stream", stop_when_caught_up=True),
                str(tmp_path / "one.jsonl"))
    assert sorted(r[2] for r in rows) == sorted(n for _, n in first)
    second = write(server, "orders", keys(300))
    rows = _run(read(server, "orders", "tail", tunnel_type="Stream", stop_when_caught_up=True),
                str(tmp_path / "two.jsonl"))
    assert sorted(r[2] for r in rows) == sorted(n for _, n in second), "a graceful end repeats nothing"


def test_reads_everything_once_through_injected_faults(server, tmp_path):
    make_table(server, "orders", partitions=3)
    written = write(server, "orders", keys(1200))
    server.faults.configure(error_rate=0.1, drop_rate=0.02, seed=7)
    rows = _run(read(server, "orders", "faulty", tunnel_type="BaseData"), str(tmp_path / "out.jsonl"))
    server.faults.configure(error_rate=0.0, drop_rate=0.0)
    counts = collections.Counter((r[1], r[2]) for r in rows)
    assert set(counts) == set(written), "nothing lost"
    assert max(counts.values()) == 1, "a retried call never repeats records inside one run"


def test_direct_num_workers_above_one_is_refused(server):
    make_table(server, "orders", partitions=1)
    with pytest.raises(ValueError, match=r"direct_num_workers=2.*silently drops"):
        with beam.Pipeline(options=fnapi_options("--direct_num_workers=2")) as pipeline:
            _ = pipeline | read(server, "orders", "x", tunnel_type="BaseData")


def test_metrics_report_what_was_read_and_committed(server, tmp_path):
    from apache_beam.metrics.metric import MetricsFilter

    make_table(server, "orders", partitions=2)
    written = write(server, "orders", keys(600))
    pipeline = beam.Pipeline(options=fnapi_options())
    _ = pipeline | read(server, "orders", "metered", tunnel_type="BaseData")
    result = pipeline.run()
    result.wait_until_finish()
    counters = {
        m.key.metric.name: m.committed
        for m in result.metrics().query(MetricsFilter().with_namespace("ReadFromTunnel"))["counters"]
    }
    assert counters["elements_read"] == len(written)
    assert counters["bytes_read"] > len(written) * 10
    assert counters.get("late_records", 0) == 0
    assert counters.get("corrupt_records", 0) == 0
    # Commit outcomes are counted in finalization callbacks and reported by
    # the worker's next process() call, so they need not show in this
    # pipeline's totals; none may have failed.
    assert counters.get("commits_failed", 0) == 0


def test_drain_stops_an_unbounded_read(server, tmp_path):
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    make_table(server, "orders", partitions=2)
    client_of(server).create_tunnel("orders", "tail", "Stream")
    write(server, "orders", keys(100))
    log = str(tmp_path / "out.jsonl")
    started = time.time()
    with beam.Pipeline(runner=FnApiRunner(is_drain=True), options=fnapi_options()) as pipeline:
        _ = pipeline | read(server, "orders", "tail", tunnel_type="Stream") | beam.ParDo(RecordLog(log))
    assert time.time() - started < 60, "a drained unbounded read ends"
    assert read_log(log) == [], "truncate stops the read before it emits more"


def _stall_once(record, _stalled=[]):  # noqa: B006 - a flag shared by the fused stage
    if not _stalled:
        _stalled.append(True)
        time.sleep(4)  # longer than the 3 s lease: the service reclaims the slot's channels
    return record


def test_a_slot_that_lost_its_lease_reconnects_and_reads_on(server, tmp_path):
    from apache_beam.metrics.metric import MetricsFilter

    make_table(server, "orders", partitions=2)
    written = write(server, "orders", keys(1200))
    log = str(tmp_path / "out.jsonl")
    pipeline = beam.Pipeline(options=fnapi_options())
    _ = (pipeline
         | read(server, "orders", "lapse", tunnel_type="BaseData", num_slots=1, heartbeat_interval_s=0.5,
                heartbeat_timeout_s=3.0)
         | beam.Map(_stall_once) | beam.ParDo(RecordLog(log)))
    result = pipeline.run()
    result.wait_until_finish()
    rows = read_log(log)
    assert {(r[1], r[2]) for r in rows} == set(written), "nothing lost"
    counters = {m.key.metric.name: m.committed
                for m in result.metrics().query(MetricsFilter().with_namespace("ReadFromTunnel"))["counters"]}
    assert counters.get("reconnects", 0) >= 1
    # Re-read from the last commit: at most what was read since (a few batches).
    assert len(rows) - len(written) <= 3 * 200
