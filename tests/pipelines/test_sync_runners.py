"""sync_table.py and event_time_counts.py on the real runners (Prism and
Flink, LOOPBACK, installed by `make runners`), through their command lines
with the runner's options passed through: the same code as on FnApiRunner."""

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

_REAL_RUNNERS = [pytest.param("prism", marks=pytest.mark.prism, id="prism"),
                 pytest.param("flink", marks=pytest.mark.flink, id="flink")]


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
