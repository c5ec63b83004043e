"""Consume points (RPO) of channels and tunnels, and the GetRpo JSON blobs.

A channel's consume point T (ns since the epoch) means **complete through
T**: every record the channel will still deliver from its committed
checkpoint has a write time >= T. One rule, monotonic for a channel whose
checkpoints only move forward:

* stream channel (OPEN, CLOSING, CLOSE or WAIT - a BaseAndStream tunnel's
  stream channel before the full phase ends, a child before its parents
  end): T = min(now, write time of the first retained record of its log
  after the checkpoint position); T = now when there is none. Before the
  first checkpoint the position is the channel's start (startOffset,
  creation time for LATEST and BaseAndStream, the oldest record for
  EARLIEST).
* full-data channel, not finished: T = the tunnel's creation time. Its
  records carry no write time; a reader gives them the tunnel's snapshot
  time, which is also where a BaseAndStream tunnel's stream part starts.
* finished channel (checkpoint ``finished`` or TERMINATED, either kind):
  it delivers nothing more, so T = now.
* tunnel: the smallest T of its unfinished channels; now when all are
  finished (or it has none).

"now" is :meth:`~.timeline.Timeline.complete_through_us`: the clock, never
smaller than an earlier answer and never after a write still committing,
so a new record never lands before a T already reported and a caught-up
channel's T does not jump back when data arrives. The rule is derived from
persisted state (checkpoints, the log, the last write time), so it holds
across restarts too.

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

__all__ = ["token_position", "is_finished", "consume_point_ns", "tunnel_point_ns", "rpo_blobs"]

# first_after(partition_id, position) -> the first retained log position
# after ``position`` (None: from the oldest), or None when there is none.
FirstAfter = Callable[[str, Optional[SequenceInfo]], Optional[SequenceInfo]]


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


def is_finished(channel: ChannelRecord, token: str) -> bool:
    """True when ``channel`` standing at ``token`` will deliver nothing more."""
    return token == FINISHED or channel.status == TERMINATED


def consume_point_ns(channel: ChannelRecord, token: str, first_after: FirstAfter, now_ns: int,
                     created_ns: int) -> int:
    """The consume point of ``channel`` when its reader stands at ``token``
    (rule in the module doc); ``created_ns`` is the tunnel's creation time."""
    if is_finished(channel, token):
        return now_ns
    if channel.kind == BASE:
        return created_ns
    following = first_after(channel.partition_id, token_position(token))
    if following is None:
        return now_ns
    return min(now_ns, following.timestamp * 1000)


def tunnel_point_ns(points: Dict[str, int], state: TunnelState, tokens: Dict[str, str], now_ns: int) -> int:
    """The slowest unfinished channel's point; ``now_ns`` when all are finished."""
    live = [points[c.channel_id] for c in state.channels.values() if not is_finished(c, tokens[c.channel_id])]
    return min(live, default=now_ns)


def rpo_blobs(
    state: TunnelState,
    tokens: Dict[str, str],
    access_ns: Dict[str, int],
    first_after: FirstAfter,
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
    created_ns = state.tunnel.create_us * 1000
    points = {
        c.channel_id: consume_point_ns(c, tokens[c.channel_id], first_after, now_ns, created_ns) for c in channels
    }
    if limit > 0:
        channels = sorted(channels, key=lambda c: (points[c.channel_id], c.channel_id))[:limit]
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
        "RpoTime": tunnel_point_ns(points, state, tokens, now_ns),
    }
    return (
        json.dumps({tunnel_id: per_channel}, sort_keys=True).encode("utf-8"),
        json.dumps({tunnel_id: tunnel_info}, sort_keys=True).encode("utf-8"),
    )
