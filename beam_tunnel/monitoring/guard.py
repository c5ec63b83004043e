"""The expiry guard: thresholds on a :class:`LagSnapshot`, a level, an exit code. Pure.

Levels and the exit codes of ``beam-tunnel lag`` (1 is left for errors
talking to the service, 2 for bad command-line arguments):

=========  ====  ==========================================================
level      exit  when
=========  ====  ==========================================================
OK         0     no threshold crossed
UNKNOWN    5     a time-left threshold is set but the time left cannot be
                 known (stream retention unknown; pass ``--retention``)
WARN       3     time left < ``warn_left_s``
FAIL       4     time left < ``fail_left_s``, time left <= 0 (changes are
                 being lost), the tunnel is expired, or lag > ``max_lag_s``
=========  ====  ==========================================================

Severity, for combining several snapshots: FAIL > WARN > UNKNOWN > OK.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Iterable, Optional, Tuple

from .durations import format_duration
from .snapshot import LagSnapshot

__all__ = ["Level", "Thresholds", "Verdict", "evaluate", "combine"]


class Level(enum.Enum):
    """A guard level; ``exit_code`` is what ``beam-tunnel lag`` exits with."""

    OK = (0, 0)
    UNKNOWN = (1, 5)
    WARN = (2, 3)
    FAIL = (3, 4)

    @property
    def severity(self) -> int:
        return self.value[0]

    @property
    def exit_code(self) -> int:
        return self.value[1]


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """When the guard raises its level; None turns a threshold off.

    Attributes:
      warn_left_s: WARN when the time left before expiry is below this.
      fail_left_s: FAIL when the time left is below this.
      max_lag_s: FAIL when the tunnel lag is above this.
    """

    warn_left_s: Optional[float] = None
    fail_left_s: Optional[float] = None
    max_lag_s: Optional[float] = None

    def __post_init__(self) -> None:
        for name in ("warn_left_s", "fail_left_s", "max_lag_s"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                raise ValueError(f"Thresholds.{name} must be a number >= 0 (seconds) or None, got {value!r}")


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The guard's answer for one snapshot: a level and why."""

    level: Level
    reasons: Tuple[str, ...] = ()


def evaluate(snapshot: LagSnapshot, thresholds: Thresholds) -> Verdict:
    """The :class:`Verdict` of ``snapshot`` under ``thresholds``."""
    found = []  # (level, reason)
    expiry = snapshot.expiry
    left = expiry.time_left_s
    if snapshot.expired:
        found.append((Level.FAIL, "the tunnel is expired (OTSTunnelExpired): create a new tunnel"))
    elif expiry.applies and left is not None:
        if left <= 0:
            found.append((Level.FAIL, f"retention exceeded by {format_duration(-left)}: changes are being lost"))
        elif thresholds.fail_left_s is not None and left < thresholds.fail_left_s:
            found.append((Level.FAIL, f"time left {format_duration(left)} < --fail-left "
                                      f"{format_duration(thresholds.fail_left_s)}"))
        elif thresholds.warn_left_s is not None and left < thresholds.warn_left_s:
            found.append((Level.WARN, f"time left {format_duration(left)} < --warn-left "
                                      f"{format_duration(thresholds.warn_left_s)}"))
    elif expiry.applies and (thresholds.warn_left_s is not None or thresholds.fail_left_s is not None):
        found.append((Level.UNKNOWN, f"time left unknown: {expiry.note}"))
    if thresholds.max_lag_s is not None and snapshot.lag_s is not None and snapshot.lag_s > thresholds.max_lag_s:
        found.append((Level.FAIL, f"lag {format_duration(snapshot.lag_s)} > --max-lag "
                                  f"{format_duration(thresholds.max_lag_s)}"))
    if not found:
        return Verdict(Level.OK)
    return Verdict(max((level for level, _ in found), key=lambda level: level.severity),
                   tuple(reason for _, reason in found))


def combine(levels: Iterable[Level]) -> Level:
    """The most severe of ``levels`` (OK for none)."""
    return max(levels, key=lambda level: level.severity, default=Level.OK)
