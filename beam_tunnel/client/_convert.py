"""Conversions between protobuf messages and the value types of models.py.

Pure functions; argument checks raise ConfigError naming the bad value, so
a call with bad arguments fails before anything is sent.
"""

from __future__ import annotations

import datetime
import json
from typing import Any, Iterable, Mapping, Optional, Tuple, Union

from beam_tunnel.client.models import (
    Channel,
    ChannelInfo,
    ChannelStatus,
    ChannelType,
    StartOffset,
    TunnelInfo,
    TunnelStage,
    TunnelType,
)
from beam_tunnel.errors import ConfigError, ProtocolError
from beam_tunnel.protocol import tunnel_pb2 as pb

Offset = Union[StartOffset, str, int, datetime.datetime]

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)

# Any real offset is after 1973 in ns (1e17 ns); a smaller number is almost
# surely seconds, milliseconds or microseconds passed by mistake.
_MIN_PLAUSIBLE_NS = 10**17
_MAX_UINT64 = 2**64 - 1

_START_FLAGS = {StartOffset.LATEST: pb.LATEST, StartOffset.EARLIEST: pb.EARLIEST}


def require_text(name: str, value: Any) -> str:
    """``value`` when it is a non-empty string; otherwise ConfigError."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _time_ns(name: str, value: Union[int, datetime.datetime]) -> int:
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            raise ConfigError(f"{name} must be timezone-aware (e.g. tzinfo=timezone.utc), got {value!r}")
        delta = value - _EPOCH
        ns = (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000
    elif isinstance(value, int) and not isinstance(value, bool):
        ns = value
    else:
        raise ConfigError(f"{name} must be an int (ns since the epoch) or an aware datetime, got {value!r}")
    if not _MIN_PLAUSIBLE_NS <= ns <= _MAX_UINT64:
        raise ConfigError(
            f"{name} must be nanoseconds since the epoch (e.g. time.time_ns()), got {value!r}; "
            "seconds, milliseconds or microseconds are too small"
        )
    return ns


def stream_config(start_offset: Optional[Offset], end_offset) -> Optional[pb.StreamTunnelConfig]:
    """The wire StreamTunnelConfig for the offsets, or None when both are None.

    A flag (LATEST/EARLIEST) is sent only without a start time, as the Go and
    Java SDKs do; an end time alone goes with the LATEST flag.
    """
    if start_offset is None and end_offset is None:
        return None
    config = pb.StreamTunnelConfig()
    start_ns = None
    if start_offset is None:
        config.flag = pb.LATEST
    elif isinstance(start_offset, (StartOffset, str)):
        config.flag = _START_FLAGS[StartOffset.parse(start_offset, "start_offset")]
    else:
        start_ns = _time_ns("start_offset", start_offset)
        config.startOffset = start_ns
    if end_offset is not None:
        end_ns = _time_ns("end_offset", end_offset)
        if start_ns is not None and end_ns <= start_ns:
            raise ConfigError(f"end_offset ({end_offset!r}) must be after start_offset ({start_offset!r})")
        config.endOffset = end_ns
    return config


def _offsets_from_pb(config: pb.StreamTunnelConfig) -> Tuple[Union[StartOffset, int, None], Optional[int]]:
    start: Union[StartOffset, int, None] = None
    if config.HasField("startOffset") and config.startOffset:
        start = config.startOffset
    elif config.HasField("flag"):
        start = StartOffset.EARLIEST if config.flag == pb.EARLIEST else StartOffset.LATEST
    end = config.endOffset if config.HasField("endOffset") and config.endOffset else None
    return start, end


def tunnel_info_from_pb(info: pb.TunnelInfo) -> TunnelInfo:
    """A :class:`TunnelInfo` from the wire message."""
    start, end = (None, None)
    if info.HasField("stream_tunnel_config"):
        start, end = _offsets_from_pb(info.stream_tunnel_config)
    return TunnelInfo(
        tunnel_id=info.tunnel_id,
        tunnel_name=info.tunnel_name,
        table_name=info.table_name,
        instance_name=info.instance_name,
        tunnel_type=TunnelType._lenient(info.tunnel_type),
        stage=TunnelStage._lenient(info.stage),
        stream_id=info.stream_id,
        expired=info.expired,
        public=info.public,
        create_time_ns=info.create_time if info.HasField("create_time") else None,
        start_offset=start,
        end_offset_ns=end,
    )


def channel_info_from_pb(info: pb.ChannelInfo) -> ChannelInfo:
    """A :class:`ChannelInfo` from the wire message."""

    def optional(field: str):
        return getattr(info, field) if info.HasField(field) else None

    return ChannelInfo(
        channel_id=info.channel_id,
        channel_type=ChannelType._lenient(optional("channel_type")),
        status=ChannelStatus._lenient(optional("channel_status")),
        client_id=optional("client_id"),
        rpo_ns=optional("channel_rpo"),
        count=optional("channel_count"),
    )


def channel_to_pb(channel: Channel, target: pb.Channel) -> None:
    """Fill ``target`` from ``channel``."""
    if not isinstance(channel, Channel):
        raise ConfigError(f"channels must hold Channel values, got {channel!r}")
    target.channel_id = channel.channel_id
    target.version = channel.version
    target.status = pb.ChannelStatus.Value(channel.status.value)
    if channel.detail is not None:
        target.detail = channel.detail


def channel_from_pb(channel: pb.Channel) -> Channel:
    """A :class:`Channel` from the wire message."""
    return Channel(
        channel_id=channel.channel_id,
        version=channel.version,
        status=ChannelStatus(pb.ChannelStatus.Name(channel.status)),
        detail=channel.detail if channel.HasField("detail") else None,
    )


def schedule_channels(channels: Union[Mapping[str, Any], Iterable[Channel]]) -> Tuple[Channel, ...]:
    """Channels for a Schedule request from a mapping id -> status or Channels.

    The service ignores the version of scheduled channels; 0 is sent.
    """
    if isinstance(channels, Mapping):
        return tuple(Channel(require_text("channel id", cid), 0, status) for cid, status in channels.items())
    if isinstance(channels, (str, bytes)):
        raise ConfigError(f"channels must be a mapping of channel id to status or Channels, got {channels!r}")
    return tuple(channels)


def decode_json_blob(operation: str, field: str, blob: bytes, request_id: Optional[str]):
    """A JSON document from a bytes field ({} when empty)."""
    if not blob:
        return {}
    try:
        return json.loads(blob.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise ProtocolError(
            f"{operation}: {field} is not JSON ({len(blob)} bytes): {err}", request_id=request_id
        ) from None
