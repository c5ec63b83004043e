"""Final checkpoints right after ShutdownTunnel (the Go worker flushes them
concurrently with its shutdown) are accepted for the channels the client
held, fenced by sequence number, until another client takes the channel or
the grace (dataplane.SHUTDOWN_GRACE_S) runs out."""

import pytest

from beam_tunnel.emulator import EmulatorServer, ManualClock
from beam_tunnel.emulator.model.dataplane import SHUTDOWN_GRACE_S
from beam_tunnel.errors import ResourceGoneError, SequenceNumberMismatchError

from tunnel_kit import Worker, make_table, put_direct, tunnel_client


@pytest.fixture
def env():
    clock = ManualClock()
    with EmulatorServer(clock=clock) as server:
        make_table(server, "t", split_points=("m",), stream_columns=())
        client = tunnel_client(server)
        tunnel_id = client.create_tunnel("t", "s", "Stream")
        for key in ("a", "b", "n", "o"):
            put_direct(server, "t", key, v=1)
        worker = Worker(client, tunnel_id, tag="old")
        worker.heartbeat()
        yield server, clock, client, tunnel_id, worker


def _read_uncommitted(client, tunnel_id, worker, channel_id):
    start = client.get_checkpoint(tunnel_id, worker.client_id, channel_id)
    result = client.read_records(tunnel_id, worker.client_id, channel_id, start.checkpoint)
    assert len(result.records) == 2
    return result.next_token, start.sequence_number + 1


def test_final_checkpoint_after_shutdown_is_kept_and_the_successor_resumes_there(env):
    server, clock, client, tunnel_id, old = env
    low, high = old.open_channels()
    token, sequence = _read_uncommitted(client, tunnel_id, old, low)
    client.shutdown(tunnel_id, old.client_id)
    clock.advance(2)
    with pytest.raises(SequenceNumberMismatchError):  # still fenced
        client.checkpoint(tunnel_id, old.client_id, low, token, sequence + 1)
    client.checkpoint(tunnel_id, old.client_id, low, token, sequence)
    # Shut down all the same: no reads, no heartbeats.
    with pytest.raises(ResourceGoneError, match="shutdown"):
        client.read_records(tunnel_id, old.client_id, low, token)
    with pytest.raises(ResourceGoneError, match="shutdown"):
        client.heartbeat(tunnel_id, old.client_id, [])
    new = Worker(client, tunnel_id, tag="new")
    new.run_until_idle()
    assert sorted(new.open_channels()) == [low, high]
    assert new.records[low] == []  # nothing read twice
    assert sorted(r.key["id"] for r in new.records[high]) == ["n", "o"]


def test_no_final_checkpoint_once_another_client_took_the_channel(env):
    server, clock, client, tunnel_id, old = env
    low, _ = old.open_channels()
    token, sequence = _read_uncommitted(client, tunnel_id, old, low)
    client.shutdown(tunnel_id, old.client_id)
    new = Worker(client, tunnel_id, tag="new")
    new.heartbeat()
    assert low in new.open_channels()
    with pytest.raises(ResourceGoneError, match="not held"):
        client.checkpoint(tunnel_id, old.client_id, low, token, sequence)


def test_no_final_checkpoint_after_the_grace(env):
    server, clock, client, tunnel_id, old = env
    low, _ = old.open_channels()
    token, sequence = _read_uncommitted(client, tunnel_id, old, low)
    client.shutdown(tunnel_id, old.client_id)
    clock.advance(SHUTDOWN_GRACE_S + 1)
    with pytest.raises(ResourceGoneError, match="shutdown"):
        client.checkpoint(tunnel_id, old.client_id, low, token, sequence)


def test_only_channels_held_at_shutdown(env):
    server, clock, client, tunnel_id, old = env
    low, high = old.open_channels()
    token, sequence = _read_uncommitted(client, tunnel_id, old, low)
    # The channel left the client before its shutdown: suspended, the
    # client answered CLOSE.
    client.schedule(tunnel_id, {low: "CLOSING"})
    old.heartbeat()
    old.heartbeat()
    assert low not in old.channels
    client.shutdown(tunnel_id, old.client_id)
    with pytest.raises(ResourceGoneError, match="not held"):
        client.checkpoint(tunnel_id, old.client_id, low, token, sequence)


def test_a_final_finished_checkpoint_terminates_the_channel(env):
    server, clock, client, tunnel_id, old = env
    low, _ = old.open_channels()
    server.admin.split_partition("t", low, "c")  # the parent's log is sealed: it can finish
    start = client.get_checkpoint(tunnel_id, old.client_id, low)
    result = client.read_records(tunnel_id, old.client_id, low, start.checkpoint)
    assert result.next_token == "finished"
    client.shutdown(tunnel_id, old.client_id)
    client.checkpoint(tunnel_id, old.client_id, low, "finished", start.sequence_number + 1)
    statuses = {c.channel_id: str(c.status) for c in client.describe_tunnel("t", "s").channels}
    assert statuses[low] == "TERMINATED"

