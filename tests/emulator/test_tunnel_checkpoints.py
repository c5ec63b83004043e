"""Checkpoints (fencing by sequence number, ownership, permissive mode), RPO
from DescribeTunnel and GetRpo, and Schedule - over TunnelClient."""

import pytest

from beam_tunnel.client import Channel, ChannelStatus
from beam_tunnel.errors import ParameterInvalidError, ResourceGoneError, SequenceNumberMismatchError
from beam_tunnel.emulator import EmulatorServer, ManualClock
from beam_tunnel.protocol import plainbuffer
from beam_tunnel.protocol.rows import INF_MIN
from beam_tunnel.protocol.tokens import decode_stream_iterator, decode_token

from tunnel_kit import Worker, make_table, ots_client, put, run_workers, status_of, tunnel_client

SECOND_NS = 1_000_000_000


@pytest.fixture
def env():
    clock = ManualClock()
    with EmulatorServer(clock=clock) as server:
        make_table(server, "t", stream_columns=())
        yield server, clock, ots_client(server), tunnel_client(server)


def _one_channel(client, tunnel_id):
    worker = Worker(client, tunnel_id)
    worker.heartbeat()
    (channel_id,) = worker.open_channels()
    return worker, channel_id


def test_initial_checkpoints_are_the_start_tokens_with_sequence_0(env):
    server, _, ots, client = env
    stream_tunnel = client.create_tunnel("t", "s", "Stream")
    base_tunnel = client.create_tunnel("t", "b", "BaseData")
    worker, channel_id = _one_channel(client, stream_tunnel)
    info = client.get_checkpoint(stream_tunnel, worker.client_id, channel_id)
    assert info.sequence_number == 0
    iterator = decode_stream_iterator(decode_token(info.checkpoint).iterator)
    assert iterator.shard_id == channel_id
    assert iterator.stream_id == server.backend.tables.describe_table("t").stream.stream_id
    worker, channel_id = _one_channel(client, base_tunnel)
    assert channel_id.startswith("BaseData_")
    info = client.get_checkpoint(base_tunnel, worker.client_id, channel_id)
    assert info.sequence_number == 0
    assert plainbuffer.decode_row(decode_token(info.checkpoint).primary_key).primary_key == (("id", INF_MIN),)


def test_checkpoint_fencing(env):
    server, _, ots, client = env
    tunnel_id = client.create_tunnel("t", "s", "Stream")
    worker, channel_id = _one_channel(client, tunnel_id)
    put(ots, "t", "k", v=1)
    start = client.get_checkpoint(tunnel_id, worker.client_id, channel_id).checkpoint
    token = client.read_records(tunnel_id, worker.client_id, channel_id, start).next_token
    with pytest.raises(SequenceNumberMismatchError, match="must be 1, got 2"):
        client.checkpoint(tunnel_id, worker.client_id, channel_id, token, 2)
    client.checkpoint(tunnel_id, worker.client_id, channel_id, token, 1)
    with pytest.raises(SequenceNumberMismatchError, match="must be 2, got 1"):
        client.checkpoint(tunnel_id, worker.client_id, channel_id, start, 1)
    assert tuple(client.get_checkpoint(tunnel_id, worker.client_id, channel_id)) == (token, 1)
    client.checkpoint(tunnel_id, worker.client_id, channel_id, "finished", 2)
    assert tuple(client.get_checkpoint(tunnel_id, worker.client_id, channel_id)) == ("finished", 2)


def test_only_the_owner_may_read_or_checkpoint(env):
    server, _, ots, client = env
    tunnel_id = client.create_tunnel("t", "s", "Stream")
    owner, channel_id = _one_channel(client, tunnel_id)
    other = Worker(client, tunnel_id, tag="other")
    token = client.get_checkpoint(tunnel_id, other.client_id, channel_id).checkpoint  # reading is fine
    with pytest.raises(ResourceGoneError, match="not held by client"):
        client.read_records(tunnel_id, other.client_id, channel_id, token)
    with pytest.raises(ResourceGoneError, match="not held by client"):
        client.checkpoint(tunnel_id, other.client_id, channel_id, token, 1)
    # The owner's sequence is untouched by the refused attempt.
    client.checkpoint(tunnel_id, owner.client_id, channel_id, token, 1)


def test_checkpoint_tokens_must_fit_the_channel(env):
    server, _, ots, client = env
    make_table(server, "u", split_points=("m",), stream_columns=())
    tunnel_id = client.create_tunnel("u", "s", "Stream")
    worker = Worker(client, tunnel_id)
    worker.heartbeat()
    first, second = worker.open_channels()
    other_token = client.get_checkpoint(tunnel_id, worker.client_id, second).checkpoint
    with pytest.raises(ParameterInvalidError, match="belongs to shard"):
        client.checkpoint(tunnel_id, worker.client_id, first, other_token, 1)
    with pytest.raises(ParameterInvalidError, match="not a valid token"):
        client.checkpoint(tunnel_id, worker.client_id, first, "garbage!", 1)
    with pytest.raises(ParameterInvalidError, match="belongs to shard"):
        client.read_records(tunnel_id, worker.client_id, first, other_token)


def test_permissive_mode_accepts_unleased_clients_and_sequence_zero():
    with EmulatorServer(clock=ManualClock(), tunnel_permissive=True) as server:
        make_table(server, "t", stream_columns=())
        ots, client = ots_client(server), tunnel_client(server)
        tunnel_id = client.create_tunnel("t", "s", "Stream")
        put(ots, "t", "k", v=1)
        channel_id = client.describe_tunnel("t", "s").channels[0].channel_id
        token = client.get_checkpoint(tunnel_id, "spark-client", channel_id).checkpoint
        result = client.read_records(tunnel_id, "spark-client", channel_id, token)
        assert [r.key["id"] for r in result.records] == ["k"]
        client.checkpoint(tunnel_id, "spark-client", channel_id, result.next_token, 0)
        client.checkpoint(tunnel_id, "spark-client", channel_id, result.next_token, 0)
        assert tuple(client.get_checkpoint(tunnel_id, "x", channel_id)) == (result.next_token, 0)
        with pytest.raises(SequenceNumberMismatchError):
            client.checkpoint(tunnel_id, "spark-client", channel_id, result.next_token, 5)


def test_rpo_follows_checkpoints(env):
    server, clock, ots, client = env
    tunnel_id = client.create_tunnel("t", "s", "Stream")
    created_ns = client.describe_tunnel("t", "s").tunnel.create_time_ns
    worker, channel_id = _one_channel(client, tunnel_id)
    # Nothing written: caught up, the consume point is "now".
    described = client.describe_tunnel("t", "s")
    assert described.channels[0].rpo_ns == clock.now_us() * 1000 == described.tunnel_rpo_ns
    clock.advance(1)
    put(ots, "t", "k1", v=1)
    t1_ns = clock.now_us() * 1000
    clock.advance(1)
    put(ots, "t", "k2", v=2)
    t2_ns = clock.now_us() * 1000
    clock.advance(5)
    # Behind: complete through the first record after the checkpoint.
    described = client.describe_tunnel("t", "s")
    assert described.channels[0].rpo_ns == t1_ns == described.tunnel_rpo_ns > created_ns
    start = client.get_checkpoint(tunnel_id, worker.client_id, channel_id).checkpoint
    first = client.read_records(tunnel_id, worker.client_id, channel_id, start)
    assert len(first.records) == 2
    # Read but not checkpointed: GetRpo still shows the old point, by offset the new one.
    rpo = client.get_rpo(tunnel_id)
    assert rpo.rpo_infos[tunnel_id][channel_id]["RpoTime"] == t1_ns
    by_offset = client.get_rpo_by_offset(tunnel_id)
    assert by_offset.rpo_infos[tunnel_id][channel_id]["RpoTime"] == clock.now_us() * 1000
    assert by_offset.rpo_infos[tunnel_id][channel_id]["AccessTime"] == clock.now_us() * 1000
    # A checkpoint after the first record only: the second record's write time.
    one = client.read_records(tunnel_id, worker.client_id, channel_id, start)
    partial = _token_after_first(one)
    client.checkpoint(tunnel_id, worker.client_id, channel_id, partial, 1)
    assert client.describe_tunnel("t", "s").channels[0].rpo_ns == t2_ns
    client.checkpoint(tunnel_id, worker.client_id, channel_id, first.next_token, 2)
    described = client.describe_tunnel("t", "s")
    assert described.channels[0].rpo_ns == clock.now_us() * 1000
    assert described.channels[0].count == 2
    rpo = client.get_rpo(tunnel_id)
    assert rpo.rpo_infos[tunnel_id][channel_id] == {
        "ChannelTyp": "Stream", "Status": "OPEN", "TotalCount": 2,
        "AccessTime": clock.now_us() * 1000, "RpoTime": clock.now_us() * 1000,
    }
    assert rpo.tunnel_rpo_infos[tunnel_id]["RpoTime"] == clock.now_us() * 1000
    assert rpo.tunnel_rpo_infos[tunnel_id]["Status"] == "ProcessStream"


def _token_after_first(result):
    """A token positioned after the first record of ``result``, built the
    way the service builds them (the test knows the format)."""
    from beam_tunnel.protocol.tokens import StreamIterator, TokenContent, encode_stream_iterator, encode_token

    content = decode_token(result.next_token)
    iterator = decode_stream_iterator(content.iterator)
    moved = iterator._replace(position=result.records[0].sequence)
    return encode_token(TokenContent(iterator=encode_stream_iterator(StreamIterator(*moved)), total_count=1))


def test_tunnel_rpo_is_the_slowest_unfinished_channel(env):
    server, clock, ots, client = env
    make_table(server, "u", split_points=("m",))
    put(ots, "u", "a", v=1)
    tunnel_id = client.create_tunnel("u", "bs", "BaseAndStream")
    described = client.describe_tunnel("u", "bs")
    created_ns = described.tunnel.create_time_ns
    base = [c for c in described.channels if c.channel_id.startswith("BaseData_")]
    assert [c.rpo_ns for c in base] == [created_ns, created_ns]
    clock.advance(2)
    put(ots, "u", "b", v=1)  # only the low stream channel falls behind
    written_ns = clock.now_us() * 1000
    clock.advance(1)
    described = client.describe_tunnel("u", "bs")
    stream = {c.channel_id: c.rpo_ns for c in described.channels if not c.channel_id.startswith("BaseData_")}
    low, high = sorted(stream)
    assert stream[high] == clock.now_us() * 1000
    assert created_ns < stream[low] == written_ns < stream[high]
    # The full-data channels are unfinished: they hold the tunnel back.
    assert described.tunnel_rpo_ns == created_ns
    slowest = client.get_rpo(tunnel_id, limit=3).rpo_infos[tunnel_id]
    assert slowest.keys() == {c.channel_id for c in base} | {low}


def test_schedule_suspend_resume_terminate(env):
    server, _, ots, client = env
    tunnel_id = client.create_tunnel("t", "s", "Stream")
    worker, channel_id = _one_channel(client, tunnel_id)
    client.schedule(tunnel_id, {channel_id: "CLOSING"})
    assert worker.heartbeat() == {channel_id: ("CLOSING", 2)}
    assert worker.heartbeat() == {}  # answered CLOSE 3; suspended, so not reassigned
    assert status_of(client.describe_tunnel("t", "s"), channel_id) == ChannelStatus.CLOSE
    client.schedule(tunnel_id, {channel_id: "OPEN"})
    assert worker.heartbeat() == {channel_id: ("OPEN", 4)}
    client.schedule(tunnel_id, {channel_id: "TERMINATED"})
    assert worker.heartbeat() == {channel_id: ("TERMINATED", 5)}
    assert status_of(client.describe_tunnel("t", "s"), channel_id) == ChannelStatus.TERMINATED
    with pytest.raises(ParameterInvalidError, match="cannot be OPEN"):
        client.schedule(tunnel_id, {channel_id: "OPEN"})
    with pytest.raises(ParameterInvalidError, match="does not exist"):
        client.schedule(tunnel_id, {"nope": "OPEN"})


def test_two_workers_reading_with_checkpoints_see_each_record_once(env):
    server, _, ots, client = env
    make_table(server, "u", split_points=("g", "p"), stream_columns=())
    tunnel_id = client.create_tunnel("u", "s", "Stream")
    a = Worker(client, tunnel_id, tag="a")
    a.run_until_idle()
    keys = [f"{c}{i}" for i in range(5) for c in "bhqx"]
    for key in keys[:10]:
        put(ots, "u", key, v=1)
    a.run_until_idle()
    b = Worker(client, tunnel_id, tag="b")
    for key in keys[10:]:
        put(ots, "u", key, v=2)
    run_workers([a, b])
    got = sorted(r.key["id"] for w in (a, b) for r in w.all_records())
    assert got == sorted(keys)
    assert b.all_records()  # b took over channels and resumed from a's checkpoints


def test_checkpoint_finished_ends_the_channel_at_once(env):
    server, _, ots, client = env
    put(ots, "t", "row", v=1)
    tunnel_id = client.create_tunnel("t", "bs", "BaseAndStream")
    worker, base = _one_channel(client, tunnel_id)
    token = client.get_checkpoint(tunnel_id, worker.client_id, base).checkpoint
    result = client.read_records(tunnel_id, worker.client_id, base, token)
    assert result.finished and [r.key["id"] for r in result.records] == ["row"]
    client.checkpoint(tunnel_id, worker.client_id, base, "finished", 1)
    described = client.describe_tunnel("t", "bs")
    assert status_of(described, base) == ChannelStatus.TERMINATED
    assert str(described.tunnel.stage) == "ProcessStream"
    assert described.channels[0].count == 1
    # The owner hears TERMINATED v+1 - what it would report itself - and acknowledges.
    answer = client.heartbeat(tunnel_id, worker.client_id, [Channel(base, 1, ChannelStatus.OPEN)])
    assert (base, 2, ChannelStatus.TERMINATED) in {(c.channel_id, c.version, c.status) for c in answer}
    answer = client.heartbeat(tunnel_id, worker.client_id, [Channel(base, 2, ChannelStatus.TERMINATED)])
    assert base not in {c.channel_id for c in answer}
    assert {c.channel_id for c in answer} == {c.channel_id for c in described.channels} - {base}
    # A late commit of the same end is fine; moving a finished channel back is not.
    client.checkpoint(tunnel_id, worker.client_id, base, "finished", 2)
    with pytest.raises(ResourceGoneError, match="TERMINATED"):
        client.checkpoint(tunnel_id, worker.client_id, base, token, 3)
