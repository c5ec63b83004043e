"""TunnelWorker when things go wrong: with one request in ten failing
(503 OTSTunnelServerUnavailable or a dropped connection) every record still
arrives, in per-channel runs; fatal answers stop the worker with a clear
error."""

import logging

import pytest

from beam_tunnel.emulator import EmulatorServer
from beam_tunnel.emulator.faults import FaultSettings
from beam_tunnel.errors import AuthFailedError, ObjectNotExistError, ParameterInvalidError
from beam_tunnel.client import TunnelClient
from beam_tunnel.worker import TunnelWorker

from worker_kit import FAST, Ledger, active_channels, check_channel_runs, make_table, spread_keys, tunnel_client, wait_for, write_rows

_LOGGER = logging.getLogger(__name__)


@pytest.mark.parametrize(
    "seed, client_retries",
    [(7, True), (2024, True), (11, False), (12, False)],
    ids=["retrying-client-1", "retrying-client-2", "no-client-retry-1", "no-client-retry-2"],
)
def test_every_record_arrives_with_one_request_in_ten_failing(seed, client_retries, record_property):
    """Without client retries every fault reaches the worker: failed reads
    hand channels back, failed heartbeats are retried, unanswered
    checkpoints are checked with GetCheckpoint."""
    with EmulatorServer(read_max_records=25) as server:
        make_table(server, "t", partitions=3)
        base = write_rows(server, "t", spread_keys(150, "base"))
        setup = tunnel_client(server)
        tunnel_id = setup.create_tunnel("t", "both", "BaseAndStream")
        # Faults from here on: the setup above is not under test.
        server.faults.configure(FaultSettings(error_rate=0.08, drop_rate=0.02, seed=seed))
        ledger = Ledger()
        options = {} if client_retries else {"retry_deadline": 0}
        clients = [tunnel_client(server, **options) for _ in range(2)]
        workers = [TunnelWorker(c, tunnel_id, ledger.processor(f"w{i}"), FAST) for i, c in enumerate(clients)]
        for worker in workers:
            worker.start()
        try:
            wait_for(lambda: ledger.has_all(base), "the full data")
            changes = write_rows(server, "t", spread_keys(150, "inc"))
            wait_for(lambda: ledger.has_all(changes), "every change")
        finally:
            for worker in workers:
                worker.stop()
    assert all(worker.error is None for worker in workers)
    repeats = {cid: check_channel_runs(d) for cid, d in ledger.by_channel().items()}
    full = [d.ident for d in ledger.deliveries if d.sequence is None]
    stream = [d.ident for d in ledger.deliveries if d.sequence is not None]
    assert set(full) == set(base) and set(stream) == set(changes)
    record_property("repeated_deliveries", sum(repeats.values()))
    _LOGGER.info("faults seed %s (client retries %s): %d repeated deliveries %s", seed, client_retries, sum(repeats.values()), repeats)


def test_wrong_access_key_stops_the_worker_with_auth_failed(server):
    make_table(server, "t")
    tunnel_id = tunnel_client(server).create_tunnel("t", "inc", "Stream")
    client = TunnelClient(server.endpoint, server.instance_name, server.access_key_id, "not-the-secret")
    worker = TunnelWorker(client, tunnel_id, lambda records, context: None, FAST)
    worker.start()
    with pytest.raises(AuthFailedError):
        worker.join(60)
    assert isinstance(worker.error, AuthFailedError)
    assert not worker.running


def test_deleted_tunnel_stops_the_worker(server):
    make_table(server, "t", partitions=2)
    client = tunnel_client(server)
    tunnel_id = client.create_tunnel("t", "inc", "Stream")
    worker = TunnelWorker(client, tunnel_id, lambda records, context: None, FAST)
    worker.start()
    wait_for(lambda: len(active_channels(worker)) == 2, "both channels open")
    client.delete_tunnel("t", "inc")
    with pytest.raises((ObjectNotExistError, ParameterInvalidError)) as err:
        worker.join(60)
    assert worker.error is err.value
