"""Client leases and balancing over the wire: even spread, the CLOSING ->
CLOSE handshake with exact versions, heartbeat timeouts (ManualClock) and
Shutdown."""

import pytest

from beam_tunnel.client import Channel, ChannelStatus
from beam_tunnel.errors import ResourceGoneError
from beam_tunnel.emulator import EmulatorServer, ManualClock

from tunnel_kit import Worker, make_table, ots_client, put, run_workers, tunnel_client


@pytest.fixture
def env():
    clock = ManualClock()
    with EmulatorServer(clock=clock) as server:
        client = tunnel_client(server)
        make_table(server, "t", split_points=("e", "j", "p"), stream_columns=())
        tunnel_id = client.create_tunnel("t", "tun", "Stream")
        yield server, clock, client, tunnel_id


def _owners(client):
    return {c.channel_id: c.client_id for c in client.describe_tunnel("t", "tun").channels}


def test_two_clients_share_evenly_and_a_channel_moves_only_after_close(env):
    server, _, client, tunnel_id = env
    a = Worker(client, tunnel_id, tag="a")
    first = a.heartbeat()
    assert sorted(first.values()) == [("OPEN", 1)] * 4
    b = Worker(client, tunnel_id, tag="b")
    assert b.heartbeat() == {}
    # a is asked to give back its two highest channels and keeps them until
    # it answers; b gets nothing meanwhile.
    second = a.heartbeat()
    moving = sorted(cid for cid, view in second.items() if view == ("CLOSING", 2))
    assert len(moving) == 2 and moving == sorted(first)[2:]
    assert b.heartbeat() == {}
    assert {cid: owner for cid, owner in _owners(client).items() if cid in moving} == {
        cid: a.client_id for cid in moving}
    # a answers CLOSE 3 (its worker did that on seeing CLOSING); the channels
    # leave a and reach b as OPEN 4.
    third = a.heartbeat()
    assert sorted(third) == sorted(first)[:2]
    assert b.heartbeat() == {cid: ("OPEN", 4) for cid in moving}
    # The exact version history of one moved channel, as both clients saw it.
    cid = moving[0]
    seen = [h[cid] for h in a.history if cid in h] + [h[cid] for h in b.history if cid in h]
    assert seen == [("OPEN", 1), ("CLOSING", 2), ("OPEN", 4)]
    # Stable: more heartbeats move nothing.
    assert a.heartbeat() == third and b.heartbeat() == {cid: ("OPEN", 4) for cid in moving}


def test_three_clients_get_two_one_one_and_reads_keep_working(env):
    server, _, client, tunnel_id = env
    ots = ots_client(server)
    workers = [Worker(client, tunnel_id, tag=tag) for tag in "abc"]
    run_workers(workers)
    assert sorted(len(w.open_channels()) for w in workers) == [1, 1, 2]
    for key in ("a1", "f1", "k1", "q1", "b2", "z2"):
        put(ots, "t", key, v=1)
    run_workers(workers)
    assert sorted(r.key["id"] for w in workers for r in w.all_records()) == ["a1", "b2", "f1", "k1", "q1", "z2"]


def test_dead_client_channels_move_after_its_timeout(env):
    server, clock, client, tunnel_id = env
    a = Worker(client, tunnel_id, timeout_s=10, tag="a")
    b = Worker(client, tunnel_id, timeout_s=10, tag="b")
    run_workers([a, b])
    held_by_a, held_by_b = a.open_channels(), b.open_channels()
    assert len(held_by_a) == 2
    clock.advance(6)
    b.heartbeat()
    clock.advance(5)  # a silent for 11 s > 10 s; b heard from 5 s ago
    view = b.heartbeat()
    assert sorted(view) == sorted(held_by_a + held_by_b)
    assert all(view[cid] == ("OPEN", 3) for cid in held_by_a)  # OPEN 1 -> CLOSE 2 (lease end) -> OPEN 3
    with pytest.raises(ResourceGoneError, match="heartbeat timeout"):
        a.heartbeat()
    with pytest.raises(ResourceGoneError):
        client.read_records(tunnel_id, a.client_id, held_by_a[0], "finished")
    with pytest.raises(ResourceGoneError):
        client.get_checkpoint(tunnel_id, a.client_id, held_by_a[0])


def test_lease_lapse_is_seen_even_before_anyone_heartbeats(env):
    server, clock, client, tunnel_id = env
    a = Worker(client, tunnel_id, timeout_s=5)
    a.heartbeat()
    channel_id = a.open_channels()[0]
    clock.advance(6)
    with pytest.raises(ResourceGoneError):
        client.checkpoint(tunnel_id, a.client_id, channel_id, "finished", 1)
    described = client.describe_tunnel("t", "tun")
    assert {c.client_id for c in described.channels} == {""}
    assert {c.status for c in described.channels} == {ChannelStatus.CLOSE}


def test_shutdown_releases_at_once(env):
    server, _, client, tunnel_id = env
    a = Worker(client, tunnel_id, tag="a")
    b = Worker(client, tunnel_id, tag="b")
    run_workers([a, b])
    assert len(b.open_channels()) == 2
    client.shutdown(tunnel_id, a.client_id)
    assert sorted(b.heartbeat().values()) == [("OPEN", 1)] * 2 + [("OPEN", 3)] * 2
    with pytest.raises(ResourceGoneError, match="shutdown"):
        client.heartbeat(tunnel_id, a.client_id, [])
    with pytest.raises(ResourceGoneError):
        client.shutdown(tunnel_id, a.client_id)


def test_failed_channel_reported_close_is_reopened_with_higher_version(env):
    server, _, client, tunnel_id = env
    a = Worker(client, tunnel_id)
    a.heartbeat()
    cid = a.open_channels()[0]
    # The read loop failed: report CLOSE v+1; the service hands it back as OPEN v+2.
    a.channels[cid] = Channel(cid, 2, ChannelStatus.CLOSE)
    assert a.heartbeat()[cid] == ("OPEN", 3)


def test_stale_reports_are_ignored(env):
    server, _, client, tunnel_id = env
    a = Worker(client, tunnel_id, tag="a")
    b = Worker(client, tunnel_id, tag="b")
    a.heartbeat()
    cid = sorted(a.channels)[0]
    # b claims a channel it does not hold, at a higher version: nothing changes.
    answer = client.heartbeat(tunnel_id, b.client_id, [Channel(cid, 9, ChannelStatus.CLOSE)])
    assert cid not in {c.channel_id for c in answer}
    assert _owners(client)[cid] == a.client_id
    # a reports an old version of CLOSE: ignored.
    answer = client.heartbeat(tunnel_id, a.client_id, [Channel(cid, 0, ChannelStatus.CLOSE)])
    assert (cid, 1, ChannelStatus.OPEN) in {(c.channel_id, c.version, c.status) for c in answer}
