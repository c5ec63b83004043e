"""pipelines/sync_table.py on FnApiRunner against the emulator: a table that
several writers change (puts, updates, column deletes, row deletes) ends up
equal in SQLite, row by row and column by column, checked by GetRange."""

from __future__ import annotations

import io

import pytest
import sqlalchemy as sa

from sync_kit import make_orders, write_all

from beam_tunnel.client import TunnelClient
from pipelines import sync_table
from pipelines._source_rows import source_rows


def _args(server, db, *extra):
    return ["--endpoint", server.endpoint, "--instance", server.instance_name, "--table", "orders",
            "--target", f"sqlite:///{db}", "--heartbeat-interval", "0.5", "--heartbeat-timeout", "5",
            "--max-bundle-records", "300", *extra]


def _run(args):
    out = io.StringIO()
    status = sync_table.run(args, out=out)
    return status, out.getvalue()


def test_full_then_changes_from_several_writers_converge(server, tmp_path):
    make_orders(server)
    before = write_all(server, "orders", writers=2, orders=300, changes=600, seed=1)
    TunnelClient(server.endpoint, server.instance_name, server.access_key_id,
                 server.access_key_secret).create_tunnel("orders", "orders-sync", "BaseAndStream")
    after = write_all(server, "orders", writers=3, orders=300, changes=500, seed=11)
    kinds = {}
    for writer in before + after:
        for kind, count in writer.kinds.items():
            kinds[kind] = kinds.get(kind, 0) + count
    assert min(kinds.values()) > 20 and len(kinds) == 5, kinds

    db = tmp_path / "target.db"
    status, out = _run(_args(server, db, "--until-caught-up", "--verify"))
    rows = source_rows(TunnelClient(server.endpoint, server.instance_name, server.access_key_id,
                                    server.access_key_secret), "orders")
    assert status == 0, out
    assert f"target equals source: {len(rows)} rows" in out
    assert len(rows) > 100

    # A second run from the tunnel's checkpoints after more changes.
    write_all(server, "orders", writers=2, orders=300, changes=300, seed=21)
    status, out = _run(_args(server, db, "--until-caught-up", "--verify"))
    assert status == 0, out
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("orders")}
    engine.dispose()
    assert columns == {"region", "order_id", "status", "amount", "qty", "paid", "blob", "note"}


def test_verify_reports_the_differences(server, tmp_path):
    make_orders(server)
    write_all(server, "orders", writers=1, orders=50, changes=100, seed=5)
    db = tmp_path / "target.db"
    assert _run(_args(server, db, "--until-caught-up", "--verify"))[0] == 0
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        victim = conn.execute(sa.text("SELECT region, order_id FROM orders LIMIT 1")).one()
        conn.execute(sa.text("DELETE FROM orders WHERE region = :r AND order_id = :o"),
                     {"r": victim[0], "o": victim[1]})
        conn.execute(sa.text("INSERT INTO orders (region, order_id, status) VALUES ('zz', 1, 'ghost')"))
    engine.dispose()
    status, out = _run(_args(server, db, "--verify-only"))
    assert status == 1
    assert "target differs from source: 1 rows missing, 1 extra" in out
    assert f"missing in target: region={victim[0]!r}, order_id={victim[1]!r}" in out
    assert "not in source:     region='zz', order_id=1" in out


def test_help_lists_the_options_and_beam_pass_through():
    with pytest.raises(SystemExit) as done:
        sync_table.build_parser().parse_args(["--help"])
    assert done.value.code == 0


def test_verify_needs_a_bounded_run(server, tmp_path, capsys):
    with pytest.raises(SystemExit):
        sync_table.run(_args(server, tmp_path / "x.db", "--verify"))
    assert "--verify needs a bounded run" in capsys.readouterr().err


def test_both_command_lines_answer_help_as_programs():
    import subprocess
    import sys

    for module in ("pipelines.sync_table", "pipelines.event_time_counts"):
        done = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "--table" in done.stdout and "Beam pipeline option" in done.stdout


def test_a_missing_table_is_named(server, tmp_path, capsys):
    args = ["no_such_table" if arg == "orders" else arg for arg in _args(server, tmp_path / "x.db", "--until-caught-up")]
    status = sync_table.run(args)
    assert status == 2
    assert "no_such_table" in capsys.readouterr().err
