"""Argument checks shared by the worker's settings and pure state types.

Each raises :class:`~beam_tunnel.errors.ConfigError` naming the argument and
showing the value it got, so every type here reports bad input the same way.
"""

from __future__ import annotations

import math
from typing import Optional

from beam_tunnel.errors import ConfigError


def positive_number(name: str, value, *, unit: Optional[str] = "seconds", allow_zero: bool = False) -> float:
    """``value`` as a float when it is a finite number > 0 (>= 0 with
    ``allow_zero``); bools are refused although they are ints."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        of_unit = f" of {unit}" if unit else ""
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be a finite number{of_unit} {bound}, got {value!r}")
    return float(value)


def int_at_least(name: str, value, minimum: int, *, allow_none: bool = False) -> Optional[int]:
    """``value`` when it is an int (not a bool) >= ``minimum``, or None when
    ``allow_none``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        suffix = " or None" if allow_none else ""
        raise ConfigError(f"{name} must be an int >= {minimum}{suffix}, got {value!r}")
    return value
