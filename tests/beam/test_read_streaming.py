"""Unbounded ReadFromTunnel on a real streaming runner.

FnApiRunner holds an SDF's watermark until the source ends, so these run
where watermarks really move: windows must fire while the source is still
running, checkpoints must advance on the service during the run, and no
record may fall behind the watermark (each window's on-time count equals
the records in it; allowed lateness 0 would drop a late record).

On Flink the job server Maven Central serves here is Beam 2.62, which
loses a Python SDF's self-checkpointed residuals unless bundles finish
before checkpoints (``--finish_bundle_before_checkpointing``, set by
``beam_runners.pipeline_options``; see README "Beam runners").
"""

from __future__ import annotations

import json
import threading
import time

import apache_beam as beam
import pytest
from apache_beam.transforms import trigger, window

from beam_kit import RecordLog, client_of, make_table, read, write
from beam_runners import pipeline_options

from beam_tunnel import TunnelWorker, WorkerConfig

_WINDOW_S = 2


class _WindowLog(beam.DoFn):
    """Writes (window end µs, count, wall time) for each fired pane."""

    def __init__(self, path: str) -> None:
        self._path = path

    def process(self, count, win=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam):
        line = json.dumps([win.end.micros, count, time.time(), str(pane.timing)])
        with open(self._path, "a", encoding="utf-8") as out:
            out.write(line + "\n")


def _run_windowed_counts(server, runner, windows_log, emitted_log=None):
    """Start (not wait for) a streaming pipeline: the tunnel 'live' of table
    'events' -> [RecordLog] -> fixed windows, allowed lateness 0 -> counts."""
    pipeline = beam.Pipeline(options=pipeline_options(runner, streaming=True))
    records = pipeline | read(server, "events", "live", tunnel_type="Stream", max_bundle_seconds=0.5)
    if emitted_log is not None:
        records = records | beam.ParDo(RecordLog(emitted_log))
    _ = (
        records
        | beam.WindowInto(window.FixedWindows(_WINDOW_S), trigger=trigger.AfterWatermark(),
                          accumulation_mode=trigger.AccumulationMode.DISCARDING, allowed_lateness=0)
        | beam.combiners.Count.Globally().without_defaults()
        | beam.ParDo(_WindowLog(windows_log))
    )
    return pipeline.run()


def _writer(server, table: str, stop: threading.Event, written: list, prefix_letters: str) -> None:
    """About 40 writes a second to the partitions of ``prefix_letters``."""
    index = 0
    while not stop.is_set():
        batch = [f"{prefix_letters[(index + i) % len(prefix_letters)]}w{index + i:07d}" for i in range(8)]
        index += len(batch)
        written.extend(write(server, table, batch))
        stop.wait(0.2)


@pytest.mark.parametrize(
    "runner", [pytest.param("prism", marks=pytest.mark.prism), pytest.param("flink", marks=pytest.mark.flink)]
)
def test_windows_fire_while_the_source_runs_and_no_record_is_late(server, tmp_path, runner):
    make_table(server, "events", partitions=3)
    client = client_of(server)
    client.create_tunnel("events", "live", "Stream")
    log = str(tmp_path / "windows.jsonl")
    result = _run_windowed_counts(server, runner, log)
    stop, written = threading.Event(), []
    # Only keys starting with 'a' are written: the other channels stay idle
    # and must not hold the windows back.
    writer = threading.Thread(target=_writer, args=(server, "events", stop, written, "a"), daemon=True)
    writer.start()
    try:
        deadline = time.time() + 90
        fired_while_running = []
        consume_points = []
        while time.time() < deadline:
            time.sleep(1)
            description = client.describe_tunnel("events", "live")
            consume_points.append(min(c.rpo_ns or 0 for c in description.channels))
            fired_while_running = _read_lines(log)
            if len(fired_while_running) >= 3 and len(set(consume_points)) >= 3:
                break
        assert len(fired_while_running) >= 3, "window results appear while the source still runs"
        assert consume_points == sorted(consume_points) and len(set(consume_points)) >= 3, \
            "checkpoints advance on the service during the run"
    finally:
        stop.set()
        writer.join(10)
        time.sleep(_WINDOW_S * 3)
        result.cancel()
    panes = _read_lines(log)
    fired = {}
    for end_us, count, _wall, _timing in panes:
        assert end_us not in fired, f"window ending at {end_us} fired twice: a late pane"
        fired[end_us] = count
    # Each fired window's count equals the writes whose write time falls into
    # it, as the service logged them: no record came behind the watermark.
    times = _write_times(client, "events")
    assert len(times) == len(written)
    for end_us, count in fired.items():
        expected = sum(1 for t in times if end_us - _WINDOW_S * 1_000_000 <= t < end_us)
        assert count == expected, (end_us, count, expected)


def _read_lines(path):
    try:
        with open(path, encoding="utf-8") as lines:
            return [json.loads(line) for line in lines if line.strip()]
    except FileNotFoundError:
        return []


def _write_times(client, table):
    """Write times of every change in the table's stream, read by a fresh
    tunnel from the earliest change."""
    tunnel_id = client.create_tunnel(table, f"audit-{time.time_ns()}", "Stream", start_offset="EARLIEST")
    client_id = client.connect(tunnel_id, timeout_s=30)
    times = []
    for channel in client.heartbeat(tunnel_id, client_id, []):
        token = client.get_checkpoint(tunnel_id, client_id, channel.channel_id).checkpoint
        for _ in range(1000):
            result = client.read_records(tunnel_id, client_id, channel.channel_id, token)
            times.extend(r.write_time_us for r in result.records)
            if not result.records or result.finished:
                break
            token = result.next_token
    client.shutdown(tunnel_id, client_id)
    return times


# Prism only: on the Beam 2.62 Flink job server the channels opened after a
# merge were not read within two minutes in one run of three (the job
# server's resumes of self-checkpointed residuals are irregular; see README
# "Beam runners"), which would make this test flaky there.
@pytest.mark.parametrize("runner", [pytest.param("prism", marks=pytest.mark.prism)])
def test_no_record_is_late_through_a_split_a_merge_and_a_channel_move(server, tmp_path, runner):
    """Every record the source emits lands in an on-time pane: with allowed
    lateness 0 a late record would be dropped, and its window's count would
    fall short of what the source emitted into it."""
    partitions = make_table(server, "events", partitions=2)
    client = client_of(server)
    tunnel_id = client.create_tunnel("events", "live", "Stream")
    emitted, windows = str(tmp_path / "emitted.jsonl"), str(tmp_path / "windows.jsonl")
    result = _run_windowed_counts(server, runner, windows, emitted_log=emitted)
    stop, written = threading.Event(), []
    writer = threading.Thread(target=_writer, args=(server, "events", stop, written, "acegikmoqsuwy"), daemon=True)
    writer.start()
    by_worker = []
    try:
        _wait_for(lambda: len(_read_lines(windows)) >= 2, 120, "the first windows")
        low, high = server.admin.split_partition("events", partitions[0], "f")
        _wait_for(lambda: len(_read_lines(windows)) >= 5, 120, "windows after the split")
        # Another client joins for a while: the service moves channels to it
        # and, when it leaves, back to the pipeline (re-read from checkpoints).
        config = WorkerConfig(heartbeat_interval_s=0.5, heartbeat_timeout_s=10, checkpoint_interval_s=0.5)
        with TunnelWorker(client_of(server), tunnel_id, lambda records, context: by_worker.extend(records),
                          config):
            time.sleep(6)
        server.admin.merge_partitions("events", low, high)
        _wait_for(lambda: len(_read_lines(windows)) >= 10, 120, "windows after the merge")
    finally:
        stop.set()
        writer.join(10)
        time.sleep(_WINDOW_S * 4)
        result.cancel()
    assert by_worker, "the worker was given channels"
    emitted_rows = _read_lines(emitted)
    panes = _read_lines(windows)
    fired = {}
    for end_us, count, _wall, _timing in panes:
        assert end_us not in fired, f"window ending at {end_us} fired twice: a late pane"
        fired[end_us] = count
    for end_us, count in fired.items():
        in_window = sum(1 for r in emitted_rows if end_us - _WINDOW_S * 1_000_000 <= r[5] < end_us)
        assert count == in_window, f"window ending {end_us}: {count} on time, {in_window} emitted into it"
    seen = {r[2] for r in emitted_rows} | {dict((c.name, c.value) for c in r.columns)["n"] for r in by_worker}
    assert seen >= {n for _, n in written[: len(written) * 9 // 10]}, "nothing lost"


def _wait_for(condition, timeout_s, what):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"waited {timeout_s} s for {what}")
