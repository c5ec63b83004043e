"""LagReader in process against the emulator: the stream retention from
DescribeTable (or its absence), the tunnels of the instance, the service's
clock when it is far from this machine's, and bad arguments."""

import pytest

from beam_tunnel.client import TunnelConfig
from beam_tunnel.errors import ConfigError
from beam_tunnel.monitoring import LagReader, Level, Retention, Thresholds, evaluate

from monitoring_kit import HOUR
from worker_kit import make_table, spread_keys, tunnel_client, write_rows


def _config(server) -> TunnelConfig:
    return TunnelConfig.resolve(server.endpoint, server.instance_name, server.access_key_id,
                                server.access_key_secret, retry_deadline=0)


def test_a_full_data_tunnel_on_a_table_without_a_stream(server):
    make_table(server, "plain", partitions=2, stream=False)
    make_table(server, "t", partitions=1)
    write_rows(server, "plain", spread_keys(10))
    with tunnel_client(server) as client:
        client.create_tunnel("plain", "full", "BaseData")
        client.create_tunnel("t", "changes", "Stream")
    with LagReader(_config(server)) as reader:
        snapshot = reader.snapshot("plain", "full")
        assert snapshot.retention == Retention(None, "stream off")
        assert (snapshot.expiry.applies, snapshot.expiry.time_left_s) == (False, None)
        assert evaluate(snapshot, Thresholds(warn_left_s=HOUR, fail_left_s=60)).level is Level.OK
        assert reader.retention("t") == Retention(24 * HOUR, "DescribeTable")
        assert sorted((t.table_name, t.tunnel_name) for t in reader.tunnels()) == [
            ("plain", "full"), ("t", "changes")]
        assert [t.tunnel_name for t in reader.tunnels("t")] == ["changes"]


def test_now_is_the_service_clock(far_clock):
    server, clock = far_clock
    make_table(server, "t", partitions=1)
    with tunnel_client(server) as client:
        client.create_tunnel("t", "changes", "Stream")
    clock.advance(30 * HOUR)
    with LagReader(_config(server), retention_s=48 * HOUR) as reader:
        snapshot = reader.snapshot("t", "changes")
        assert reader.clock.offset_s == pytest.approx(30 * HOUR, abs=5)
    assert abs(snapshot.now_ns - clock.now_ns()) < 5e9
    assert snapshot.retention == Retention(48 * HOUR, "--retention")


@pytest.mark.parametrize("retention", [0, -1, "7d", True])
def test_bad_retention_is_refused_naming_it(server, retention):
    with pytest.raises(ConfigError, match=repr(retention)):
        LagReader(_config(server), retention_s=retention)
