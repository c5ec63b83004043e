"""Consume points (model/rpo.py) for every kind of token, and the GetRpo
JSON blobs, computed directly."""

import json

from beam_tunnel.emulator.model import rpo
from beam_tunnel.emulator.model.tunnel_store import (
    BASE,
    OPEN,
    STAGE_STREAM,
    STREAM,
    TERMINATED,
    WAIT,
    ChannelRecord,
    TunnelRecord,
    TunnelState,
)
from beam_tunnel.protocol.rows import SequenceInfo
from beam_tunnel.protocol.tokens import StreamIterator, TokenContent, encode_stream_iterator, encode_token

NOW_NS = 5_000_000_000_000
FIRST, LAST = SequenceInfo(0, 1_000_000, 0), SequenceInfo(0, 3_000_000, 2)


def _token(position):
    return encode_token(TokenContent(iterator=encode_stream_iterator(StreamIterator("s", "p", position))))


def _channel(kind=STREAM, status=OPEN, channel_id="p", count=0):
    return ChannelRecord("t1", channel_id, kind, "p", (), None, None, status, 1, None, "", 0, count, False)


CREATED_NS = 500_000_000


def _first_after(*log):
    """first_after over a log holding the positions ``log``."""
    def first_after(partition_id, position):
        return next((p for p in log if position is None or p > position), None)

    return first_after


def test_stream_points_are_the_next_record_after_the_position_capped_at_now():
    channel = _channel()
    log = _first_after(FIRST, SequenceInfo(0, 2_000_000, 7), LAST)
    assert rpo.consume_point_ns(channel, _token(FIRST), log, NOW_NS, CREATED_NS) == 2_000_000_000
    assert rpo.consume_point_ns(channel, _token(SequenceInfo(0, 2_000_000, 7)), log, NOW_NS, CREATED_NS) \
        == 3_000_000_000
    # No position yet (EARLIEST): the first record kept.
    assert rpo.consume_point_ns(channel, _token(None), log, NOW_NS, CREATED_NS) == 1_000_000_000
    # Caught up, or an empty log: now.
    assert rpo.consume_point_ns(channel, _token(LAST), log, NOW_NS, CREATED_NS) == NOW_NS
    assert rpo.consume_point_ns(channel, _token(None), _first_after(), NOW_NS, CREATED_NS) == NOW_NS
    # A record stamped after "now" (a write time a few µs ahead): now.
    assert rpo.consume_point_ns(channel, _token(LAST), _first_after(SequenceInfo(0, 9_000_000_000, 0)),
                                NOW_NS, CREATED_NS) == NOW_NS


def test_finished_channels_of_both_kinds_are_now():
    log = _first_after(FIRST, LAST)
    assert rpo.consume_point_ns(_channel(), "finished", log, NOW_NS, CREATED_NS) == NOW_NS
    assert rpo.consume_point_ns(_channel(status=TERMINATED), _token(FIRST), log, NOW_NS, CREATED_NS) == NOW_NS
    assert rpo.consume_point_ns(_channel(kind=BASE), "finished", log, NOW_NS, CREATED_NS) == NOW_NS


def test_unfinished_base_points_are_the_creation_time():
    assert rpo.consume_point_ns(_channel(kind=BASE), "anything", _first_after(), NOW_NS, CREATED_NS) == CREATED_NS


def test_tunnel_point_is_the_slowest_unfinished_channel():
    tunnel = TunnelRecord("t1", "tab", "tun", STREAM, STAGE_STREAM, 0, "s", None, 0, 0, False)
    channels = [_channel(channel_id="a"), _channel(channel_id="b"), _channel(status=TERMINATED, channel_id="c"),
                _channel(kind=BASE, channel_id="BaseData_x")]
    state = TunnelState(tunnel, channels)
    tokens = {"a": "", "b": "", "c": "", "BaseData_x": "finished"}
    points = {"a": 30, "b": 20, "c": 10, "BaseData_x": 5}
    assert rpo.tunnel_point_ns(points, state, tokens, NOW_NS) == 20
    tokens["BaseData_x"] = "pk-token"
    assert rpo.tunnel_point_ns(points, state, tokens, NOW_NS) == 5
    finished = TunnelState(tunnel, [channels[2]])
    assert rpo.tunnel_point_ns({"c": 10}, finished, {"c": "finished"}, NOW_NS) == NOW_NS


def test_rpo_blobs_schema_and_limit():
    tunnel = TunnelRecord("t1", "tab", "tun", STREAM, STAGE_STREAM, 0, "s", None, 0, 0, False)
    slow, fast = _channel(channel_id="slow", count=3), _channel(channel_id="fast", count=4)
    fast.status = WAIT
    state = TunnelState(tunnel, [slow, fast])
    tokens = {"slow": _token(SequenceInfo(0, 2_000_000, 0)), "fast": _token(LAST)}
    log = _first_after(FIRST, SequenceInfo(0, 2_500_000, 0), LAST)
    infos, tunnel_infos = rpo.rpo_blobs(state, tokens, {"slow": 77}, log, NOW_NS)
    assert json.loads(infos) == {"t1": {
        "slow": {"ChannelTyp": "Stream", "Status": "OPEN", "TotalCount": 3,
                 "AccessTime": 77, "RpoTime": 2_500_000_000},
        "fast": {"ChannelTyp": "Stream", "Status": "WAIT", "TotalCount": 4, "AccessTime": 0, "RpoTime": NOW_NS},
    }}
    assert json.loads(tunnel_infos) == {"t1": {"Status": STAGE_STREAM, "TotalCount": 7, "AccessTime": 77,
                                               "RpoTime": 2_500_000_000}}
    limited, _ = rpo.rpo_blobs(state, tokens, {}, log, NOW_NS, limit=1)
    assert list(json.loads(limited)["t1"]) == ["slow"]
