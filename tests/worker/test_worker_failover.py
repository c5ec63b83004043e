"""Several TunnelWorkers on one tunnel: the service spreads the channels
evenly; when one worker dies (threads stopped without checkpoint or
ShutdownTunnel) the others take its channels after the heartbeat timeout
and every acknowledged record still arrives - repeats only where the dead
worker had got past its last checkpoint, counted and reported. A split
partition's records are delivered parent first."""

import collections
import logging
import threading
import time

from beam_tunnel.worker import TunnelWorker

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

_LOGGER = logging.getLogger(__name__)


class _Writer:
    """Writes a few rows every few milliseconds until stopped."""

    def __init__(self, server, table):
        self.written = []
        self._server, self._table = server, table
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-writer", daemon=True)
        self._round = 0

    def __enter__(self):
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(0.01):
            self._round += 1
            self.written += write_rows(self._server, self._table, spread_keys(6, f"w{self._round}"))

    def stop(self):
        self._stop.set()
        self._thread.join()

    def __exit__(self, *exc):
        self.stop()


def _loads(workers):
    return sorted(len(active_channels(w)) for w in workers)


def test_three_workers_share_channels_evenly_and_survive_one_dying(server, record_property):
    make_table(server, "t", partitions=6)
    client = tunnel_client(server)
    tunnel_id = client.create_tunnel("t", "inc", "Stream")
    ledger = Ledger()
    workers = [TunnelWorker(client, tunnel_id, ledger.processor(f"w{i}"), FAST) for i in range(3)]
    for worker in workers:
        worker.start()
    try:
        wait_for(lambda: _loads(workers) == [2, 2, 2], "two channels per worker")
        owned = [set(active_channels(w)) for w in workers]
        assert len(set().union(*owned)) == 6
        with _Writer(server, "t") as writer:
            wait_for(
                lambda: {d.worker for d in ledger.deliveries} == {"w0", "w1", "w2"} and len(ledger.deliveries) > 200,
                "every worker delivering",
            )
            dead_channels = set(active_channels(workers[0]))
            workers[0].abort()
            dead_at = len(ledger.deliveries)
            wait_for(lambda: _loads(workers[1:]) == [3, 3], "the survivors holding all six channels")
            wait_for(lambda: len(ledger.deliveries) > dead_at + 200, "deliveries after the takeover")
        wait_for(lambda: ledger.has_all(writer.written), "every write delivered")
    finally:
        for worker in workers:
            worker.stop()

    first_by = {}
    for delivery in ledger.deliveries:
        first_by.setdefault(delivery.ident, delivery.worker)
    repeats = collections.Counter()
    for channel_id, deliveries in ledger.by_channel().items():
        repeats[channel_id] = check_channel_runs(deliveries)
    repeated = [ident for ident, count in collections.Counter(ledger.idents()).items() if count > 1]
    # Only what the dead worker acknowledged after its last checkpoint comes
    # again: channels handed over with CLOSING (the initial balancing) and
    # channels of the survivors repeat nothing.
    assert {first_by[ident] for ident in repeated} <= {"w0"}
    assert set(c for c, n in repeats.items() if n) <= dead_channels
    assert set(ledger.idents()) == set(writer.written)
    record_property("repeated_deliveries", sum(repeats.values()))
    _LOGGER.info("failover: %d writes, %d repeated deliveries %s", len(writer.written), sum(repeats.values()), dict(repeats))


def test_split_partition_is_read_parent_first(server):
    (parent,) = make_table(server, "t", partitions=1)
    client = tunnel_client(server)
    tunnel_id = client.create_tunnel("t", "inc", "Stream")
    ledger = Ledger()
    with TunnelWorker(client, tunnel_id, ledger.processor("w", delay_s=0.02), FAST) as worker:
        wait_for(lambda: active_channels(worker) == [parent], "the parent channel open")
        before = write_rows(server, "t", spread_keys(150, "before"))
        low, high = server.backend.tunnels.split_partition("t", parent, "m")
        after = write_rows(server, "t", spread_keys(150, "after"))
        wait_for(lambda: ledger.has_all(before + after), "every write delivered")
    by_channel = ledger.by_channel()
    assert sorted(d.ident for d in by_channel[parent]) == sorted(before)
    assert sorted(d.ident for d in by_channel[low] + by_channel[high]) == sorted(after)
    assert all(key < "m" for key, _ in (d.ident for d in by_channel[low]))
    last_parent = max(i for i, d in enumerate(ledger.deliveries) if d.channel_id == parent)
    first_child = min(i for i, d in enumerate(ledger.deliveries) if d.channel_id in (low, high))
    assert last_parent < first_child
