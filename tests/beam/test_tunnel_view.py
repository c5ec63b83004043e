"""The tunnel-wide facts every slot derives from DescribeTunnel: the
watermark bound and, for bounded reads, which channels are still open."""

from __future__ import annotations

from beam_tunnel.beam._tunnel_view import held_by, uncovered, watermark_bound_us
from beam_tunnel.client.models import ChannelInfo, ChannelStatus, ChannelType, TunnelDescription, TunnelInfo

_CREATED_US = 1_700_000_000_000_000


def _description(*channels):
    tunnel = TunnelInfo("tid", "name", "table", "instance", "BaseAndStream", "ProcessBaseData",
                        create_time_ns=_CREATED_US * 1000)
    return TunnelDescription(tunnel, tuple(channels))


def _channel(cid, kind, status, rpo_us, client=""):
    return ChannelInfo(cid, kind, status, client, rpo_us * 1000)


def test_full_data_channels_hold_the_bound_at_the_creation_time_whatever_the_service_reports():
    description = _description(
        _channel("base", ChannelType.BASE_DATA, ChannelStatus.OPEN, 0),
        _channel("stream", ChannelType.STREAM, ChannelStatus.WAIT, _CREATED_US + 5_000_000),
    )
    assert watermark_bound_us(description) == _CREATED_US


def test_the_slowest_unfinished_channel_sets_the_bound_and_finished_ones_do_not():
    description = _description(
        _channel("done", ChannelType.BASE_DATA, ChannelStatus.TERMINATED, 0),
        _channel("a", ChannelType.STREAM, ChannelStatus.OPEN, _CREATED_US + 9_000_000, "me"),
        _channel("b", ChannelType.STREAM, ChannelStatus.OPEN, _CREATED_US + 7_000_000, "other"),
    )
    assert watermark_bound_us(description) == _CREATED_US + 7_000_000


def test_no_unfinished_channel_means_no_bound():
    description = _description(_channel("done", ChannelType.BASE_DATA, ChannelStatus.TERMINATED, 0))
    assert watermark_bound_us(description) is None


def test_a_bounded_read_waits_for_channels_neither_finished_nor_committed_past_the_stop():
    stop = _CREATED_US + 10_000_000
    description = _description(
        _channel("finished", ChannelType.BASE_DATA, ChannelStatus.TERMINATED, 0),
        _channel("mine", ChannelType.STREAM, ChannelStatus.OPEN, _CREATED_US, "me"),
        _channel("past", ChannelType.STREAM, ChannelStatus.OPEN, stop, "other"),
        _channel("behind", ChannelType.STREAM, ChannelStatus.OPEN, stop - 1, "other"),
        _channel("waiting", ChannelType.STREAM, ChannelStatus.WAIT, stop - 1),
        _channel("base", ChannelType.BASE_DATA, ChannelStatus.OPEN, stop + 1, "other"),
    )
    assert uncovered(description, stop, "me") == ("behind", "waiting", "base")
    assert uncovered(description, None, "me") == ("past", "behind", "waiting", "base")
    assert held_by(description, ("behind", "base"), ("other",))
    assert not held_by(description, ("behind", "waiting"), ("other",)), "nobody holds a waiting channel"
    assert not held_by(description, ("behind",), ("sibling",))
