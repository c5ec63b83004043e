"""The emulator's notion of time.

Every time-dependent decision of the emulator (cell versions, stream-log
write times, retention, client leases, the request-date skew check) reads
one :class:`Clock`, so tests can replace it with a :class:`ManualClock` and
move time without sleeping.
"""

from __future__ import annotations

import threading
import time

__all__ = ["Clock", "ManualClock"]


class Clock:
    """Wall-clock time (UTC, since the Unix epoch)."""

    def now_ns(self) -> int:
        """Nanoseconds since the epoch."""
        return time.time_ns()

    def now_us(self) -> int:
        """Microseconds since the epoch."""
        return self.now_ns() // 1_000

    def now_ms(self) -> int:
        """Milliseconds since the epoch (the unit of Tablestore cell versions)."""
        return self.now_ns() // 1_000_000

    def now_s(self) -> float:
        """Seconds since the epoch, as a float."""
        return self.now_ns() / 1e9


class ManualClock(Clock):
    """A clock that moves only when told to. Thread-safe.

    Args:
      start_us: initial time in microseconds since the epoch; defaults to the
        current wall time, so that signed requests from real SDKs (whose
        dates come from the wall clock) pass the date-skew check.
    """

    def __init__(self, start_us: int | None = None) -> None:
        if start_us is not None and (not isinstance(start_us, int) or start_us < 0):
            raise ValueError(f"start_us must be a non-negative int, got {start_us!r}")
        self._lock = threading.Lock()
        self._now_ns = (time.time_ns() if start_us is None else start_us * 1_000)

    def now_ns(self) -> int:
        with self._lock:
            return self._now_ns

    def advance(self, seconds: float = 0.0, *, us: int = 0) -> int:
        """Move time forward by ``seconds`` plus ``us`` microseconds.

        Returns:
          The new time in microseconds.
        Raises:
          ValueError: when the step is negative (use :meth:`set` to go back).
        """
        step_ns = int(round(seconds * 1e9)) + us * 1_000
        if step_ns < 0:
            raise ValueError(f"advance() needs a non-negative step, got {seconds!r} s + {us!r} µs")
        with self._lock:
            self._now_ns += step_ns
            return self._now_ns // 1_000

    def set(self, now_us: int) -> None:
        """Jump to ``now_us`` (may go backwards, to test clock regressions)."""
        if not isinstance(now_us, int) or now_us < 0:
            raise ValueError(f"now_us must be a non-negative int, got {now_us!r}")
        with self._lock:
            self._now_ns = now_us * 1_000
