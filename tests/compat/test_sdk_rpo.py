"""The SDKs' own view of a stream tunnel's progress is sane.

The rule (tunnel-protocol.md §4.6: a channel's RPO is its consume point, a
time; lag = now - point): for a stream channel that has been read, the
consume point is a real recent time (not 1970), never in the future, and
never moves back - not when the channel is caught up, not when new data
lands before the next checkpoint. Checked through Go's DescribeTunnel
(ChannelRPO, ns) and GetRpo, and Java's DescribeTunnel (consume point and
lag, ms)."""

import time

import pytest

from scenario_kit import consume_fields, keys, make_table, puts
from sdk_kit import connection

pytestmark = pytest.mark.official_sdk

_YEAR_2020_MS = 1_577_836_800_000


def _stream_points(view, language):
    """channel -> (consume point ms, lag ms) for the stream channels of a describe."""
    points = {}
    for channel in view["channels"]:
        if channel["type"] != "Stream":
            continue
        if language == "go":
            point_ms = channel["rpo_ns"] / 1e6
            points[channel["channel"]] = (point_ms, view["now_ns"] / 1e6 - point_ms)
        else:
            points[channel["channel"]] = (channel["consume_point_ms"], channel["rpo_ms"])
    return points


def _check_rule(views, language, started_ms):
    history = {}
    for index, view in enumerate(views):
        now_ms = view["now_ns"] / 1e6 if language == "go" else view["now_ms"]
        points = _stream_points(view, language)
        assert points, f"describe #{index} lists no stream channel: {view}"
        for channel, (point_ms, lag_ms) in points.items():
            where = f"describe #{index}, channel {channel}: consume point {point_ms:.0f} ms, lag {lag_ms:.0f} ms"
            assert point_ms >= _YEAR_2020_MS, f"{where}: an absurd (1970-like) consume point"
            assert point_ms >= started_ms - 60_000, f"{where}: older than the tunnel"
            assert point_ms <= now_ms, f"{where}: in the future (now {now_ms:.0f} ms)"
            assert lag_ms >= 0, f"{where}: negative lag"
            history.setdefault(channel, []).append(point_ms)
    for channel, points in history.items():
        assert points == sorted(points), f"channel {channel}: consume point moved back: {points}"


def test_sdk_consume_points_are_recent_never_future_and_monotonic(sdk, server):
    conn = connection(server)
    make_table(server, "t", split_points=("m",))
    started_ms = time.time() * 1000
    tunnel = sdk.call("create_tunnel", table="t", tunnel="inc", type="Stream", **conn)
    consumer = sdk.send("consume", **conn, **consume_fields(sdk.language, tunnel["tunnel_id"]))
    first = puts(keys("dq", 20))
    sdk.call("write", table="t", changes=first, **conn)
    sdk.wait_for_records([consumer], len(first))
    views = []
    for _ in range(3):  # caught up: read to the end, then checkpointed
        views.append(sdk.call("describe", table="t", tunnel="inc", **conn))
        time.sleep(0.5)
    second = puts(keys("dq", 10, "x"))
    sdk.call("write", table="t", changes=second, **conn)
    # New data, not yet read or checkpointed (the worker's idle poll backs off).
    views += [sdk.call("describe", table="t", tunnel="inc", **conn) for _ in range(3)]
    sdk.wait_for_records([consumer], len(first) + len(second))
    time.sleep(1.0)
    views.append(sdk.call("describe", table="t", tunnel="inc", **conn))
    sdk.stop(consumer)
    sdk.wait(consumer)

    _check_rule(views, sdk.language, started_ms)
    if sdk.language == "go":
        # GetRpo's per-channel RpoTime follows the same rule.
        for view in views:
            for channel, latency in view["rpo"][tunnel["tunnel_id"]].items():
                if latency["ChannelTyp"] == "Stream":
                    assert started_ms - 60_000 <= latency["RpoTime"] / 1e6 <= view["now_ns"] / 1e6, (channel, latency)
