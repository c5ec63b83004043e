"""TunnelWorker lifecycle against the emulator: a lease the service ended
(OTSResourceGone), or one given up because no heartbeat was answered within
the timeout, is replaced by a new client id and reading goes on; a
processor that raises hands its channel back and the batch comes again;
stop() works from inside a callback; bad arguments are refused up front."""

import threading

import pytest

from beam_tunnel.emulator import EmulatorServer, ManualClock
from beam_tunnel.errors import ConfigError
from beam_tunnel.worker import ChannelProcessor, TunnelWorker, WorkerConfig

from worker_kit import FAST, Ledger, active_channels, check_channel_runs, make_table, spread_keys, tunnel_client, wait_for, write_rows


def test_lease_ended_by_the_service_is_replaced_by_a_new_client(record_property):
    clock = ManualClock()
    with EmulatorServer(clock=clock, read_max_records=25) as server:
        make_table(server, "t", partitions=2)
        client = tunnel_client(server)
        tunnel_id = client.create_tunnel("t", "inc", "Stream")
        ledger = Ledger()
        with TunnelWorker(client, tunnel_id, ledger.processor("w"), FAST) as worker:
            wait_for(lambda: len(active_channels(worker)) == 2, "both channels open")
            first_id = worker.client_id
            before = write_rows(server, "t", spread_keys(60, "before"))
            wait_for(lambda: ledger.has_all(before), "the first writes")
            # The service's clock jumps past the lease: the next heartbeat is
            # answered OTSResourceGone.
            clock.advance(10)
            wait_for(lambda: worker.client_id not in (None, first_id), "a new client id")
            after = write_rows(server, "t", spread_keys(60, "after"))
            wait_for(lambda: ledger.has_all(after), "the later writes")
        assert worker.error is None
    repeats = sum(check_channel_runs(d) for d in ledger.by_channel().values())
    assert set(ledger.idents()) == set(before + after)
    record_property("repeated_deliveries", repeats)


def test_lease_given_up_when_no_heartbeat_is_answered_within_the_timeout(server):
    make_table(server, "t", partitions=2)
    tunnel_id = tunnel_client(server).create_tunnel("t", "inc", "Stream")
    client = tunnel_client(server, retry_deadline=0)
    ledger = Ledger()
    with TunnelWorker(client, tunnel_id, ledger.processor("w"), FAST) as worker:
        wait_for(lambda: len(active_channels(worker)) == 2, "both channels open")
        first_id = worker.client_id
        server.faults.configure(error_rate=1.0)
        # Every heartbeat fails; after heartbeat_timeout_s the worker drops
        # its channels itself and tries to connect again.
        wait_for(lambda: worker.client_id is None and not worker.channels(), "the lease given up")
        server.faults.clear()
        wait_for(lambda: worker.client_id not in (None, first_id), "a new client id")
        written = write_rows(server, "t", spread_keys(60))
        wait_for(lambda: ledger.has_all(written), "writes after the reconnect")
    assert worker.error is None


class _FailOnce(ChannelProcessor):
    """Raises on the first batch of every channel, then records."""

    def __init__(self, ledger):
        self._inner = ledger.processor("w")
        self._failed = set()
        self._lock = threading.Lock()
        self.failures = 0
        self.shutdowns = []

    def process(self, records, context):
        with self._lock:
            first = context.channel_id not in self._failed
            self._failed.add(context.channel_id)
            if first:
                self.failures += 1
        if first:
            raise RuntimeError("processing failed")
        self._inner.process(records, context)

    def shutdown(self, context):
        with self._lock:
            self.shutdowns.append(context.channel_id)


def test_failing_processor_hands_the_channel_back_and_gets_the_batch_again(server):
    make_table(server, "t", partitions=2, stream=False)
    written = write_rows(server, "t", spread_keys(100))
    client = tunnel_client(server)
    tunnel_id = client.create_tunnel("t", "full", "BaseData")
    ledger = Ledger()
    processor = _FailOnce(ledger)
    with TunnelWorker(client, tunnel_id, processor, FAST) as worker:
        wait_for(lambda: ledger.has_all(written), "every row")
    assert worker.error is None
    assert processor.failures == 2
    # Nothing acknowledged twice, nothing skipped: the failed batch came back.
    assert sorted(ledger.idents()) == sorted(written)
    for deliveries in ledger.by_channel().values():
        assert check_channel_runs(deliveries) == 0
    # shutdown() once per reader: the failed one, and the one that finished.
    assert sorted(processor.shutdowns) == sorted(list(ledger.by_channel()) * 2)


def test_stop_from_inside_a_callback(server):
    make_table(server, "t", partitions=1, stream=False)
    write_rows(server, "t", spread_keys(100))
    client = tunnel_client(server)
    tunnel_id = client.create_tunnel("t", "full", "BaseData")
    returned = []
    holder = {}

    def process(records, context):
        if not returned:
            returned.append(holder["worker"].stop())

    worker = holder["worker"] = TunnelWorker(client, tunnel_id, process, FAST)
    worker.start()
    assert worker.join(60)
    assert returned == [False]  # the shutdown went on in the background
    assert worker.error is None and not worker.running


def test_bad_arguments_are_refused_with_the_value(server):
    client = tunnel_client(server)
    with pytest.raises(ConfigError, match="tunnel_id must be a non-empty string, got ''"):
        TunnelWorker(client, "", print)
    with pytest.raises(ConfigError, match="client must be a TunnelClient, got 'nope'"):
        TunnelWorker("nope", "tid", print)
    with pytest.raises(ConfigError, match="processor must be"):
        TunnelWorker(client, "tid", 42)
    with pytest.raises(ConfigError, match="heartbeat timeout_s must exceed interval_s, got timeout_s=5 and interval_s=10"):
        WorkerConfig(heartbeat_interval_s=10, heartbeat_timeout_s=5)
    with pytest.raises(ConfigError, match="max_channel_parallelism must be an int >= 1 or None, got 0"):
        WorkerConfig(max_channel_parallelism=0)
    with pytest.raises(ConfigError, match="checkpoint_interval_s must be a finite number of seconds > 0, got -1"):
        WorkerConfig(checkpoint_interval_s=-1)
    worker = TunnelWorker(client, "tid", print, FAST)
    with pytest.raises(ConfigError, match="was not started"):
        worker.join(0)
    worker.stop()
    with pytest.raises(ConfigError, match="a TunnelWorker runs once"):
        worker.start()
