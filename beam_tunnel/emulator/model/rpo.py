"""Consume points (RPO) of channels and tunnels, and the GetRpo JSON blobs.

A stream channel's consume point is a time in **ns since the epoch**:

* the write time of the last record its token has passed (the token's
  iterator position), or
* "now" when the token is caught up with the log (nothing left to read), or
* just before the first record still in the log when the token has no
  position yet (an EARLIEST start).

A finished stream channel's point is the write time of its log's last
record (or now for an empty log). Base channels have point 0. A tunnel's
point is the slowest unfinished stream channel's (0 when it has none).

GetRpo schema (this emulator's choice; the Go SDK decodes the blobs as
``map[string]map[string]RpoLatency`` and ``map[string]TunnelRpoLatency``)::

    rpo_infos        = {"<tunnel id>": {"<channel id>": {
                           "ChannelTyp": "BaseData" | "Stream",
                           "Status": "WAIT" | "OPEN" | ... (as DescribeTunnel),
                           "TotalCount": records read (as channel_count),
                           "AccessTime": last ReadRecords, ns (0 = never),
                           "RpoTime": consume point, ns}}}
    tunnel_rpo_infos = {"<tunnel id>": {
                           "Status": the stage, or "Expired",
                           "TotalCount": sum over channels,
                           "AccessTime": latest channel AccessTime, ns,
                           "RpoTime": tunnel consume point, ns}}

GetRpo takes positions from checkpoints; GetRpoByOffset from the last token
each channel's reader was given (falling back to the checkpoint).
"""

from __future__ import annotations

import json
from typing import Callable, Dict, List, Optional, Tuple

from beam_tunnel.protocol.rows import SequenceInfo
from beam_tunnel.protocol.tokens import FINISHED, TokenError, decode_stream_iterator, decode_token

from .channels import display_status
from .tunnel_store import BASE, TERMINATED, ChannelRecord, TunnelState

__all__ = ["token_position", "consume_point_ns", "tunnel_point_ns", "rpo_blobs"]

# bounds(partition_id) -> (first, last) sequences of the partition's log.
Bounds = Callable[[str], Tuple[Optional[SequenceInfo], Optional[SequenceInfo]]]


def token_position(token: str) -> Optional[SequenceInfo]:
    """The iterator position of a stream token; None when it has none (an
    EARLIEST start) or is not a stream token."""
    try:
        content = decode_token(token)
        if content.iterator is None:
            return None
        return decode_stream_iterator(content.iterator).position
    except TokenError:
        return None


def consume_point_ns(channel: ChannelRecord, token: str, bounds: Bounds, now_ns: int) -> int:
    """The consume point of ``channel`` when its reader stands at ``token``."""
    if channel.kind == BASE:
        return 0
    first, last = bounds(channel.partition_id)
    if token == FINISHED or channel.status == TERMINATED:
        return last.timestamp * 1000 if last is not None else now_ns
    position = token_position(token)
    if last is None or (position is not None and position >= last):
        return now_ns
    if position is None:
        return (first.timestamp - 1) * 1000
    return position.timestamp * 1000


def tunnel_point_ns(points: Dict[str, int], state: TunnelState) -> int:
    """The slowest unfinished stream channel's point, 0 when there is none."""
    live = [
        points[c.channel_id]
        for c in state.channels.values()
        if c.kind != BASE and c.status != TERMINATED
    ]
    return min(live) if live else 0


def rpo_blobs(
    state: TunnelState,
    tokens: Dict[str, str],
    access_ns: Dict[str, int],
    bounds: Bounds,
    now_ns: int,
    limit: int = 0,
) -> Tuple[bytes, bytes]:
    """The ``(rpo_infos, tunnel_rpo_infos)`` JSON blobs (schema in the module doc).

    Args:
      tokens: channel id -> the token to measure from.
      access_ns: channel id -> last ReadRecords time in ns (missing = never).
      limit: when > 0, only the ``limit`` slowest channels are listed.
    """
    channels = state.sorted_channels()
    points = {c.channel_id: consume_point_ns(c, tokens[c.channel_id], bounds, now_ns) for c in channels}
    if limit > 0:
        # Slowest first; base channels (point 0) are "slowest" only in name.
        channels = sorted(channels, key=lambda c: (c.kind == BASE, points[c.channel_id], c.channel_id))[:limit]
    tunnel_id = state.tunnel.tunnel_id
    per_channel = {
        c.channel_id: {
            "ChannelTyp": c.kind,
            "Status": display_status(state, c),
            "TotalCount": c.count,
            "AccessTime": access_ns.get(c.channel_id, 0),
            "RpoTime": points[c.channel_id],
        }
        for c in channels
    }
    all_channels: List[ChannelRecord] = list(state.channels.values())
    tunnel_info = {
        "Status": "Expired" if state.tunnel.expired else state.tunnel.stage,
        "TotalCount": sum(c.count for c in all_channels),
        "AccessTime": max([access_ns.get(c.channel_id, 0) for c in all_channels], default=0),
        "RpoTime": tunnel_point_ns(points, state),
    }
    return (
        json.dumps({tunnel_id: per_channel}, sort_keys=True).encode("utf-8"),
        json.dumps({tunnel_id: tunnel_info}, sort_keys=True).encode("utf-8"),
    )
