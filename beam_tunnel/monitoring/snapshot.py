"""The lag of one tunnel at one moment, built from DescribeTunnel. Pure.

A consume point is a time in ns since the epoch: the channel (or tunnel)
has consumed the changes written up to it (tunnel-protocol.md §4.6). The
lag is ``now - consume point``, where *now* is the service's clock, so a
monitoring machine whose clock is off does not misreport lag.

What DescribeTunnel does not say is left unknown rather than guessed:

* A consume point of 0 (or absent) means "not applicable" (a full-data
  channel on services that report 0 for them): no position, no lag.
* Records behind: the service reports how many records a channel has
  *read* (``channel_count``), not how many are waiting, so
  ``records_behind`` is always None and views say "unknown".

**Expiry.** Changes stay in the table's stream for its retention. A tunnel
that falls further behind than that loses data, and a BaseAndStream tunnel
whose full phase outlives it gets OTSTunnelExpired when it switches to the
stream. :class:`Expiry` is the time left before that happens::

    time left = consume point + retention - now = retention - lag

The consume point is the tunnel's (its slowest unfinished channel); during
the full phase of a BaseAndStream tunnel it is at most the tunnel's creation
time, since the stream part must still hold every change since then.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from beam_tunnel.client.models import TunnelDescription, TunnelStage, TunnelType

__all__ = ["Retention", "ChannelLag", "Expiry", "LagSnapshot", "build_snapshot"]

_FULL_PHASE_STAGES = (TunnelStage.INIT_BASE_DATA_AND_STREAM_SHARD, TunnelStage.PROCESS_BASE_DATA)


@dataclasses.dataclass(frozen=True)
class Retention:
    """How long the table's stream keeps changes.

    Attributes:
      seconds: the retention in seconds; None when unknown or the stream is off.
      source: where it came from: ``"DescribeTable"``, ``"--retention"``,
        ``"stream off"``, or ``"unknown: <why>"``.
    """

    seconds: Optional[float]
    source: str

    def __post_init__(self) -> None:
        if self.seconds is not None and (isinstance(self.seconds, bool) or not self.seconds > 0):
            raise ValueError(f"Retention.seconds must be > 0 or None, got {self.seconds!r}")


@dataclasses.dataclass(frozen=True)
class ChannelLag:
    """One channel of a :class:`LagSnapshot`.

    Attributes:
      channel_id: the channel's id.
      channel_type: ``BaseData`` or ``Stream`` ("" when the service sent none).
      status: WAIT, OPEN, CLOSING, CLOSE or TERMINATED ("" when absent).
      owner: the client id holding the channel, or None.
      consumed_through_ns: the channel's consume point (the position of its
        checkpoint, as a write time), None when the service reports none.
      lag_s: ``now - consumed_through``, in seconds, or None.
      records_read: the service's ``channel_count`` (records the channel has
        read), or None.
      records_behind: always None: no call reports a backlog in records.
    """

    channel_id: str
    channel_type: str
    status: str
    owner: Optional[str]
    consumed_through_ns: Optional[int]
    lag_s: Optional[float]
    records_read: Optional[int]
    records_behind: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class Expiry:
    """The expiry guard's view of a tunnel.

    Attributes:
      applies: False for tunnels with no stream part to expire (BaseData)
        or with no unfinished stream channel left.
      basis_ns: the consume point the stream must still hold, or None.
      time_left_s: seconds before the stream drops changes the tunnel still
        needs (0 or less: already happening); None when unknown.
      note: one line saying how the figure was found, or why it is missing.
    """

    applies: bool
    basis_ns: Optional[int]
    time_left_s: Optional[float]
    note: str


@dataclasses.dataclass(frozen=True)
class LagSnapshot:
    """The lag of one tunnel at one moment.

    Attributes:
      table_name, tunnel_name, tunnel_id: which tunnel.
      tunnel_type: BaseData, Stream or BaseAndStream.
      stage: the tunnel's stage (InitBaseDataAndStreamShard, ProcessBaseData,
        ProcessStream).
      expired: the service's ``expired`` flag.
      created_ns: the tunnel's creation time, or None.
      now_ns: the service's time when the snapshot was taken.
      consumed_through_ns: the tunnel's consume point (``tunnel_rpo``, the
        slowest unfinished channel's), or None when the service reports 0.
      lag_s: ``now - consumed_through``, in seconds, or None.
      channels: per channel, in the service's order.
      retention: the stream retention used by the guard.
      expiry: the expiry guard's figures.
    """

    table_name: str
    tunnel_name: str
    tunnel_id: str
    tunnel_type: str
    stage: str
    expired: bool
    created_ns: Optional[int]
    now_ns: int
    consumed_through_ns: Optional[int]
    lag_s: Optional[float]
    channels: Tuple[ChannelLag, ...]
    retention: Retention
    expiry: Expiry


def _point(value: Optional[int]) -> Optional[int]:
    return value if value else None


def _lag_s(now_ns: int, point_ns: Optional[int]) -> Optional[float]:
    return None if point_ns is None else (now_ns - point_ns) / 1e9


def _text(value) -> str:
    return "" if value is None else str(value)


def build_snapshot(description: TunnelDescription, now_ns: int, retention: Retention) -> LagSnapshot:
    """A :class:`LagSnapshot` of ``description`` (DescribeTunnel's answer)
    at the service time ``now_ns``, with the stream ``retention``."""
    if isinstance(now_ns, bool) or not isinstance(now_ns, int) or now_ns <= 0:
        raise ValueError(f"now_ns must be a positive int (ns since the epoch), got {now_ns!r}")
    tunnel = description.tunnel
    channels = tuple(
        ChannelLag(
            channel_id=channel.channel_id,
            channel_type=_text(channel.channel_type),
            status=_text(channel.status),
            owner=channel.client_id or None,
            consumed_through_ns=_point(channel.rpo_ns),
            lag_s=_lag_s(now_ns, _point(channel.rpo_ns)),
            records_read=channel.count,
        )
        for channel in description.channels
    )
    point = _point(description.tunnel_rpo_ns)
    return LagSnapshot(
        table_name=tunnel.table_name,
        tunnel_name=tunnel.tunnel_name,
        tunnel_id=tunnel.tunnel_id,
        tunnel_type=_text(tunnel.tunnel_type),
        stage=_text(tunnel.stage),
        expired=bool(tunnel.expired),
        created_ns=_point(tunnel.create_time_ns),
        now_ns=now_ns,
        consumed_through_ns=point,
        lag_s=_lag_s(now_ns, point),
        channels=channels,
        retention=retention,
        expiry=_expiry(description, now_ns, retention),
    )


def _expiry(description: TunnelDescription, now_ns: int, retention: Retention) -> Expiry:
    tunnel = description.tunnel
    if tunnel.expired:
        return Expiry(True, None, 0.0, "the service marked the tunnel expired (OTSTunnelExpired)")
    if tunnel.tunnel_type == TunnelType.BASE_DATA:
        return Expiry(False, None, None, "a full-data tunnel reads no stream: nothing expires")
    point = _point(description.tunnel_rpo_ns)
    created = _point(tunnel.create_time_ns)
    in_full_phase = tunnel.tunnel_type == TunnelType.BASE_AND_STREAM and tunnel.stage in _FULL_PHASE_STAGES
    if in_full_phase and created is not None:
        basis = created if point is None else min(point, created)
        how = "full phase: the stream must still hold every change since the tunnel was created"
    elif point is not None:
        basis = point
        how = "retention minus the tunnel lag"
    else:
        return Expiry(False, None, None, "no unfinished stream channel reports a consume point")
    if retention.seconds is None:
        return Expiry(True, basis, None, f"stream retention not known ({retention.source}); pass --retention")
    time_left = basis / 1e9 + retention.seconds - now_ns / 1e9
    return Expiry(True, basis, time_left, how)
