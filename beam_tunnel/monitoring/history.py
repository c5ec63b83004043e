"""Lag over time, for the ``--plot`` picture and the monitor's chart. Pure.

A bounded series per tunnel: the oldest points drop off once ``max_points``
are kept, so a monitor left running for days uses constant memory.
"""

from __future__ import annotations

import collections
from typing import Deque, Dict, List, NamedTuple, Optional

from .snapshot import LagSnapshot

__all__ = ["LagPoint", "LagHistory"]


class LagPoint(NamedTuple):
    """The lags of one snapshot: service time, tunnel lag, channel id -> lag
    (seconds; None when unknown)."""

    now_ns: int
    tunnel_lag_s: Optional[float]
    channel_lags_s: Dict[str, Optional[float]]


class LagHistory:
    """The last ``max_points`` lag points of one tunnel, oldest first."""

    def __init__(self, max_points: int = 720) -> None:
        if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 1:
            raise ValueError(f"max_points must be an int >= 1, got {max_points!r}")
        self._points: Deque[LagPoint] = collections.deque(maxlen=max_points)

    def add(self, snapshot: LagSnapshot) -> None:
        """Append the lags of ``snapshot``."""
        self._points.append(
            LagPoint(snapshot.now_ns, snapshot.lag_s, {c.channel_id: c.lag_s for c in snapshot.channels})
        )

    def points(self) -> List[LagPoint]:
        """The kept points, oldest first."""
        return list(self._points)

    def __len__(self) -> int:
        return len(self._points)

    def channel_ids(self) -> List[str]:
        """Every channel id with a known lag in any kept point, in first-seen order."""
        seen: Dict[str, None] = {}
        for point in self._points:
            for channel_id, lag in point.channel_lags_s.items():
                if lag is not None:
                    seen.setdefault(channel_id)
        return list(seen)

    def to_dict(self) -> dict:
        """JSON-ready columns: ``t_ns``, ``tunnel_lag_s`` and per channel a
        list aligned with ``t_ns`` (null where the lag is unknown)."""
        points = self.points()
        return {
            "t_ns": [p.now_ns for p in points],
            "tunnel_lag_s": [p.tunnel_lag_s for p in points],
            "channel_lag_s": {
                channel_id: [p.channel_lags_s.get(channel_id) for p in points] for channel_id in self.channel_ids()
            },
        }
