"""Channel rules: leases, the version state machine, WAIT, balancing, Schedule.

Pure functions over a :class:`~.tunnel_store.TunnelState`; no I/O, time is
passed in. The rules follow what the official workers expect
(tunnel-protocol.md §4.2, §4.3):

* Every server-side transition bumps the channel's version. A client's
  report is applied only when its version is greater than the stored one;
  anything else is stale or an echo and changes nothing.
* Assigning: an unowned channel goes to a client as ``OPEN v+1``.
* Moving: the owner gets ``CLOSING v+1`` and keeps the channel until it
  answers ``CLOSE v+2`` (or its lease ends); only then may another client get
  it, as ``OPEN v+3``. A channel is never handed to a new owner earlier.
* A client reporting ``CLOSE`` (failure or answer to CLOSING) releases the
  channel; reporting ``TERMINATED`` finishes it for good.
* A lease ends when no heartbeat came within the client's timeout, or on
  Shutdown: the client's channels are released as ``CLOSE v+1``.
* WAIT: a channel whose predecessors have not finished is not assignable -
  stream channels of a BaseAndStream tunnel until every base channel is
  TERMINATED, a child partition's channel until all its parents are.
* Balance: assignable channels are spread evenly over live clients; owners
  keep what they have up to their share, so nothing moves needlessly.
"""

from __future__ import annotations

import logging
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from .. import errors
from .tunnel_store import (
    BASE,
    BASE_AND_STREAM,
    CLOSE,
    CLOSING,
    OPEN,
    STREAM,
    TERMINATED,
    WAIT,
    ChannelRecord,
    ClientRecord,
    TunnelState,
)

__all__ = [
    "SHUTDOWN",
    "end_lease",
    "lease_lapsed",
    "expire_leases",
    "is_blocked",
    "base_phase_done",
    "merge_reports",
    "balance",
    "assigned_to",
    "display_status",
    "schedule",
]

_LOGGER = logging.getLogger(__name__)

SHUTDOWN = "shutdown"
"""The reason recorded for a lease ended by ShutdownTunnel."""

# Statuses a client may report, by their ChannelStatus enum number.
_REPORTABLE = {1: OPEN, 2: CLOSING, 3: CLOSE, 4: TERMINATED}


def _release(channel: ChannelRecord) -> None:
    """The owner let go (or lost its lease): the channel waits for a new owner."""
    if channel.status != TERMINATED:
        channel.status = CLOSE
        channel.version += 1
    channel.owner = None
    channel.released_by = None


def end_lease(state: TunnelState, client_id: str, now_us: int, reason: str) -> None:
    """End a client's lease and release everything it owns. On ``shutdown``
    each released channel remembers the client (``released_by``), whose
    final checkpoints may still come (see ``dataplane.py``)."""
    client = state.clients[client_id]
    if not client.alive:
        return
    client.gone_us = now_us
    client.gone_reason = reason
    for channel in state.channels.values():
        if channel.owner == client_id:
            _release(channel)
            if reason == SHUTDOWN:
                channel.released_by = client_id
    _LOGGER.info("[tunnel] %s: client %s lease ended (%s)", state.tunnel.tunnel_id, client_id, reason)


def lease_lapsed(client: ClientRecord, now_us: int, pending_us: Optional[int] = None) -> bool:
    """True when no heartbeat came within the client's timeout.

    A heartbeat that arrived (at ``pending_us``) while the lease was alive
    and still waits for the emulator keeps it alive however long the wait:
    the time the emulator takes to answer is never held against the client.
    """
    if pending_us is not None and client.last_seen_us <= pending_us <= client.last_seen_us + client.timeout_us:
        return False
    return now_us - client.last_seen_us > client.timeout_us


def expire_leases(state: TunnelState, now_us: int, pending: Optional[Dict[str, int]] = None) -> List[str]:
    """End the lease of every client with no heartbeat within its timeout.

    Args:
      pending: client id -> arrival µs of its oldest heartbeat not yet
        answered (see :func:`lease_lapsed`).

    Returns:
      The ids of the clients whose lease ended now.
    """
    pending = pending or {}
    expired = [
        c.client_id for c in state.live_clients()
        if lease_lapsed(c, now_us, pending.get(c.client_id))
    ]
    for client_id in expired:
        end_lease(state, client_id, now_us, "heartbeat timeout")
    return expired


def base_phase_done(state: TunnelState) -> bool:
    """True when every base channel is TERMINATED (vacuously for Stream tunnels)."""
    return all(c.status == TERMINATED for c in state.channels.values() if c.kind == BASE)


def is_blocked(state: TunnelState, channel: ChannelRecord) -> bool:
    """True while a predecessor of ``channel`` is unfinished (it shows WAIT)."""
    if channel.kind == STREAM and state.tunnel.tunnel_type == BASE_AND_STREAM:
        if not base_phase_done(state) or state.tunnel.expired:
            return True
    for parent_id in channel.parents:
        parent = state.channels.get(parent_id)
        # A parent without a channel had nothing for this tunnel to read.
        if parent is not None and parent.status != TERMINATED:
            return True
    return False


def _assignable(state: TunnelState, channel: ChannelRecord) -> bool:
    return channel.status != TERMINATED and not channel.suspended and not is_blocked(state, channel)


def merge_reports(state: TunnelState, client_id: str, reports: Iterable[Tuple[str, int, int]]) -> None:
    """Apply one heartbeat's channel reports ``(channel_id, version, status)``.

    Reports for channels the client does not own, with a version not above
    the stored one, or with a status a client cannot move to, are ignored:
    the reply (which leaves such channels out or restates them) corrects the
    client.
    """
    for channel_id, version, status_number in reports:
        channel = state.channels.get(channel_id)
        status = _REPORTABLE.get(status_number)
        if channel is None or channel.owner != client_id or status is None:
            continue
        if version <= channel.version:
            if status == TERMINATED and channel.status == TERMINATED and version == channel.version:
                # The owner acknowledged a TERMINATED we sent (Schedule); it
                # no longer needs to hear about the channel.
                channel.owner = None
            continue
        if status == CLOSE:
            channel.status = CLOSE
            channel.version = version
            channel.owner = None
        elif status == TERMINATED:
            channel.status = TERMINATED
            channel.version = version
            channel.owner = None
        else:
            _LOGGER.info(
                "[tunnel] %s: ignored %s v%d for channel %s from %s: clients may only close or finish",
                state.tunnel.tunnel_id, status, version, channel_id, client_id,
            )


def balance(state: TunnelState) -> None:
    """Spread assignable channels evenly over the live clients.

    Each client's share is ``n // k`` or one more; the larger shares go to
    the clients already holding the most, then to the earliest connected.
    Clients above their share get CLOSING for their highest-id excess
    channels; unowned channels go to the clients furthest below their share
    (earliest connected first), lowest channel id first.
    """
    clients = state.live_clients()
    if not clients:
        return
    pool = [c for c in state.sorted_channels() if _assignable(state, c)]
    order = {c.client_id: index for index, c in enumerate(clients)}
    held: Dict[str, List[ChannelRecord]] = {c.client_id: [] for c in clients}
    for channel in pool:
        if channel.owner in held and channel.status == OPEN:
            held[channel.owner].append(channel)
    share, extra = divmod(len(pool), len(clients))
    by_load = sorted(clients, key=lambda c: (-len(held[c.client_id]), order[c.client_id]))
    quota = {c.client_id: share + (1 if index < extra else 0) for index, c in enumerate(by_load)}

    for client_id, channels in held.items():
        excess = len(channels) - quota[client_id]
        if excess > 0:
            for channel in sorted(channels, key=lambda c: c.channel_id, reverse=True)[:excess]:
                channel.status = CLOSING
                channel.version += 1
            held[client_id] = [c for c in channels if c.status == OPEN]

    for channel in pool:
        if channel.owner is not None:
            continue
        client_id = min(held, key=lambda cid: (len(held[cid]) - quota[cid], order[cid]))
        if len(held[client_id]) >= quota[client_id]:
            break  # cannot happen: shares add up to the pool size
        channel.status = OPEN
        channel.version += 1
        channel.owner = client_id
        channel.released_by = None
        held[client_id].append(channel)


def assigned_to(state: TunnelState, client_id: str) -> List[ChannelRecord]:
    """The channels a heartbeat reply lists for ``client_id``."""
    return [c for c in state.sorted_channels() if c.owner == client_id]


def display_status(state: TunnelState, channel: ChannelRecord) -> str:
    """The status DescribeTunnel shows: WAIT for a never-opened or blocked
    unowned channel, otherwise the stored one."""
    if channel.owner is None and channel.status != TERMINATED:
        if channel.status == WAIT or is_blocked(state, channel):
            return WAIT
    return channel.status


def schedule(state: TunnelState, requests: Sequence[Tuple[str, int]]) -> None:
    """Set channel statuses administratively (Schedule).

    ``OPEN`` resumes a suspended channel (it is assigned by the next
    balancing, still subject to WAIT); ``CLOSING`` suspends it (its owner
    gets CLOSING and must answer CLOSE; it is not reassigned until resumed);
    ``TERMINATED`` finishes it, so its successors may open.

    Raises:
      ServiceError: OTSParameterInvalid for an unknown channel, a status
        other than those three, or reopening a TERMINATED channel; nothing is
        changed then.
    """
    tunnel_id = state.tunnel.tunnel_id
    checked: List[Tuple[ChannelRecord, str]] = []
    for channel_id, status_number in requests:
        channel = state.channels.get(channel_id)
        if channel is None:
            raise errors.parameter_invalid(f"channel {channel_id!r} does not exist in tunnel {tunnel_id}")
        status = _REPORTABLE.get(status_number)
        if status not in (OPEN, CLOSING, TERMINATED):
            raise errors.parameter_invalid(
                f"Schedule takes status OPEN, CLOSING or TERMINATED, got {status or status_number!r} "
                f"for channel {channel_id!r}"
            )
        if channel.status == TERMINATED and status != TERMINATED:
            raise errors.parameter_invalid(f"channel {channel_id!r} is TERMINATED and cannot be {status}")
        checked.append((channel, status))
    for channel, status in checked:
        if status == OPEN:
            channel.suspended = False
        elif status == CLOSING:
            channel.suspended = True
            if channel.owner is not None and channel.status == OPEN:
                channel.status = CLOSING
                channel.version += 1
        elif channel.status != TERMINATED:
            channel.status = TERMINATED
            channel.version += 1
            # The owner (if any) still hears of it once, and acknowledges.

