"""How many channels may run user code at once (``max_channel_parallelism``).

A semaphore that a stopping reader can leave without waiting: ``acquire``
gives up as soon as the caller's stop event is set and :meth:`wake` is
called, so a reader queued behind busy channels still stops at once.
"""

from __future__ import annotations

import threading
from typing import Optional


class _ParallelismLimit:
    """At most ``limit`` holders at a time; None means no limit."""

    def __init__(self, limit: Optional[int]) -> None:
        self._limit = limit
        self._holders = 0
        self._cond = threading.Condition()

    def acquire(self, stop_event: threading.Event) -> bool:
        """Take a slot; False (nothing taken) if ``stop_event`` got set."""
        if self._limit is None:
            return not stop_event.is_set()
        with self._cond:
            while self._holders >= self._limit and not stop_event.is_set():
                self._cond.wait()
            if stop_event.is_set():
                return False
            self._holders += 1
            return True

    def release(self) -> None:
        if self._limit is None:
            return
        with self._cond:
            self._holders -= 1
            self._cond.notify_all()

    def wake(self) -> None:
        """Make waiting callers re-check their stop events."""
        if self._limit is None:
            return
        with self._cond:
            self._cond.notify_all()
