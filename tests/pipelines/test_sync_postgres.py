"""sync_table.py into PostgreSQL (a throwaway server this module starts and
stops): the same convergence as into SQLite, every value type included."""

from __future__ import annotations

import io

import pytest
import sqlalchemy as sa

from postgres_kit import postgres_server
from sync_kit import make_orders, write_all

from beam_tunnel.client import TunnelClient
from pipelines import sync_table
from pipelines._source_rows import source_rows


@pytest.fixture(scope="module")
def postgres_url():
    with postgres_server() as url:
        yield url


def _run(server, url, *extra):
    out = io.StringIO()
    status = sync_table.run(["--endpoint", server.endpoint, "--instance", server.instance_name, "--table", "orders",
                             "--target", url, "--target-table", "orders_copy", "--heartbeat-interval", "0.5",
                             "--heartbeat-timeout", "5", "--max-bundle-records", "300", *extra], out=out)
    return status, out.getvalue()


def test_sync_into_postgres_converges_and_replays_change_nothing(server, postgres_url):
    make_orders(server)
    write_all(server, "orders", writers=2, orders=200, changes=400, seed=41)
    TunnelClient(server.endpoint, server.instance_name, server.access_key_id,
                 server.access_key_secret).create_tunnel("orders", "orders-sync", "BaseAndStream")
    write_all(server, "orders", writers=3, orders=200, changes=300, seed=51)
    status, out = _run(server, postgres_url, "--until-caught-up", "--verify")
    assert status == 0, out
    rows = source_rows(TunnelClient(server.endpoint, server.instance_name, server.access_key_id,
                                    server.access_key_secret), "orders")
    assert f"target equals source: {len(rows)} rows" in out

    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            types = {c["name"]: type(c["type"]).__name__ for c in sa.inspect(conn).get_columns("orders_copy")}
            state_before = conn.execute(sa.text("SELECT * FROM orders_copy__sync_state ORDER BY 1, 2")).all()
    finally:
        engine.dispose()
    assert types["paid"] == "BOOLEAN" and types["blob"] == "BYTEA" and types["qty"] == "BIGINT", types
    assert types["amount"] in ("DOUBLE_PRECISION", "DOUBLE", "FLOAT"), types

    # A new tunnel replays the whole history (full data from a new snapshot,
    # then nothing): the target must not move.
    status, out = _run(server, postgres_url, "--tunnel", "replay", "--until-caught-up", "--verify")
    assert status == 0, out
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT * FROM orders_copy__sync_state ORDER BY 1, 2")).all() == state_before
    finally:
        engine.dispose()
