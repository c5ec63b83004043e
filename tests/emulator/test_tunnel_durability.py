"""Restarts keep tunnels, channels, checkpoints and leases; stream retention
skips expired data and expires a BaseAndStream tunnel whose full phase
outlived it."""

import pytest

from beam_tunnel.errors import ResourceGoneError, TunnelExpiredError
from beam_tunnel.emulator import EmulatorServer, ManualClock

from tunnel_kit import Worker, make_table, ots_client, put, put_direct, tunnel_client

HOUR = 3600


def test_restart_keeps_tunnels_channels_checkpoints_and_leases(tmp_path):
    clock = ManualClock()
    with EmulatorServer(data_dir=str(tmp_path), clock=clock) as server:
        make_table(server, "t", split_points=("m",), stream_columns=())
        ots, client = ots_client(server), tunnel_client(server)
        tunnel_id = client.create_tunnel("t", "s", "Stream")
        a = Worker(client, tunnel_id, timeout_s=30, tag="a")
        b = Worker(client, tunnel_id, timeout_s=30, tag="b")
        a.heartbeat()
        b.heartbeat()
        a.heartbeat()  # a answers CLOSE for the channel that moves to b
        b.heartbeat()
        for key in ("a1", "z1"):
            put(ots, "t", key, v=1)
        a.run_until_idle()
        b.run_until_idle()
        before = client.describe_tunnel("t", "s")
        checkpoints = {cid: tuple(client.get_checkpoint(tunnel_id, a.client_id, cid)) for cid in a.sequences}
        checkpoints.update({cid: tuple(client.get_checkpoint(tunnel_id, b.client_id, cid)) for cid in b.sequences})
        client.close()

    clock.advance(10)
    with EmulatorServer(data_dir=str(tmp_path), clock=clock) as server:
        ots, client = ots_client(server), tunnel_client(server)
        after = client.describe_tunnel("t", "s")
        assert after.tunnel == before.tunnel
        assert [(c.channel_id, c.status, c.client_id) for c in after.channels] == [
            (c.channel_id, c.status, c.client_id) for c in before.channels]
        assert {cid: tuple(client.get_checkpoint(tunnel_id, a.client_id, cid)) for cid in checkpoints} == checkpoints
        # Leases survived: the same client ids keep their channels...
        for worker in (a, b):
            worker.client = client
            last_view = worker.history[-1]
            assert last_view and set(last_view.values()) <= {("OPEN", 1), ("OPEN", 4)}
            assert worker.heartbeat() == last_view
        # ...and resume from their checkpoints: only new data comes.
        put(ots, "t", "b2", v=2)
        put(ots, "t", "y2", v=2)
        a.records.clear()
        b.records.clear()
        a.run_until_idle()
        b.run_until_idle()
        assert sorted(r.key["id"] for w in (a, b) for r in w.all_records()) == ["b2", "y2"]
        # Leases still time out normally after the restart.
        clock.advance(20)
        b.heartbeat()
        clock.advance(11)
        b.heartbeat()
        with pytest.raises(ResourceGoneError):
            a.heartbeat()


@pytest.fixture
def far_clock_server():
    # The clock moves days ahead of the wall clock the clients sign with.
    clock = ManualClock()
    with EmulatorServer(clock=clock, max_date_skew_s=None) as server:
        make_table(server, "t", stream_columns=())  # 24 h retention
        yield server, clock, ots_client(server), tunnel_client(server)


def test_unconsumed_data_older_than_retention_is_skipped(far_clock_server):
    server, clock, ots, client = far_clock_server
    tunnel_id = client.create_tunnel("t", "s", "Stream")
    worker = Worker(client, tunnel_id, timeout_s=100 * HOUR)
    worker.heartbeat()
    put(ots, "t", "lost", v=1)
    clock.advance(25 * HOUR)
    put_direct(server, "t", "kept", v=2)
    worker.run_until_idle()
    assert [r.key["id"] for r in worker.all_records()] == ["kept"]


def test_base_and_stream_expires_when_full_phase_outlives_retention(far_clock_server):
    server, clock, ots, client = far_clock_server
    put(ots, "t", "row", v=1)
    tunnel_id = client.create_tunnel("t", "bs", "BaseAndStream")
    worker = Worker(client, tunnel_id, timeout_s=100 * HOUR)
    worker.heartbeat()
    (base,) = worker.open_channels()
    clock.advance(25 * HOUR)
    worker.drain(base)
    with pytest.raises(TunnelExpiredError, match="expired"):
        worker.heartbeat()
    described = client.describe_tunnel("t", "bs")
    assert described.tunnel.expired
    with pytest.raises(TunnelExpiredError):
        client.connect(tunnel_id, 60, "late")
    with pytest.raises(TunnelExpiredError):
        client.get_checkpoint(tunnel_id, worker.client_id, base)


def test_base_and_stream_within_retention_does_not_expire(far_clock_server):
    server, clock, ots, client = far_clock_server
    tunnel_id = client.create_tunnel("t", "bs", "BaseAndStream")
    worker = Worker(client, tunnel_id, timeout_s=100 * HOUR)
    worker.heartbeat()
    clock.advance(23 * HOUR)
    put_direct(server, "t", "late", v=1)
    worker.run_until_idle()
    assert not client.describe_tunnel("t", "bs").tunnel.expired
    assert [r.key["id"] for cid, rs in worker.records.items() if not cid.startswith("BaseData_") for r in rs] == [
        "late"]
