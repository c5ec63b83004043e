"""What the whole tunnel looks like: DescribeTunnel, cached, and what follows.

Every slot needs two tunnel-wide facts that no single client knows:

* the **watermark bound**: a channel can move to this slot and be re-read
  from its last *committed* checkpoint, so no slot may put its watermark
  past the slowest channel's committed consume point, owned or not;
* for bounded reads, whether every channel is **covered**: finished, or
  committed past the stop time.

Both come from DescribeTunnel's per-channel consume points, read at most once
per ``refresh_s`` per process (slots of one worker share the answer).

The consume point rule relied on (the emulator's, see its ``rpo`` module): a
stream channel's point means "complete through T": nothing it will still
deliver from its committed checkpoint was written before T. Full-data
channels are taken to be at the tunnel's creation time, the event time given
to full-data records, whatever the service reports for them; finished
channels are ignored. A stream channel reporting no point (0) holds the
bound where it is.
"""

from __future__ import annotations

import threading
import time
from typing import Dict, Optional, Tuple

from beam_tunnel.client.models import ChannelStatus, ChannelType, TunnelDescription
from beam_tunnel.client.tunnel_client import TunnelClient

_CACHE_LOCK = threading.Lock()
_CACHE: Dict[Tuple[str, str, str], Tuple[float, TunnelDescription]] = {}


def describe(client: TunnelClient, table: str, tunnel: str, refresh_s: float) -> TunnelDescription:
    """DescribeTunnel, answered from this process's cache when fresh enough."""
    key = (client.config.endpoint, table, tunnel)
    now = time.monotonic()
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
    if cached is not None and now - cached[0] < refresh_s:
        return cached[1]
    description = client.describe_tunnel(table, tunnel)
    with _CACHE_LOCK:
        _CACHE[key] = (time.monotonic(), description)
    return description


def snapshot_us(description: TunnelDescription) -> int:
    """The event time of full-data records: the tunnel's creation, in µs."""
    created = description.tunnel.create_time_ns
    return 0 if not created else created // 1000


def _finished(status) -> bool:
    return status == ChannelStatus.TERMINATED


def watermark_bound_us(description: TunnelDescription) -> Optional[int]:
    """The highest watermark no channel of the tunnel can fall behind, in µs.

    None when the tunnel has no unfinished channel (nothing can arrive).
    """
    snapshot = snapshot_us(description)
    bound: Optional[int] = None
    for channel in description.channels:
        if _finished(channel.status):
            continue
        if channel.channel_type == ChannelType.BASE_DATA:
            point = snapshot
        else:
            point = (channel.rpo_ns or 0) // 1000
        bound = point if bound is None else min(bound, point)
    return bound


def uncovered(description: TunnelDescription, stop_us: Optional[int], client_id: str) -> Tuple[str, ...]:
    """Channels a bounded read still waits for, apart from this slot's own.

    A channel is covered when it is finished, when it is a stream channel
    committed past ``stop_us`` (complete through a time at or after it), or
    when this client holds it (the slot judges those itself).
    """
    waiting = []
    for channel in description.channels:
        if _finished(channel.status) or (channel.client_id and channel.client_id == client_id):
            continue
        if (
            stop_us is not None
            and channel.channel_type == ChannelType.STREAM
            and (channel.rpo_ns or 0) // 1000 >= stop_us
        ):
            continue
        waiting.append(channel.channel_id)
    return tuple(waiting)


def held_by(description: TunnelDescription, channel_ids, client_ids) -> bool:
    """True when every channel in ``channel_ids`` is held by one of ``client_ids``."""
    by_id = {c.channel_id: c for c in description.channels}
    return all(by_id.get(cid) is not None and by_id[cid].client_id in client_ids for cid in channel_ids)
