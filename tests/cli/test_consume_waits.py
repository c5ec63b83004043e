"""`beam-tunnel consume` says what it waits for, and stops when asked:
against a dead endpoint, after the service died, and while a killed
predecessor still holds the channels. Real subprocesses, real emulator."""

from __future__ import annotations

import re
import signal

from beam_tunnel.emulator.admin import AdminClient

from cli_kit import Cli, dead_port, server_env

_FAST = ("--heartbeat-interval", "0.2", "--heartbeat-timeout", "2", "--checkpoint-interval", "0.2",
         "--progress-interval", "0.2", "--reconnect-max-delay", "0.2")


def _table(server, name="t", stream=True):
    admin = AdminClient(server.endpoint)
    admin.create_table(name, [("id", "STRING")], split_points=["m"], stream=stream)
    return admin


def _rows(admin, prefix, count=20):
    return admin.put_rows("t", [((("id", f"{'az'[i % 2]}{prefix}{i:03d}"),), {"n": i}) for i in range(count)])


def test_a_dead_endpoint_is_named_with_the_retry_deadline_and_ctrl_c_exits_at_once(tmp_path):
    port = dead_port()
    env = server_env_for(f"http://127.0.0.1:{port}")
    with Cli("consume", "--table", "t", "--tunnel", "tun", "--output", str(tmp_path / "o.jsonl"), env=env) as cli:
        match = cli.wait_for_line(r"waiting for the service at (\S+): ListTunnel failed .*retrying for up to (\d+) s")
        assert match.group(1) == f"http://127.0.0.1:{port}"
        assert match.group(2) == "35"
        cli.signal(signal.SIGINT)
        assert cli.wait(timeout=10) == 130
    assert "exiting before reading began" in cli.stderr
    assert "Traceback" not in cli.stderr


def server_env_for(endpoint):
    class _Service:
        instance_name = "beam-tunnel"
        access_key_id = "emulator-access-key-id"
        access_key_secret = "emulator-access-key-secret"

    service = _Service()
    service.endpoint = endpoint
    return server_env(service)


def _lags(lines):
    return [float(m.group(1)) for m in (re.search(r"lag=(\d+\.\d)s", line) for line in lines) if m]


def test_after_the_service_died_ctrl_c_stops_within_stop_timeout_and_the_lag_keeps_growing(server, tmp_path):
    admin = _table(server)
    with Cli("consume", "--table", "t", "--tunnel", "tun", "--type", "Stream", "--output", str(tmp_path / "o.jsonl"),
             "--stop-timeout", "3", *_FAST, env=server_env(server)) as cli:
        cli.wait_for_line(r"phase=stream")
        _rows(admin, "x")
        cli.wait_for_line(r"records=20 .*lag=\d")
        server.stop()
        dead_at = len(cli.lines)
        cli.wait_for_line(r"waiting for the service at .* failed .*retrying for up to \d+ s", after=dead_at)
        cli.wait_for_line(r"service: no answer for [3-9] s", after=dead_at)
        lags = _lags(cli.lines[dead_at:])
        # Nothing arrives, so the lag grows with the time since the last change.
        assert lags[-1] >= lags[0] + 1.0, cli.stderr
        cli.signal(signal.SIGINT)
        cli.wait_for_line(r"SIGINT: stopping gracefully .* for up to 3 s \(--stop-timeout\); SIGINT again exits at once")
        assert cli.wait(timeout=30) == 1
    assert "the graceful stop did not finish within 3 s" in cli.stderr
    assert "stopped: 20 records written" in cli.stderr


def test_a_second_ctrl_c_exits_at_once(server, tmp_path):
    _table(server)
    with Cli("consume", "--table", "t", "--tunnel", "tun", "--type", "Stream", "--output", str(tmp_path / "o.jsonl"),
             "--stop-timeout", "600", *_FAST, env=server_env(server)) as cli:
        cli.wait_for_line(r"phase=stream")
        server.stop()
        cli.wait_for_line(r"service: no answer for [2-9] s")
        cli.signal(signal.SIGINT)
        cli.wait_for_line(r"stopping gracefully")
        cli.signal(signal.SIGINT)
        assert cli.wait(timeout=10) == 130
    assert "SIGINT: exiting at once; records since the last checkpoint will be read again" in cli.stderr


def test_the_successor_of_a_killed_consumer_says_it_waits_for_the_old_lease(server, tmp_path):
    _table(server)
    output = str(tmp_path / "o.jsonl")
    slow_lease = ("--heartbeat-interval", "0.5", "--heartbeat-timeout", "120", "--progress-interval", "0.2")
    env = server_env(server)
    with Cli("consume", "--table", "t", "--tunnel", "tun", "--type", "Stream", "--output", output, *slow_lease,
             env=env) as first:
        first.wait_for_line(r"phase=stream .*channels=2")
        first.process.kill()
        first.wait(timeout=30)
    with Cli("consume", "--table", "t", "--tunnel", "tun", "--output", output, *slow_lease, env=env) as successor:
        match = successor.wait_for_line(
            r"channels=0 waiting: the service has assigned no channels to this client yet "
            r"\(channels held by other clients: (\d+), by 1 client\(s\); a dead client's lease expires after its "
            r"heartbeat timeout, up to 300 s with the default\)"
        )
        assert match.group(1) == "2"
        successor.signal(signal.SIGTERM)
        assert successor.wait(timeout=30) == 0
