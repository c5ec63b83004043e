"""Faults on demand: failed requests, added latency, dropped connections.

The wire layer asks :meth:`FaultInjector.decide` once per request, after the
request was read and before it is handled, and acts on the answer. Decisions
come from a seeded RNG so a failing test can be replayed.
"""

from __future__ import annotations

import dataclasses
import random
import threading
from typing import NamedTuple, Optional

__all__ = ["FaultSettings", "FaultDecision", "FaultInjector", "SCOPE_TUNNEL", "SCOPE_ALL"]

SCOPE_TUNNEL = "tunnel"
SCOPE_ALL = "all"


def _check_share(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")


def _check_seconds(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}")


@dataclasses.dataclass(frozen=True)
class FaultSettings:
    """What to inject. The default injects nothing.

    Args:
      error_rate: share of requests (0..1) answered with 503
        ``OTSTunnelServerUnavailable`` instead of being handled.
      drop_rate: share of requests (0..1) whose connection is closed without
        an answer (the client sees a reset or an early EOF).
      latency_s: fixed delay added before answering, in seconds.
      jitter_s: extra uniformly random delay in [0, jitter_s] seconds.
      scope: ``"tunnel"`` (default) to affect only Tunnel Service paths,
        ``"all"`` to affect table paths too.
      seed: RNG seed; None picks one from the OS.
    """

    error_rate: float = 0.0
    drop_rate: float = 0.0
    latency_s: float = 0.0
    jitter_s: float = 0.0
    scope: str = SCOPE_TUNNEL
    seed: Optional[int] = None

    def __post_init__(self) -> None:
        _check_share("error_rate", self.error_rate)
        _check_share("drop_rate", self.drop_rate)
        if self.error_rate + self.drop_rate > 1.0:
            raise ValueError(
                f"error_rate + drop_rate must be <= 1, got {self.error_rate!r} + {self.drop_rate!r}"
            )
        _check_seconds("latency_s", self.latency_s)
        _check_seconds("jitter_s", self.jitter_s)
        if self.scope not in (SCOPE_TUNNEL, SCOPE_ALL):
            raise ValueError(f"scope must be {SCOPE_TUNNEL!r} or {SCOPE_ALL!r}, got {self.scope!r}")
        if self.seed is not None and (not isinstance(self.seed, int) or isinstance(self.seed, bool)):
            raise ValueError(f"seed must be an int or None, got {self.seed!r}")

    @property
    def active(self) -> bool:
        return bool(self.error_rate or self.drop_rate or self.latency_s or self.jitter_s)


class FaultDecision(NamedTuple):
    """What to do with one request."""

    delay_s: float = 0.0
    fail: bool = False
    drop: bool = False


_NO_FAULT = FaultDecision()


class FaultInjector:
    """Thread-safe source of fault decisions; reconfigurable at runtime.

    Args:
      settings: initial :class:`FaultSettings` (default: no faults).
    """

    def __init__(self, settings: Optional[FaultSettings] = None) -> None:
        self._lock = threading.Lock()
        self._settings = FaultSettings()
        self._rng = random.Random()
        self.configure(settings or FaultSettings())

    @property
    def settings(self) -> FaultSettings:
        return self._settings

    def configure(self, settings: Optional[FaultSettings] = None, **changes) -> FaultSettings:
        """Replace the settings, or change some fields of the current ones.

        ``configure(error_rate=0.2, seed=7)`` keeps the other fields.
        Reseeds the RNG when the resulting settings carry a seed.

        Returns:
          The settings now in force.
        """
        if settings is not None and changes:
            raise ValueError("pass either a FaultSettings or field changes, not both")
        with self._lock:
            new = settings if settings is not None else dataclasses.replace(self._settings, **changes)
            if not isinstance(new, FaultSettings):
                raise ValueError(f"settings must be a FaultSettings, got {new!r}")
            self._settings = new
            self._rng = random.Random(new.seed)
            return new

    def clear(self) -> None:
        """Stop injecting faults."""
        self.configure(FaultSettings())

    def decide(self, api: str) -> FaultDecision:
        """The fault (if any) for one request to a path of kind ``api``
        (``"table"``, ``"tunnel"`` or ``"admin"``; admin paths are never hit)."""
        settings = self._settings
        if not settings.active or api == "admin":
            return _NO_FAULT
        if settings.scope == SCOPE_TUNNEL and api != "tunnel":
            return _NO_FAULT
        with self._lock:
            delay = settings.latency_s
            if settings.jitter_s:
                delay += self._rng.uniform(0.0, settings.jitter_s)
            roll = self._rng.random()
        if roll < settings.drop_rate:
            return FaultDecision(delay_s=delay, drop=True)
        if roll < settings.drop_rate + settings.error_rate:
            return FaultDecision(delay_s=delay, fail=True)
        return FaultDecision(delay_s=delay)
