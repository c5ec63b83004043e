"""Write times, and the latest time the stream log is complete through.

Consume points (``rpo.py``) promise "every record this channel will still
deliver has a write time at or after T". For a caught-up channel T is
"now", which holds only if no write can still appear with an earlier write
time. :class:`Timeline` makes that true:

* :meth:`begin_write` hands out the request's write time, strictly
  increasing and never below a "now" already promised;
* :meth:`complete_through_us` is the clock, never below a previous answer,
  and capped at the write time of a write still in flight (taken but not
  yet committed, so a snapshot read now would miss it).

Read the log *after* calling :meth:`complete_through_us`: a write the read
does not see then has a write time at or after the answer.

Across restarts the promise is derived: the last write time is persisted
(``writes.py``) and seeds the floor, and the wall clock is assumed not to
step back across a restart.
"""

from __future__ import annotations

import threading
from typing import Optional

__all__ = ["Timeline"]


class Timeline:
    """Write times and "complete through" times of one emulator.

    Args:
      clock: the emulator clock.
      last_write_us: the last write time handed out (persisted by the writer).
    """

    def __init__(self, clock, last_write_us: int = 0) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._last_write_us = last_write_us
        self._promised_us = last_write_us
        self._in_flight_us: Optional[int] = None

    def begin_write(self) -> int:
        """The write time of a new request (writers are serialised, so at
        most one is in flight). Pair with :meth:`end_write`."""
        with self._lock:
            write_us = max(self._clock.now_us(), self._last_write_us + 1, self._promised_us)
            self._last_write_us = write_us
            self._in_flight_us = write_us
            return write_us

    def end_write(self, write_us: int) -> None:
        """The write that :meth:`begin_write` gave ``write_us`` committed or
        rolled back (the next writer may have begun already)."""
        with self._lock:
            if self._in_flight_us == write_us:
                self._in_flight_us = None

    def snapshot_us(self) -> int:
        """The time of a snapshot taken under the write lock (no write in
        flight): every write so far is at or before it, every later one at
        or after it."""
        with self._lock:
            now = max(self._clock.now_us(), self._promised_us, self._last_write_us)
            self._promised_us = now
            return now

    def complete_through_us(self) -> int:
        """A time every write not yet visible will be at or after; never
        smaller than an earlier answer."""
        with self._lock:
            now = max(self._clock.now_us(), self._promised_us)
            if self._in_flight_us is not None:
                # The in-flight write time is >= every earlier promise.
                now = min(now, self._in_flight_us)
            self._promised_us = now
            return now
