"""Lag snapshots as a text table (people) and as JSON-ready dicts (scripts). Pure.

The text columns:

=================  ==========================================================
CHANNEL            the channel id
TYPE               BaseData (full data) or Stream (incremental changes)
STATUS             WAIT, OPEN, CLOSING, CLOSE or TERMINATED
OWNER              the client id holding the channel (``-``: none)
CONSUMED THROUGH   the channel's consume point (its checkpointed position,
                   as a write time, UTC): changes up to it are consumed
LAG                now - consumed through (the channel's RPO)
READ               records the channel has read, as the service counts them
=================  ==========================================================
"""

from __future__ import annotations

import datetime
from typing import Any, Dict, List, Optional

from .durations import format_duration
from .guard import Verdict
from .snapshot import LagSnapshot

__all__ = ["format_time", "snapshot_to_dict", "render_text"]

RECORDS_BEHIND_NOTE = "records behind: unknown (the service reports records read per channel, not a backlog)"

_COLUMNS = ("CHANNEL", "TYPE", "STATUS", "OWNER", "CONSUMED THROUGH (UTC)", "LAG", "READ")


def format_time(ns: Optional[int]) -> str:
    """``2026-12-01T15:25:01.123Z`` for ns since the epoch; ``-`` for None."""
    if ns is None:
        return "-"
    when = datetime.datetime.fromtimestamp(ns // 1000 / 1e6, tz=datetime.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def snapshot_to_dict(snapshot: LagSnapshot, verdict: Verdict) -> Dict[str, Any]:
    """A JSON-ready dict: times in ns since the epoch (``*_ns``) and as text,
    durations in seconds (``*_s``), unknowns as null."""
    expiry = snapshot.expiry
    return {
        "table": snapshot.table_name,
        "tunnel": snapshot.tunnel_name,
        "tunnel_id": snapshot.tunnel_id,
        "tunnel_type": snapshot.tunnel_type,
        "stage": snapshot.stage,
        "expired": snapshot.expired,
        "created_ns": snapshot.created_ns,
        "now_ns": snapshot.now_ns,
        "now": format_time(snapshot.now_ns),
        "consumed_through_ns": snapshot.consumed_through_ns,
        "consumed_through": format_time(snapshot.consumed_through_ns),
        "lag_s": snapshot.lag_s,
        "retention_s": snapshot.retention.seconds,
        "retention_source": snapshot.retention.source,
        "expiry": {
            "applies": expiry.applies,
            "basis_ns": expiry.basis_ns,
            "time_left_s": expiry.time_left_s,
            "note": expiry.note,
        },
        "level": verdict.level.name,
        "exit_code": verdict.level.exit_code,
        "reasons": list(verdict.reasons),
        "channels": [
            {
                "channel_id": channel.channel_id,
                "type": channel.channel_type,
                "status": channel.status,
                "owner": channel.owner,
                "consumed_through_ns": channel.consumed_through_ns,
                "consumed_through": format_time(channel.consumed_through_ns),
                "lag_s": channel.lag_s,
                "records_read": channel.records_read,
                "records_behind": channel.records_behind,
            }
            for channel in snapshot.channels
        ],
    }


def render_text(snapshot: LagSnapshot, verdict: Verdict) -> str:
    """The snapshot as a few header lines and a channel table."""
    expiry = snapshot.expiry
    lines = [
        f"tunnel {snapshot.tunnel_name!r} ({snapshot.tunnel_id}) on table {snapshot.table_name!r}: "
        f"{snapshot.tunnel_type}, stage {snapshot.stage}{', EXPIRED' if snapshot.expired else ''}",
        f"  now {format_time(snapshot.now_ns)} (service clock)   tunnel lag {format_duration(snapshot.lag_s)}"
        f"   consumed through {format_time(snapshot.consumed_through_ns)}",
    ]
    retention = (format_duration(snapshot.retention.seconds) if snapshot.retention.seconds else "?")
    if expiry.applies:
        guard = f"time left {format_duration(expiry.time_left_s)} ({expiry.note})"
    else:
        guard = f"not applicable ({expiry.note})"
    lines.append(f"  expiry guard: retention {retention} ({snapshot.retention.source}), {guard}   "
                 f"[{verdict.level.name}]")
    lines.extend(f"  ! {reason}" for reason in verdict.reasons)
    rows: List[tuple] = [_COLUMNS] + [
        (
            channel.channel_id,
            channel.channel_type or "-",
            channel.status or "-",
            channel.owner or "-",
            format_time(channel.consumed_through_ns),
            format_duration(channel.lag_s),
            "-" if channel.records_read is None else str(channel.records_read),
        )
        for channel in snapshot.channels
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:-2], widths)]
        cells += [row[-2].rjust(widths[-2]), row[-1].rjust(widths[-1])]
        lines.append("  ".join(cells).rstrip())
    if not snapshot.channels:
        lines.append("(no channels yet)")
    lines.append(RECORDS_BEHIND_NOTE)
    return "\n".join(lines)
