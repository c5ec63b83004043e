"""pipelines/event_time_counts.py on FnApiRunner against the emulator: the
counts per window, action and key prefix add up to exactly the writes, each
in the window of its write time, none late."""

from __future__ import annotations

import collections
import glob
import json
import time

import pytest
import sqlalchemy as sa

from sync_kit import make_orders

from beam_tunnel.client import TunnelClient
from beam_tunnel.emulator.model.tables import DELETE, PUT, UPDATE, RowChange
from beam_tunnel.protocol.rows import Cell, Row
from pipelines import event_time_counts

_WINDOW_S = 2


def _write(server, changes):
    for start in range(0, len(changes), 100):
        for outcome in server.backend.tables.batch_write(changes[start:start + 100]):
            assert not isinstance(outcome, Exception), outcome


def _changes(server):
    """Puts, updates and deletes in three regions over a few windows;
    returns the expected count per (action, region)."""
    expected = collections.Counter()
    for round_ in range(3):
        for region, rows in (("ap", 40), ("eu", 25), ("us", 10)):
            keys = [(("region", region), ("order_id", round_ * 1000 + i)) for i in range(rows)]
            _write(server, [RowChange(PUT, "orders", Row(key, (Cell("status", "new"),))) for key in keys])
            _write(server, [RowChange(UPDATE, "orders", Row(key, (Cell("status", "paid"),))) for key in keys[::2]])
            _write(server, [RowChange(DELETE, "orders", Row(key, ())) for key in keys[::5]])
            expected[("put", region)] += rows
            expected[("update", region)] += len(keys[::2])
            expected[("delete", region)] += len(keys[::5])
        time.sleep(_WINDOW_S)
    return expected


@pytest.mark.parametrize("output", ["database", "files"])
def test_counts_equal_the_writes_in_their_windows(server, tmp_path, output):
    make_orders(server)
    TunnelClient(server.endpoint, server.instance_name, server.access_key_id,
                 server.access_key_secret).create_tunnel("orders", "counts", "Stream")
    began = time.time()
    expected = _changes(server)
    ended = time.time()
    url = f"sqlite:///{tmp_path / 'counts.db'}"
    where = ["--target", url] if output == "database" else ["--output", str(tmp_path / "out")]
    status = event_time_counts.run(["--endpoint", server.endpoint, "--instance", server.instance_name,
                                    "--table", "orders", "--tunnel", "counts", "--window", str(_WINDOW_S),
                                    "--until-caught-up", "--heartbeat-interval", "0.5",
                                    "--heartbeat-timeout", "5", *where])
    assert status == 0
    if output == "database":
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            rows = [dict(row._mapping) for row in conn.execute(sa.text("SELECT * FROM event_time_counts"))]
        engine.dispose()
    else:
        rows = [json.loads(line) for path in glob.glob(str(tmp_path / "out" / "counts*"))
                for line in open(path, encoding="utf-8") if line.strip()]
    got = collections.Counter()
    for row in rows:
        got[(row["action"], row["key_prefix"])] += row["changes"]
        assert row["pane"] == "ON_TIME", row
        assert output == "files" or row["on_time_changes"] == row["changes"]
        assert row["window_end_us"] - row["window_start_us"] == _WINDOW_S * 1_000_000
        assert row["window_start_us"] % (_WINDOW_S * 1_000_000) == 0
        assert (began - _WINDOW_S) * 1e6 <= row["window_start_us"] <= ended * 1e6
    assert got == expected
    assert len({row["window_start_us"] for row in rows}) >= 3, "the writes span several windows"
