"""sync_table.py and event_time_counts.py on a real streaming runner (Prism,
LOOPBACK, installed by `make runners`), through their command lines with the
runner's options passed through: the same code as on FnApiRunner."""

from __future__ import annotations

import collections
import io
import threading
import time

import pytest
import sqlalchemy as sa

from beam_runners import pipeline_options
from sync_kit import make_orders, write_all

from beam_tunnel.client import TunnelClient
from pipelines import event_time_counts, sync_table
from pipelines._source_rows import source_rows

# Flink: test_sync_flink.py runs the README's Flink command line as a user would.
_REAL_RUNNERS = [pytest.param("prism", marks=pytest.mark.prism, id="prism")]


def _flags(runner: str, **extra) -> list:
    """The runner's options as command-line flags, as a user passes them."""
    options = pipeline_options(runner, **extra).get_all_options(drop_default=True, retain_unknown_options=True)
    flags = []
    for name, value in options.items():
        if value is True:
            flags.append(f"--{name}")
        elif value not in (None, False):
            flags.append(f"--{name}={value}")
    return flags


def _client(server):
    return TunnelClient(server.endpoint, server.instance_name, server.access_key_id, server.access_key_secret)


@pytest.mark.parametrize("runner", _REAL_RUNNERS)
def test_sync_table_converges_on_a_real_runner(server, tmp_path, runner):
    make_orders(server)
    write_all(server, "orders", writers=2, orders=200, changes=400, seed=61)
    _client(server).create_tunnel("orders", "orders-sync", "BaseAndStream")
    write_all(server, "orders", writers=3, orders=200, changes=300, seed=71)
    out = io.StringIO()
    status = sync_table.run(["--endpoint", server.endpoint, "--instance", server.instance_name, "--table", "orders",
                             "--target", f"sqlite:///{tmp_path / 'target.db'}", "--heartbeat-interval", "0.5",
                             "--heartbeat-timeout", "5", "--until-caught-up", "--verify",
                             # Flink finalizes bundles (commits checkpoints) only in streaming mode.
                             *_flags(runner, streaming=runner == "flink")], out=out)
    assert status == 0, out.getvalue()
    assert f"target equals source: {len(source_rows(_client(server), 'orders'))} rows" in out.getvalue()


@pytest.mark.prism
def test_event_time_counts_emit_windows_while_the_stream_runs(server, tmp_path):
    make_orders(server)
    _client(server).create_tunnel("orders", "counts", "Stream")
    window_s, rounds = 2, 6
    stop_at = time.time() + window_s * rounds + 2
    url = f"sqlite:///{tmp_path / 'counts.db'}"
    status = {}

    def pipeline():
        status["exit"] = event_time_counts.run([
            "--endpoint", server.endpoint, "--instance", server.instance_name, "--table", "orders",
            "--tunnel", "counts", "--window", str(window_s), "--stop-at", str(stop_at), "--target", url,
            "--heartbeat-interval", "0.5", "--heartbeat-timeout", "5", *_flags("prism", streaming=True)])

    running = threading.Thread(target=pipeline, daemon=True)
    running.start()
    expected = collections.Counter()
    seen_while_writing = 0
    engine = sa.create_engine(url)
    try:
        for round_ in range(rounds):
            for writer in write_all(server, "orders", writers=1, orders=300, changes=100, seed=round_):
                expected.update(writer.actions)
            time.sleep(window_s)
            try:
                with engine.connect() as conn:
                    seen_while_writing = conn.execute(sa.text("SELECT COUNT(*) FROM event_time_counts")).scalar()
            except sa.exc.OperationalError:
                pass  # the table is created when the first pane is written
        assert time.time() < stop_at, "the writes took longer than planned; the stream would stop early"
        running.join(180)
        assert not running.is_alive(), "the pipeline did not end within 180 s of its stop time"
        assert status["exit"] == 0
        with engine.connect() as conn:
            rows = [dict(row._mapping) for row in conn.execute(sa.text("SELECT * FROM event_time_counts"))]
    finally:
        engine.dispose()
    assert seen_while_writing > 0, "window results appear while the stream runs, not only at its end"
    late = [row for row in rows if row["changes"] != row["on_time_changes"]]
    assert not late, "no record is late: every window's count was complete when the watermark passed it"
    total = collections.Counter()
    for row in rows:
        total[row["action"]] += row["changes"]
    assert total == expected, "every change counted once"
    assert len({row["window_start_us"] for row in rows}) >= rounds // 2
