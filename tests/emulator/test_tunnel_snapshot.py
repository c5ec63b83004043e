"""The full phase reads the table as of the tunnel's creation (a snapshot):
later writes show only in the stream (BaseAndStream) or not at all
(BaseData), so every change is read in exactly one phase; the snapshot
survives a restart and is dropped once read or when the tunnel goes."""

import pytest

from beam_tunnel.emulator import EmulatorServer, ManualClock
from beam_tunnel.emulator.model.tables import DELETE, RowChange
from beam_tunnel.protocol.rows import Row

from tunnel_kit import Worker, make_table, put_direct, tunnel_client


def _delete(server, table, key):
    server.backend.tables.write_row(RowChange(DELETE, table, Row((("id", key),), ())))


def _snapshot_rows(server):
    with server.backend.storage.read() as conn:
        return conn.execute("SELECT COUNT(*) FROM tbl_snapshot_rows").fetchone()[0]


def _values(records):
    return {r.key["id"]: (r.action.name, {c.name: c.value for c in r.columns}) for r in records}


@pytest.fixture
def env(tmp_path):
    clock = ManualClock()
    with EmulatorServer(clock=clock, data_dir=str(tmp_path)) as server:
        make_table(server, "t", split_points=("m",), stream_columns=())
        for key in ("a", "b", "n", "z"):
            put_direct(server, "t", key, v=0)
        yield server, clock, tunnel_client(server), str(tmp_path)


def test_base_and_stream_sees_each_change_in_exactly_one_phase(env):
    server, clock, client, _ = env
    tunnel_id = client.create_tunnel("t", "bs", "BaseAndStream")
    clock.advance(1)
    put_direct(server, "t", "a", v=1)  # changed after creation
    _delete(server, "t", "n")  # deleted after creation
    put_direct(server, "t", "c", v=1)  # created after creation
    worker = Worker(client, tunnel_id)
    worker.run_until_idle()
    base = [r for cid, rs in worker.records.items() if cid.startswith("BaseData_") for r in rs]
    stream = [r for cid, rs in worker.records.items() if not cid.startswith("BaseData_") for r in rs]
    assert _values(base) == {key: ("PUT", {"v": 0}) for key in ("a", "b", "n", "z")}
    assert [(r.key["id"], r.action.name) for r in sorted(stream, key=lambda r: r.sequence)] == [
        ("a", "PUT"), ("n", "DELETE"), ("c", "PUT")]
    # Read and finished: the snapshot is gone.
    assert _snapshot_rows(server) == 0


def test_base_data_tunnel_reads_the_table_as_of_its_creation(env):
    server, clock, client, _ = env
    tunnel_id = client.create_tunnel("t", "b", "BaseData")
    put_direct(server, "t", "a", v=1)
    put_direct(server, "t", "c", v=1)
    _delete(server, "t", "z")
    worker = Worker(client, tunnel_id)
    worker.run_until_idle()
    assert _values(worker.all_records()) == {key: ("PUT", {"v": 0}) for key in ("a", "b", "n", "z")}


def test_the_snapshot_survives_a_restart_and_goes_with_its_tunnel(env):
    server, clock, client, data_dir = env
    client.create_tunnel("t", "b", "BaseData")
    put_direct(server, "t", "c", v=1)
    assert _snapshot_rows(server) == 4
    server.stop()
    with EmulatorServer(clock=clock, data_dir=data_dir) as again:
        client = tunnel_client(again)
        tunnel_id = client.describe_tunnel("t", "b").tunnel.tunnel_id
        worker = Worker(client, tunnel_id)
        worker.heartbeat()
        low = worker.open_channels()[0]
        worker.drain(low)
        assert sorted(r.key["id"] for r in worker.all_records()) == ["a", "b"]
        assert _snapshot_rows(again) == 2  # the low range is read for good
        client.delete_tunnel("t", "b")
        assert _snapshot_rows(again) == 0
