"""Consume points (DescribeTunnel channel_rpo / tunnel_rpo, GetRpo RpoTime):
"complete through T", one monotonic rule (model/rpo.py), over TunnelClient
with a ManualClock."""

import pytest

from beam_tunnel.emulator import EmulatorServer, ManualClock
from beam_tunnel.emulator.model.timeline import Timeline

from tunnel_kit import Worker, make_table, put_direct, tunnel_client

US = 1_000
SECOND_US = 1_000_000


@pytest.fixture
def env(tmp_path):
    clock = ManualClock()
    with EmulatorServer(clock=clock, data_dir=str(tmp_path), max_date_skew_s=None) as server:
        make_table(server, "t", stream_columns=())
        yield server, clock, tunnel_client(server)


def _points(client, tunnel="s"):
    described = client.describe_tunnel("t", tunnel)
    return {c.channel_id: c.rpo_ns for c in described.channels}, described.tunnel_rpo_ns


def _now_ns(clock):
    return clock.now_us() * US


def _stream_worker(client, tunnel_id):
    worker = Worker(client, tunnel_id)
    worker.heartbeat()
    (channel_id,) = worker.open_channels()
    return worker, channel_id


def test_caught_up_point_follows_the_clock_and_never_jumps_back(env):
    server, clock, client = env
    tunnel_id = client.create_tunnel("t", "s", "Stream")
    worker, channel_id = _stream_worker(client, tunnel_id)
    points, tunnel_point = _points(client)
    assert points == {channel_id: _now_ns(clock)} and tunnel_point == _now_ns(clock)
    clock.advance(3)
    seen = [_points(client)[0][channel_id]]
    assert seen[-1] == _now_ns(clock)
    # New data lands: the point stays at the record's write time, which is
    # not before the "now" already reported.
    put_direct(server, "t", "k1", v=1)
    written_ns = _now_ns(clock)
    clock.advance(2)
    seen.append(_points(client)[0][channel_id])
    assert seen[-1] == written_ns >= seen[0]
    # Read and checkpoint past it: caught up again, the point is now.
    assert worker.drain(channel_id) == 1
    seen.append(_points(client)[0][channel_id])
    assert seen[-1] == _now_ns(clock)
    assert seen == sorted(seen)


def test_checkpoint_moves_the_point_to_the_next_record(env):
    server, clock, client = env
    tunnel_id = client.create_tunnel("t", "s", "Stream")
    worker, channel_id = _stream_worker(client, tunnel_id)
    times = []
    for key in ("a", "b", "c"):
        clock.advance(1)
        put_direct(server, "t", key, v=1)
        times.append(_now_ns(clock))
    clock.advance(10)
    points, tunnel_point = _points(client)
    # Before any checkpoint: from the start position, the first record.
    assert points[channel_id] == tunnel_point == times[0]
    start = client.get_checkpoint(tunnel_id, worker.client_id, channel_id).checkpoint
    read = client.read_records(tunnel_id, worker.client_id, channel_id, start)
    assert [r.key["id"] for r in read.records] == ["a", "b", "c"]
    # Read but not committed: DescribeTunnel and GetRpo measure checkpoints.
    assert _points(client)[0][channel_id] == times[0]
    assert client.get_rpo(tunnel_id).rpo_infos[tunnel_id][channel_id]["RpoTime"] == times[0]
    # GetRpoByOffset measures the last read: caught up, now.
    assert client.get_rpo_by_offset(tunnel_id).rpo_infos[tunnel_id][channel_id]["RpoTime"] == _now_ns(clock)
    client.checkpoint(tunnel_id, worker.client_id, channel_id, _token_after(read, 0), 1)
    assert _points(client)[0][channel_id] == times[1]
    client.checkpoint(tunnel_id, worker.client_id, channel_id, _token_after(read, 1), 2)
    assert _points(client)[0][channel_id] == times[2]
    rpo = client.get_rpo(tunnel_id)
    assert rpo.rpo_infos[tunnel_id][channel_id]["RpoTime"] == times[2]
    assert rpo.tunnel_rpo_infos[tunnel_id]["RpoTime"] == times[2]
    client.checkpoint(tunnel_id, worker.client_id, channel_id, read.next_token, 3)
    assert _points(client) == ({channel_id: _now_ns(clock)}, _now_ns(clock))


def _token_after(result, index):
    """A token positioned after record ``index`` of ``result``, built the way
    the service builds them (the test knows the format)."""
    from beam_tunnel.protocol.tokens import (
        StreamIterator, TokenContent, decode_stream_iterator, decode_token, encode_stream_iterator, encode_token,
    )

    iterator = decode_stream_iterator(decode_token(result.next_token).iterator)
    moved = StreamIterator(iterator.stream_id, iterator.shard_id, result.records[index].sequence)
    return encode_token(TokenContent(iterator=encode_stream_iterator(moved), total_count=index + 1))


def test_full_data_channels_report_the_creation_time_until_finished(env):
    server, clock, client = env
    make_table(server, "t2", split_points=("m",))
    put_direct(server, "t2", "a", v=1)
    put_direct(server, "t2", "z", v=1)
    clock.advance(1)
    tunnel_id = client.create_tunnel("t2", "b", "BaseData")
    created_ns = client.describe_tunnel("t2", "b").tunnel.create_time_ns
    clock.advance(30)
    described = client.describe_tunnel("t2", "b")
    assert [c.rpo_ns for c in described.channels] == [created_ns, created_ns]
    assert described.tunnel_rpo_ns == created_ns
    worker = Worker(client, tunnel_id)
    worker.heartbeat()
    low = worker.open_channels()[0]
    worker.drain(low)  # finishes the low range only
    clock.advance(5)
    described = client.describe_tunnel("t2", "b")
    points = {c.channel_id: c.rpo_ns for c in described.channels}
    assert points[low] == _now_ns(clock)  # finished: lag 0
    assert described.tunnel_rpo_ns == created_ns  # the other one is not
    worker.run_until_idle()
    clock.advance(5)
    described = client.describe_tunnel("t2", "b")
    assert [c.rpo_ns for c in described.channels] == [_now_ns(clock)] * 2
    assert described.tunnel_rpo_ns == _now_ns(clock)
    rpo = client.get_rpo(tunnel_id)
    assert rpo.tunnel_rpo_infos[tunnel_id]["RpoTime"] == _now_ns(clock)


def test_base_and_stream_tunnel_point_is_the_minimum_of_unfinished_channels(env):
    server, clock, client = env
    make_table(server, "u", split_points=("m",), stream_columns=())
    put_direct(server, "u", "a", v=1)
    clock.advance(1)
    tunnel_id = client.create_tunnel("u", "bs", "BaseAndStream")
    created_ns = client.describe_tunnel("u", "bs").tunnel.create_time_ns
    clock.advance(2)
    put_direct(server, "u", "b", v=2)  # after creation: low stream channel has a record
    low_write_ns = _now_ns(clock)
    clock.advance(2)
    described = client.describe_tunnel("u", "bs")
    points = {c.channel_id: c.rpo_ns for c in described.channels}
    base = sorted(cid for cid in points if cid.startswith("BaseData_"))
    stream = sorted(cid for cid in points if not cid.startswith("BaseData_"))
    assert [points[cid] for cid in base] == [created_ns, created_ns]
    # WAIT stream channels follow the stream rule from their start position.
    assert [points[cid] for cid in stream] == [low_write_ns, _now_ns(clock)]
    assert described.tunnel_rpo_ns == created_ns
    # Once the full phase is done, the tunnel point is the slow stream channel's.
    worker = Worker(client, tunnel_id)
    for _ in range(4):
        worker.step()
    described = client.describe_tunnel("u", "bs")
    assert described.tunnel.stage == "ProcessStream"
    points = {c.channel_id: c.rpo_ns for c in described.channels}
    assert [points[cid] for cid in base] == [_now_ns(clock)] * 2
    assert described.tunnel_rpo_ns == min(points[cid] for cid in stream) == _now_ns(clock)


def test_points_are_derived_from_persisted_state_across_a_restart(tmp_path):
    clock = ManualClock()
    with EmulatorServer(clock=clock, data_dir=str(tmp_path), max_date_skew_s=None) as server:
        make_table(server, "t", stream_columns=())
        client = tunnel_client(server)
        tunnel_id = client.create_tunnel("t", "s", "Stream")
        worker, channel_id = _stream_worker(client, tunnel_id)
        clock.advance(1)
        put_direct(server, "t", "a", v=1)
        first_ns = _now_ns(clock)
        clock.advance(1)
        put_direct(server, "t", "b", v=1)
        client.create_tunnel("t", "caught-up", "Stream")  # LATEST: after both records
        clock.advance(5)
        assert _points(client)[0][channel_id] == first_ns
        caught_up_before = _points(client, "caught-up")[1]
    clock.advance(1)
    with EmulatorServer(clock=clock, data_dir=str(tmp_path), max_date_skew_s=None) as server:
        client = tunnel_client(server)
        assert _points(client)[0][channel_id] == first_ns
        assert _points(client, "caught-up")[1] == _now_ns(clock) > caught_up_before


def test_timeline_promises_hold_against_a_write_in_flight():
    clock = ManualClock(start_us=10 * SECOND_US)
    timeline = Timeline(clock, last_write_us=0)
    assert timeline.complete_through_us() == 10 * SECOND_US
    clock.advance(1)
    write_us = timeline.begin_write()
    clock.advance(1)
    # Not committed yet: a snapshot would miss it, so "now" stops at its time.
    assert timeline.complete_through_us() == write_us == 11 * SECOND_US
    timeline.end_write(write_us)
    assert timeline.complete_through_us() == 12 * SECOND_US
    # The clock steps back: neither the promise nor write times follow it.
    clock.set(5 * SECOND_US)
    assert timeline.complete_through_us() == 12 * SECOND_US
    assert timeline.begin_write() == 12 * SECOND_US
