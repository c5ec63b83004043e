"""TunnelWorker against the emulator over loopback: full, incremental and
full-then-incremental tunnels are read completely and in per-channel order;
a gracefully stopped worker resumes from its checkpoints without repeats;
back-pressure bounds read-ahead; max_channel_parallelism bounds callbacks."""

import threading
import time

from beam_tunnel.client import ChannelStatus, TunnelClient
from beam_tunnel.worker import ChannelProcessor, TunnelWorker, WorkerConfig

from worker_kit import (
    FAST,
    Ledger,
    active_channels,
    check_channel_runs,
    make_table,
    spread_keys,
    tunnel_client,
    wait_for,
    write_rows,
)


def _all_terminated(client, table, tunnel):
    channels = client.describe_tunnel(table, tunnel).channels
    return channels and all(c.status is ChannelStatus.TERMINATED for c in channels)


def test_full_data_tunnel_is_read_completely_once_in_key_order(server):
    partitions = make_table(server, "t", partitions=3, stream=False)
    written = write_rows(server, "t", spread_keys(300))
    client = tunnel_client(server)
    tunnel_id = client.create_tunnel("t", "full", "BaseData")
    ledger = Ledger()
    with TunnelWorker(client, tunnel_id, ledger.processor("w"), FAST):
        wait_for(lambda: _all_terminated(client, "t", "full"), "every channel TERMINATED")
    assert sorted(ledger.idents()) == sorted(written)
    by_channel = ledger.by_channel()
    assert len(by_channel) == len(partitions) == 3
    for deliveries in by_channel.values():
        keys = [d.ident[0] for d in deliveries]
        assert keys == sorted(keys)
        assert all(d.sequence is None for d in deliveries)


def test_stream_tunnel_delivers_every_write_once_in_log_order(server):
    make_table(server, "t", partitions=2)
    client = tunnel_client(server)
    tunnel_id = client.create_tunnel("t", "inc", "Stream")
    ledger = Ledger()
    written = []
    with TunnelWorker(client, tunnel_id, ledger.processor("w"), FAST) as worker:
        wait_for(lambda: len(active_channels(worker)) == 2, "both channels open")
        for round_ in range(5):
            written += write_rows(server, "t", spread_keys(40, f"r{round_}"))
        wait_for(lambda: ledger.has_all(written), "every write delivered")
    assert sorted(ledger.idents()) == sorted(written)
    for deliveries in ledger.by_channel().values():
        sequences = [d.sequence for d in deliveries]
        assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)


def test_full_then_incremental_delivers_base_before_stream(server):
    make_table(server, "t", partitions=2)
    base = write_rows(server, "t", spread_keys(120, "base"))
    client = tunnel_client(server)
    tunnel_id = client.create_tunnel("t", "both", "BaseAndStream")
    # Written after the tunnel exists: in the stream part (and in the full
    # scan too, if the scan reaches the row after it was written).
    changes = write_rows(server, "t", spread_keys(80, "inc"))
    ledger = Ledger()
    with TunnelWorker(client, tunnel_id, ledger.processor("w"), FAST):
        wait_for(lambda: ledger.has_all(base + changes), "full data and changes delivered")
        more = write_rows(server, "t", spread_keys(40, "more"))
        wait_for(lambda: ledger.has_all(more), "later changes delivered")
    deliveries = ledger.deliveries
    full = [i for i, d in enumerate(deliveries) if d.sequence is None]
    stream = [i for i, d in enumerate(deliveries) if d.sequence is not None]
    assert max(full) < min(stream), "a change was delivered before the full data ended"
    full_idents = [deliveries[i].ident for i in full]
    stream_idents = [deliveries[i].ident for i in stream]
    assert sorted(stream_idents) == sorted(changes + more)
    assert set(base) <= set(full_idents) <= set(base + changes)
    assert len(full_idents) == len(set(full_idents))
    for deliveries_ in ledger.by_channel().values():
        assert check_channel_runs(deliveries_) == 0


def test_stopped_worker_resumes_from_its_checkpoints(server):
    make_table(server, "t", partitions=2)
    client = tunnel_client(server)
    tunnel_id = client.create_tunnel("t", "inc", "Stream")
    first, second = Ledger(), Ledger()
    before = write_rows(server, "t", spread_keys(100, "one"))
    with TunnelWorker(client, tunnel_id, first.processor("first"), FAST):
        wait_for(lambda: first.has_all(before), "first batch of writes delivered")
    # Graceful stop checkpointed everything acknowledged: nothing repeats.
    after = write_rows(server, "t", spread_keys(100, "two"))
    with TunnelWorker(client, tunnel_id, second.processor("second"), FAST):
        wait_for(lambda: second.has_all(after), "second batch of writes delivered")
    assert sorted(first.idents()) == sorted(before)
    assert sorted(second.idents()) == sorted(after)


class _CountingClient(TunnelClient):
    """A real TunnelClient that counts its ReadRecords calls (when they
    start) and notes the channels that had one answered."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reads = 0
        self.channels_read = set()

    def read_records(self, tunnel_id, client_id, channel_id, token):
        self.reads += 1
        result = super().read_records(tunnel_id, client_id, channel_id, token)
        self.channels_read.add(channel_id)
        return result


class _Gate(ChannelProcessor):
    """Blocks the first batch until released; counts concurrent callbacks."""

    def __init__(self):
        self.entered = threading.Event()
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.running = self.most = self.records = 0

    def process(self, records, context):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        self.entered.set()
        self.release.wait()
        time.sleep(0.001)
        with self.lock:
            self.running -= 1
            self.records += len(records)


def test_slow_callback_bounds_read_ahead(server):
    make_table(server, "t", partitions=1, stream=False)
    write_rows(server, "t", spread_keys(250))  # 10 batches of 25
    client = _CountingClient(server.endpoint, server.instance_name, server.access_key_id, server.access_key_secret)
    tunnel_id = client.create_tunnel("t", "full", "BaseData")
    gate = _Gate()
    config = WorkerConfig(heartbeat_interval_s=0.2, heartbeat_timeout_s=2, max_queued_batches=2)
    with TunnelWorker(client, tunnel_id, gate, config):
        assert gate.entered.wait(30), "no batch was delivered"
        # One batch in the callback, two queued, one read and waiting for room.
        wait_for(lambda: client.reads == 4, "the fetch loop to fill its queue")
        time.sleep(0.3)
        assert client.reads == 4
        gate.release.set()
        wait_for(lambda: gate.records == 250, "every record")


def test_max_channel_parallelism_bounds_concurrent_callbacks(server):
    make_table(server, "t", partitions=4, stream=False)
    write_rows(server, "t", spread_keys(200))
    client = _CountingClient(server.endpoint, server.instance_name, server.access_key_id, server.access_key_secret)
    tunnel_id = client.create_tunnel("t", "full", "BaseData")
    gate = _Gate()
    config = WorkerConfig(heartbeat_interval_s=0.2, heartbeat_timeout_s=2, max_channel_parallelism=1)
    with TunnelWorker(client, tunnel_id, gate, config):
        assert gate.entered.wait(30), "no batch was delivered"
        # One callback is held; every other channel now gets a batch in hand
        # and must wait for the slot. Were the limit broken, their callbacks
        # would enter (and be held too): give them time to, then let go.
        wait_for(lambda: len(client.channels_read) == 4, "a batch read on every channel")
        time.sleep(0.2)
        gate.release.set()
        wait_for(lambda: gate.records == 200, "every record")
    assert gate.most == 1
