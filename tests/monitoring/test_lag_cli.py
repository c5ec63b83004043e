"""``beam-tunnel lag`` as a real subprocess against the emulator over
loopback: its JSON agrees with DescribeTunnel, the expiry guard trips (exit
3/4) as the emulator's clock nears the stream retention, the live loop is
bounded and stops on SIGTERM, ``--plot`` writes a readable PNG, and bad
input is refused with the bad value named."""

import json
import signal
import subprocess
import time

import pytest
from PIL import Image  # Pillow: a dependency of the test extra's matplotlib

from monitoring_kit import HOUR, cli_env, command, lag_json, read_line, run_lag
from tunnel_kit import Worker, run_workers
from worker_kit import make_table, spread_keys, tunnel_client, write_rows



def _point(ns):
    return ns or None


def _sandwiched(before, value, after):
    """``value`` lies between the readings before and after (a caught-up
    channel's consume point is the service's "now", so it moves)."""
    if before is None or after is None:
        return value == before == after
    return value is not None and before <= value <= after


@pytest.fixture
def busy_tunnel(server):
    """A BaseAndStream tunnel over three partitions read by two SDK-rule
    clients: the full data read, then changes that only client ``a`` reads,
    so ``b``'s stream channels fall behind."""
    make_table(server, "t", partitions=3)
    write_rows(server, "t", spread_keys(90))
    client = tunnel_client(server, retry_deadline=0)
    tunnel_id = client.create_tunnel("t", "tun", "BaseAndStream")
    a, b = Worker(client, tunnel_id, tag="a"), Worker(client, tunnel_id, tag="b")
    run_workers([a, b])
    write_rows(server, "t", spread_keys(60, "late"))
    time.sleep(0.05)  # the unread changes are measurably old
    a.run_until_idle()
    yield client, a, b
    client.close()


def test_once_json_agrees_with_describe_tunnel(server, busy_tunnel):
    client, a, b = busy_tunnel
    started_ns = time.time_ns()
    before = client.describe_tunnel("t", "tun")
    code, snapshot, stderr = lag_json(server)
    after = client.describe_tunnel("t", "tun")
    finished_ns = time.time_ns()
    assert code == 0, stderr

    tunnel = after.tunnel
    assert (snapshot["table"], snapshot["tunnel"], snapshot["tunnel_id"]) == ("t", "tun", tunnel.tunnel_id)
    assert (snapshot["tunnel_type"], snapshot["stage"], snapshot["expired"]) == (
        "BaseAndStream", "ProcessStream", False)
    assert snapshot["created_ns"] == tunnel.create_time_ns
    assert started_ns <= snapshot["now_ns"] <= finished_ns  # the emulator runs on the wall clock here
    assert _sandwiched(_point(before.tunnel_rpo_ns), snapshot["consumed_through_ns"], _point(after.tunnel_rpo_ns))

    assert [c["channel_id"] for c in snapshot["channels"]] == [c.channel_id for c in after.channels]
    owners = set()
    for got, was, now in zip(snapshot["channels"], before.channels, after.channels):
        assert (was.channel_type, was.status, was.client_id, was.count) == (
            now.channel_type, now.status, now.client_id, now.count)  # nothing moved while measuring
        assert (got["type"], got["status"], got["owner"], got["records_read"]) == (
            str(now.channel_type), str(now.status), now.client_id or None, now.count)
        assert _sandwiched(_point(was.rpo_ns), got["consumed_through_ns"], _point(now.rpo_ns))
        assert got["records_behind"] is None
        if got["consumed_through_ns"] is None:
            assert got["lag_s"] is None
        else:
            assert got["lag_s"] == pytest.approx((snapshot["now_ns"] - got["consumed_through_ns"]) / 1e9)
            assert -0.01 <= got["lag_s"] <= (finished_ns - started_ns) / 1e9 + 60
        owners.add(got["owner"])
    assert {a.client_id, b.client_id} <= owners
    # b has not read the late changes: its channels trail a's caught-up ones.
    lag_of = {c["channel_id"]: c["lag_s"] for c in snapshot["channels"] if c["type"] == "Stream"}
    b_lags = [lag_of[c] for c in b.channels if c in lag_of]
    a_lags = [lag_of[c] for c in a.channels if c in lag_of]
    assert b_lags and a_lags and min(b_lags) > max(a_lags)
    assert snapshot["lag_s"] == pytest.approx(max(lag_of.values()), abs=1e-6)

    assert (snapshot["retention_s"], snapshot["retention_source"]) == (24 * HOUR, "DescribeTable")
    assert snapshot["expiry"]["applies"] is True
    assert snapshot["expiry"]["time_left_s"] == pytest.approx(24 * HOUR - snapshot["lag_s"], abs=1e-3)
    assert (snapshot["level"], snapshot["exit_code"], snapshot["reasons"]) == ("OK", 0, [])


def test_text_table_shows_every_channel_with_its_owner(server, busy_tunnel):
    client, a, b = busy_tunnel
    result = run_lag(server, "--once")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("tunnel 'tun'") and "BaseAndStream, stage ProcessStream" in lines[0]
    assert "retention 1d00h (DescribeTable)" in result.stdout and "[OK]" in result.stdout
    header = next(line for line in lines if line.startswith("CHANNEL"))
    for column in ("TYPE", "STATUS", "OWNER", "CONSUMED THROUGH (UTC)", "LAG", "READ"):
        assert column in header
    for channel in client.describe_tunnel("t", "tun").channels:
        row = next(line for line in lines if line.startswith(channel.channel_id + " "))
        assert str(channel.status) in row and (channel.client_id or "-") in row
    assert "records behind: unknown" in result.stdout


@pytest.fixture
def full_phase_tunnel(far_clock):
    """A BaseAndStream tunnel stuck in its full phase on a table with 24 h
    retention; the test moves the emulator's clock towards expiry."""
    server, clock = far_clock
    make_table(server, "t", partitions=2)
    write_rows(server, "t", spread_keys(20))
    client = tunnel_client(server, retry_deadline=0)
    tunnel_id = client.create_tunnel("t", "tun", "BaseAndStream")
    worker = Worker(client, tunnel_id, timeout_s=1000 * 3600, tag="slow")
    worker.heartbeat()
    yield server, clock, client, worker
    client.close()


def test_expiry_guard_trips_as_the_full_phase_nears_retention(full_phase_tunnel):
    server, clock, client, worker = full_phase_tunnel
    guard = ("--warn-left", "6h", "--fail-left", "1h")

    clock.advance(2 * HOUR)
    code, snapshot, stderr = lag_json(server, *guard)
    assert code == 0, stderr
    assert snapshot["stage"] == "ProcessBaseData"
    # The service's clock, not this machine's, measures the lag.
    assert abs(snapshot["now_ns"] - clock.now_ns()) < 5e9
    assert 21.5 * HOUR < snapshot["expiry"]["time_left_s"] < 22.5 * HOUR

    clock.advance(18 * HOUR)  # 20 h in: about 4 h left
    code, snapshot, stderr = lag_json(server, *guard)
    assert (code, snapshot["level"]) == (3, "WARN"), stderr
    assert 3.5 * HOUR < snapshot["expiry"]["time_left_s"] < 4.5 * HOUR
    assert any("--warn-left" in reason for reason in snapshot["reasons"])

    clock.advance(3.5 * HOUR)  # about 30 min left
    code, snapshot, _ = lag_json(server, *guard)
    assert (code, snapshot["level"]) == (4, "FAIL")
    assert any("--fail-left" in reason for reason in snapshot["reasons"])
    # Without thresholds the same state is not an alert yet.
    assert lag_json(server)[0] == 0

    clock.advance(1 * HOUR)  # past retention: changes since creation are gone
    code, snapshot, _ = lag_json(server)
    assert (code, snapshot["level"]) == (4, "FAIL")
    assert snapshot["expiry"]["time_left_s"] < 0
    assert any("retention exceeded" in reason for reason in snapshot["reasons"])

    for channel_id in worker.open_channels():
        worker.drain(channel_id)
    with pytest.raises(Exception, match="expired"):
        worker.heartbeat()
    code, snapshot, _ = lag_json(server)
    assert (code, snapshot["expired"], snapshot["level"]) == (4, True, "FAIL")
    assert any("OTSTunnelExpired" in reason for reason in snapshot["reasons"])


def test_expiry_guard_on_unread_stream_changes_and_max_lag(far_clock):
    server, clock = far_clock
    make_table(server, "t", partitions=2)
    client = tunnel_client(server, retry_deadline=0)
    client.create_tunnel("t", "tun", "Stream")
    write_rows(server, "t", spread_keys(10))
    clock.advance(23.5 * HOUR)
    code, snapshot, stderr = lag_json(server, "--fail-left", "1h")
    assert (code, snapshot["level"]) == (4, "FAIL"), stderr
    assert 0 < snapshot["expiry"]["time_left_s"] < 1 * HOUR
    assert 23 * HOUR < snapshot["lag_s"] < 24 * HOUR

    code, snapshot, _ = lag_json(server, "--max-lag", "1d")
    assert code == 0
    code, snapshot, _ = lag_json(server, "--max-lag", "12h")
    assert (code, snapshot["level"]) == (4, "FAIL")
    assert any("--max-lag" in reason for reason in snapshot["reasons"])

    # --retention replaces DescribeTable: with 48 h there is time left.
    code, snapshot, _ = lag_json(server, "--fail-left", "1h", "--retention", "48h")
    assert (code, snapshot["retention_source"]) == (0, "--retention")
    assert 24 * HOUR < snapshot["expiry"]["time_left_s"] < 25 * HOUR
    client.close()


def test_live_view_is_bounded_and_stops_on_sigterm(server, busy_tunnel, processes):
    counted = run_lag(server, "--json", "--count", "3", "--interval", "0.1")
    assert counted.returncode == 0, counted.stderr
    documents = [json.loads(line) for line in counted.stdout.splitlines()]
    assert len(documents) == 3
    assert documents[0]["now_ns"] < documents[1]["now_ns"] < documents[2]["now_ns"]

    live = processes.start(command(server, "lag", "--table", "t", "--tunnel", "tun", "--interval", "0.2"),
                           env=cli_env(server), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert read_line(live.stdout, 60, "first refresh").startswith("tunnel 'tun'")
    live.send_signal(signal.SIGTERM)
    out, err = live.communicate(timeout=30)
    assert live.returncode == 0, err


def test_plot_writes_a_png_of_the_requested_size(server, busy_tunnel, tmp_path):
    picture = tmp_path / "lag.png"
    result = run_lag(server, "--count", "4", "--interval", "0.2", "--plot", str(picture),
                     "--plot-size", "900x450", "--json")
    assert result.returncode == 0, result.stderr
    assert f"wrote {picture} (4 samples)" in result.stderr
    with Image.open(picture) as image:
        assert (image.format, image.size) == ("PNG", (900, 450))
        pixels = image.convert("RGB")
    colors = pixels.getcolors(maxcolors=1 << 20)
    assert len(colors) > 50  # axes, labels, lines: not a blank canvas
    tunnel_red = sum(count for count, (r, g, b) in colors if r > 180 and g < 90 and b < 90)
    assert tunnel_red > 300  # the tunnel-lag line is drawn


def test_bad_input_is_refused_naming_the_value(server, busy_tunnel):
    result = run_lag(server, "--once", "--warn-left", "5 parsecs")
    assert result.returncode == 2 and "5 parsecs" in result.stderr
    result = run_lag(server, "--once", "--plot-size", "10x10", "--plot", "x.png")
    assert result.returncode == 2 and "10x10" in result.stderr
    result = run_lag(server, "--once", "--endpoint", "ftp://nowhere")  # the last --endpoint wins
    assert result.returncode == 2 and "ftp://nowhere" in result.stderr
    result = run_lag(server, "--once", tunnel="no-such-tunnel")
    assert result.returncode == 1 and "no-such-tunnel" in result.stderr
