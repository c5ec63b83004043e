"""The same bounded reads on every runner: FnApiRunner, Prism and Flink.

Flink runs them in streaming mode: portable Flink refuses a DoFn with a
bundle finalizer in batch mode, and commits only after its checkpoints.
"""

from __future__ import annotations

import apache_beam as beam

from beam_kit import RecordLog, client_of, keys, make_table, read, read_log, write
from beam_runners import pipeline_options

from beam_tunnel.client.models import ChannelStatus


def test_base_data_read_on_every_runner(server, tmp_path, runner):
    make_table(server, "orders", partitions=3)
    written = write(server, "orders", keys(900))
    log = str(tmp_path / "out.jsonl")
    with beam.Pipeline(options=pipeline_options(runner, streaming=(runner == "flink"))) as pipeline:
        _ = pipeline | read(server, "orders", "full", tunnel_type="BaseData") | beam.ParDo(RecordLog(log))
    rows = read_log(log)
    assert sorted((r[1], r[2]) for r in rows) == sorted(written), "every row exactly once"
    description = client_of(server).describe_tunnel("orders", "full")
    assert {c.status for c in description.channels} == {ChannelStatus.TERMINATED}


def test_caught_up_stream_read_on_every_runner(server, tmp_path, runner):
    make_table(server, "orders", partitions=2)
    client_of(server).create_tunnel("orders", "tail", "Stream")
    written = write(server, "orders", keys(600))
    log = str(tmp_path / "out.jsonl")
    with beam.Pipeline(options=pipeline_options(runner, streaming=(runner == "flink"))) as pipeline:
        _ = pipeline | read(server, "orders", "tail", tunnel_type="Stream", stop_when_caught_up=True) \
            | beam.ParDo(RecordLog(log))
    rows = read_log(log)
    assert sorted(r[2] for r in rows) == sorted(n for _, n in written)
    last = {}
    for channel, _key, _n, _full, seq, _ts, _action in rows:
        assert tuple(seq) > last.get(channel, ()), "write order per channel"
        last[channel] = tuple(seq)
