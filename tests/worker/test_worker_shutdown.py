"""TunnelWorker shutdown from awkward places: ``stop(timeout)`` returns after
the timeout while a callback still holds its channel (the shutdown goes on
in the background), and ``stop()`` called from a callback whose lease is
being dropped does not wait for itself."""

import threading

from beam_tunnel.emulator import EmulatorServer, ManualClock
from beam_tunnel.worker import TunnelWorker

from worker_kit import FAST, active_channels, make_table, spread_keys, tunnel_client, wait_for, write_rows


def _in_thread(func):
    """Run ``func`` on a helper thread; the result list fills when it returns."""
    result = []
    thread = threading.Thread(target=lambda: result.append(func()), daemon=True)
    thread.start()
    return thread, result


def test_stop_with_a_timeout_returns_while_a_callback_holds_its_channel(server):
    make_table(server, "t", partitions=1, stream=False)
    write_rows(server, "t", spread_keys(50))
    client = tunnel_client(server)
    tunnel_id = client.create_tunnel("t", "full", "BaseData")
    entered, release = threading.Event(), threading.Event()

    def process(records, context):
        entered.set()
        release.wait()

    worker = TunnelWorker(client, tunnel_id, process, FAST)
    worker.start()
    try:
        assert entered.wait(60), "no batch was delivered"
        # The shutdown waits for the callback, so the timeout must end the wait.
        thread, result = _in_thread(lambda: worker.stop(timeout=0.2))
        thread.join(60)
        assert result == [False]
        assert worker.running
    finally:
        release.set()
    assert worker.join(60)
    assert worker.error is None and not worker.running


def test_stop_from_a_callback_while_the_lease_is_being_dropped():
    clock = ManualClock()
    with EmulatorServer(clock=clock, read_max_records=25) as server:
        make_table(server, "t", partitions=1)
        client = tunnel_client(server)
        tunnel_id = client.create_tunnel("t", "inc", "Stream")
        entered = threading.Event()
        returned = []
        holder = {}

        def process(records, context):
            if returned or entered.is_set():
                return
            entered.set()
            worker = holder["worker"]
            # Hold the batch until the worker has dropped this lease: it is
            # now waiting for this very callback to return.
            wait_for(lambda: worker.client_id is None, "the lease dropped")
            returned.append(worker.stop())

        worker = holder["worker"] = TunnelWorker(client, tunnel_id, process, FAST)
        worker.start()
        wait_for(lambda: len(active_channels(worker)) == 1, "the channel open")
        write_rows(server, "t", spread_keys(10))
        assert entered.wait(60), "no batch was delivered"
        # The service's clock jumps past the lease: the next heartbeat is
        # answered OTSResourceGone and the worker drops the lease.
        clock.advance(10)
        assert worker.join(60)
    assert returned == [False]
    assert worker.error is None and not worker.running
