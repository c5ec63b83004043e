"""The pure parts of lag monitoring: durations, the snapshot built from a
DescribeTunnel answer, the expiry guard's levels and exit codes, the text
and JSON views, the bounded history, the service clock, and the plot's
hint when matplotlib is missing."""

import builtins
import json
import re

import pytest
import requests

from beam_tunnel.client.models import ChannelInfo, TunnelDescription, TunnelInfo
from beam_tunnel.monitoring import LagHistory, Level, Retention, Thresholds, build_snapshot, evaluate
from beam_tunnel.monitoring.durations import format_duration, parse_duration
from beam_tunnel.monitoring.guard import combine
from beam_tunnel.monitoring.plot import write_lag_png
from beam_tunnel.monitoring.render import render_text, snapshot_to_dict
from beam_tunnel.monitoring.service import ServiceClock

S = 1_000_000_000
H = 3600
NOW = 1_800_000_000 * S
DAY = Retention(24 * H, "DescribeTable")


def _described(tunnel_type="BaseAndStream", stage="ProcessStream", tunnel_rpo=NOW - 90 * S, expired=False,
               created=NOW - 2 * H * S, channels=None):
    if channels is None:
        channels = (
            ChannelInfo("BaseData_t_0", "BaseData", "TERMINATED", None, 0, 120),
            ChannelInfo("t_0", "Stream", "OPEN", "a_1", NOW - 90 * S, 7),
            ChannelInfo("t_1", "Stream", "OPEN", "b_2", NOW - 2 * S, 3),
        )
    tunnel = TunnelInfo("tid", "tun", "t", "inst", tunnel_type, stage, expired=expired, create_time_ns=created)
    return TunnelDescription(tunnel, tuple(channels), tunnel_rpo)


@pytest.mark.parametrize("text, seconds", [
    ("90", 90), ("1.5", 1.5), ("90s", 90), ("15m", 900), ("2h30m", 9000), ("7d", 7 * 86400), ("1d2h3m4s", 93784),
    (" 2H ", 7200),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "5 parsecs", "30m2h", "1h1h", "-5", "nan", "inf", "1hh"])
def test_parse_duration_refuses_naming_the_value(text):
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        parse_duration(text)


@pytest.mark.parametrize("seconds, text", [
    (None, "-"), (0.351, "0.35s"), (12.04, "12.0s"), (303, "5m03s"), (7500, "2h05m"), (6 * 86400 + 23 * H, "6d23h"),
    (-90, "-1m30s"),
])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_snapshot_measures_lag_per_channel_and_leaves_unknowns_unknown():
    snapshot = build_snapshot(_described(), NOW, DAY)
    base, slow, fast = snapshot.channels
    assert (base.consumed_through_ns, base.lag_s, base.records_read) == (None, None, 120)
    assert (slow.owner, slow.consumed_through_ns, slow.lag_s) == ("a_1", NOW - 90 * S, 90.0)
    assert (fast.owner, fast.lag_s, fast.records_read) == ("b_2", 2.0, 3)
    assert all(channel.records_behind is None for channel in snapshot.channels)
    assert (snapshot.consumed_through_ns, snapshot.lag_s) == (NOW - 90 * S, 90.0)
    assert snapshot.expiry.applies and snapshot.expiry.time_left_s == pytest.approx(24 * H - 90)


def test_full_phase_expiry_counts_from_the_tunnel_creation():
    # The stream part must still hold every change since creation, whatever
    # the (later) consume points of waiting stream channels say.
    snapshot = build_snapshot(_described(stage="ProcessBaseData", tunnel_rpo=NOW - 60 * S), NOW, DAY)
    assert snapshot.expiry.basis_ns == NOW - 2 * H * S
    assert snapshot.expiry.time_left_s == pytest.approx(22 * H)
    # A service reporting 0 for the tunnel during the full phase: the same.
    snapshot = build_snapshot(_described(stage="ProcessBaseData", tunnel_rpo=0), NOW, DAY)
    assert (snapshot.lag_s, snapshot.expiry.time_left_s) == (None, pytest.approx(22 * H))


def test_expiry_does_not_apply_without_a_stream_and_is_unknown_without_retention():
    base_only = build_snapshot(_described(tunnel_type="BaseData", tunnel_rpo=0), NOW, DAY)
    assert (base_only.expiry.applies, base_only.expiry.time_left_s) == (False, None)
    assert evaluate(base_only, Thresholds(warn_left_s=H, fail_left_s=60)).level is Level.OK
    unknown = build_snapshot(_described(), NOW, Retention(None, "unknown: DescribeTable failed with OTSPermissionDenied"))
    assert unknown.expiry.applies and unknown.expiry.time_left_s is None
    assert "--retention" in unknown.expiry.note
    verdict = evaluate(unknown, Thresholds(warn_left_s=H))
    assert (verdict.level, verdict.level.exit_code) == (Level.UNKNOWN, 5)
    assert evaluate(unknown, Thresholds()).level is Level.OK


@pytest.mark.parametrize("lag_s, thresholds, level, exit_code, says", [
    (90, Thresholds(), Level.OK, 0, None),
    (20 * H, Thresholds(warn_left_s=6 * H, fail_left_s=H), Level.WARN, 3, "--warn-left"),
    (23.5 * H, Thresholds(warn_left_s=6 * H, fail_left_s=H), Level.FAIL, 4, "--fail-left"),
    (23.5 * H, Thresholds(), Level.OK, 0, None),
    (25 * H, Thresholds(), Level.FAIL, 4, "retention exceeded by 1h00m"),
    (600, Thresholds(max_lag_s=300), Level.FAIL, 4, "--max-lag"),
    (200, Thresholds(max_lag_s=300), Level.OK, 0, None),
])
def test_guard_levels_and_exit_codes(lag_s, thresholds, level, exit_code, says):
    point = NOW - int(lag_s * S)
    snapshot = build_snapshot(_described(tunnel_rpo=point), NOW, DAY)
    verdict = evaluate(snapshot, thresholds)
    assert (verdict.level, verdict.level.exit_code) == (level, exit_code)
    if says:
        assert any(says in reason for reason in verdict.reasons)
    else:
        assert verdict.reasons == ()


def test_an_expired_tunnel_fails_whatever_the_thresholds():
    verdict = evaluate(build_snapshot(_described(expired=True), NOW, DAY), Thresholds())
    assert verdict.level is Level.FAIL and "OTSTunnelExpired" in verdict.reasons[0]


def test_combine_takes_the_most_severe_level():
    assert combine([]) is Level.OK
    assert combine([Level.OK, Level.UNKNOWN]) is Level.UNKNOWN
    assert combine([Level.WARN, Level.UNKNOWN, Level.OK]) is Level.WARN
    assert combine([Level.WARN, Level.FAIL]) is Level.FAIL


def test_thresholds_and_snapshots_refuse_bad_values():
    with pytest.raises(ValueError, match="-1"):
        Thresholds(warn_left_s=-1)
    with pytest.raises(ValueError, match="now_ns"):
        build_snapshot(_described(), 0, DAY)
    with pytest.raises(ValueError, match="Retention.seconds"):
        Retention(0, "x")
    with pytest.raises(ValueError, match="max_points"):
        LagHistory(0)


def test_text_and_json_views():
    snapshot = build_snapshot(_described(tunnel_rpo=NOW - 20 * H * S), NOW, DAY)
    verdict = evaluate(snapshot, Thresholds(warn_left_s=6 * H))
    text = render_text(snapshot, verdict)
    assert "tunnel 'tun' (tid) on table 't': BaseAndStream, stage ProcessStream" in text
    assert "tunnel lag 20h00m" in text and "time left 4h00m" in text and "[WARN]" in text
    assert "! time left 4h00m < --warn-left 6h00m" in text
    row = next(line for line in text.splitlines() if line.startswith("t_0 "))
    assert row.split()[1:] == ["Stream", "OPEN", "a_1", "2027-01-15T07:58:30.000Z", "1m30s", "7"]
    assert "records behind: unknown" in text

    document = json.loads(json.dumps(snapshot_to_dict(snapshot, verdict)))
    assert (document["level"], document["exit_code"], document["lag_s"]) == ("WARN", 3, 20 * H)
    assert document["consumed_through"] == "2027-01-14T12:00:00.000Z"
    assert document["channels"][0] == {
        "channel_id": "BaseData_t_0", "type": "BaseData", "status": "TERMINATED", "owner": None,
        "consumed_through_ns": None, "consumed_through": "-", "lag_s": None, "records_read": 120,
        "records_behind": None,
    }


def test_history_keeps_the_latest_points_only():
    history = LagHistory(max_points=3)
    for step in range(5):
        history.add(build_snapshot(_described(), NOW + step * S, DAY))
    assert len(history) == 3
    columns = history.to_dict()
    assert columns["t_ns"] == [NOW + 2 * S, NOW + 3 * S, NOW + 4 * S]
    assert columns["tunnel_lag_s"] == [92.0, 93.0, 94.0]
    assert set(columns["channel_lag_s"]) == {"t_0", "t_1"}  # the base channel has no lag to draw


def _answer(**headers):
    response = requests.Response()
    response.headers.update(headers)
    return response


def test_service_clock_follows_the_dates_of_answers():
    local = [NOW]  # 2027-01-15T08:00:00Z on this machine
    clock = ServiceClock(local_ns=lambda: local[0])
    assert clock.now_ns() == local[0]
    clock.observe(_answer(**{"x-ots-date": "2027-01-16T04:00:00.250Z"}))  # the service is 20 h 250 ms ahead
    assert clock.offset_s == pytest.approx(20 * H + 0.25)
    local[0] += 5 * S
    assert clock.now_ns() == local[0] + int((20 * H + 0.25) * S)
    # A plain HTTP Date (whole seconds) counts only when off by more than its resolution.
    clock.observe(_answer(Date="Sat, 16 Jan 2027 04:00:05 GMT"))
    assert clock.offset_s == pytest.approx(20 * H)
    clock.observe(_answer(Date="Fri, 15 Jan 2027 08:00:06 GMT"))
    assert clock.offset_s == 0
    clock.observe(_answer(Date="Fri, 15 Jan 2027 08:00:15 GMT"))
    assert clock.offset_s == pytest.approx(10)
    clock.observe(_answer(**{"x-ots-date": "garbage"}))  # unreadable: the last offset stays
    assert clock.offset_s == pytest.approx(10)


def test_plot_without_matplotlib_says_how_to_install_it(monkeypatch, tmp_path):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    history = LagHistory()
    history.add(build_snapshot(_described(), NOW, DAY))
    with pytest.raises(ImportError, match=r"pip install 'beam_tunnel\[monitor\]'"):
        write_lag_png(history, str(tmp_path / "lag.png"), "title")
    assert not (tmp_path / "lag.png").exists()


def test_plot_refuses_an_empty_history(tmp_path):
    with pytest.raises(ValueError, match="nothing to plot"):
        write_lag_png(LagHistory(), str(tmp_path / "lag.png"), "title")
