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


def _bounds(first=FIRST, last=LAST):
    return lambda partition_id: (first, last)


def test_stream_points():
    channel = _channel()
    assert rpo.consume_point_ns(channel, _token(SequenceInfo(0, 2_000_000, 7)), _bounds(), NOW_NS) == 2_000_000_000
    # Caught up (at or past the last record), or an empty log: now.
    assert rpo.consume_point_ns(channel, _token(LAST), _bounds(), NOW_NS) == NOW_NS
    assert rpo.consume_point_ns(channel, _token(None), _bounds(None, None), NOW_NS) == NOW_NS
    # No position yet: just before the first record kept.
    assert rpo.consume_point_ns(channel, _token(None), _bounds(), NOW_NS) == 999_999_000
    # Finished: the last record's write time.
    assert rpo.consume_point_ns(channel, "finished", _bounds(), NOW_NS) == 3_000_000_000
    assert rpo.consume_point_ns(_channel(status=TERMINATED), _token(FIRST), _bounds(), NOW_NS) == 3_000_000_000


def test_base_points_are_zero():
    assert rpo.consume_point_ns(_channel(kind=BASE), "anything", _bounds(), NOW_NS) == 0


def test_tunnel_point_is_the_slowest_unfinished_stream_channel():
    tunnel = TunnelRecord("t1", "tab", "tun", STREAM, STAGE_STREAM, 0, "s", None, 0, 0, False)
    channels = [_channel(channel_id="a"), _channel(channel_id="b"), _channel(status=TERMINATED, channel_id="c"),
                _channel(kind=BASE, channel_id="BaseData_x")]
    state = TunnelState(tunnel, channels)
    points = {"a": 30, "b": 20, "c": 10, "BaseData_x": 0}
    assert rpo.tunnel_point_ns(points, state) == 20
    assert rpo.tunnel_point_ns({"BaseData_x": 0}, TunnelState(tunnel, [channels[3]])) == 0


def test_rpo_blobs_schema_and_limit():
    tunnel = TunnelRecord("t1", "tab", "tun", STREAM, STAGE_STREAM, 0, "s", None, 0, 0, False)
    slow, fast = _channel(channel_id="slow", count=3), _channel(channel_id="fast", count=4)
    fast.status = WAIT
    state = TunnelState(tunnel, [slow, fast])
    tokens = {"slow": _token(SequenceInfo(0, 2_000_000, 0)), "fast": _token(LAST)}
    infos, tunnel_infos = rpo.rpo_blobs(state, tokens, {"slow": 77}, _bounds(), NOW_NS)
    assert json.loads(infos) == {"t1": {
        "slow": {"ChannelTyp": "Stream", "Status": "OPEN", "TotalCount": 3,
                 "AccessTime": 77, "RpoTime": 2_000_000_000},
        "fast": {"ChannelTyp": "Stream", "Status": "WAIT", "TotalCount": 4, "AccessTime": 0, "RpoTime": NOW_NS},
    }}
    assert json.loads(tunnel_infos) == {"t1": {"Status": STAGE_STREAM, "TotalCount": 7, "AccessTime": 77,
                                               "RpoTime": 2_000_000_000}}
    limited, _ = rpo.rpo_blobs(state, tokens, {}, _bounds(), NOW_NS, limit=1)
    assert list(json.loads(limited)["t1"]) == ["slow"]
