"""Durations as people type and read them: ``90s``, ``15m``, ``2h30m``, ``7d``.

Pure functions; the command line parses thresholds with :func:`parse_duration`
and every view prints lags with :func:`format_duration`.
"""

from __future__ import annotations

import re
from typing import Optional

__all__ = ["parse_duration", "format_duration"]

_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)([dhms])")


def parse_duration(text: str) -> float:
    """Seconds in ``text``: a plain number of seconds (``"90"``, ``"1.5"``) or
    parts with units d/h/m/s, largest first (``"1h30m"``, ``"7d"``, ``"45s"``).

    Raises:
      ValueError: naming ``text`` and the accepted forms.
    """
    cleaned = text.strip().lower() if isinstance(text, str) else ""
    try:
        value = float(cleaned)
    except ValueError:
        value = None
    if value is None:
        parts = _PART.findall(cleaned)
        units = [unit for _, unit in parts]
        ordered = sorted(units, key=lambda unit: -_UNIT_SECONDS[unit])
        if not parts or "".join(n + u for n, u in parts) != cleaned or units != ordered or len(set(units)) != len(units):
            raise ValueError(
                f"a duration must be seconds or parts like 90s, 15m, 2h30m, 7d; got {text!r}"
            )
        value = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    if value != value or value < 0 or value == float("inf"):
        raise ValueError(f"a duration must be a finite number >= 0, got {text!r}")
    return value


def format_duration(seconds: Optional[float]) -> str:
    """A short, readable duration: ``0.35s``, ``12.0s``, ``5m03s``, ``2h05m``,
    ``6d23h``; ``-`` for None; a leading ``-`` for negative values."""
    if seconds is None:
        return "-"
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"
