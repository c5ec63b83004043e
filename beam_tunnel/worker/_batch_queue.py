"""A bounded hand-off between a channel's fetch loop and its process loop.

Why not ``queue.Queue``: both sides must wake at once when the reader
stops, without polling. ``close()`` does that: a blocked ``put`` returns
False and a blocked ``get`` returns :data:`CLOSED`.
"""

from __future__ import annotations

import collections
import threading
from typing import Any, Optional

CLOSED = object()
"""What :meth:`_BatchQueue.get` returns once the queue is closed."""

EMPTY = object()
"""What :meth:`_BatchQueue.get` returns when its timeout passed."""


class _BatchQueue:
    """FIFO of at most ``capacity`` items; ``put`` blocks while full.

    The bound is what keeps a slow callback from letting the fetch loop read
    a whole channel into memory: the fetch loop waits instead.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity!r}")
        self._capacity = capacity
        self._items: collections.deque = collections.deque()
        self._closed = False
        self._cond = threading.Condition()

    def put(self, item: Any) -> bool:
        """Append ``item``, waiting for room. False if the queue was closed."""
        with self._cond:
            while len(self._items) >= self._capacity and not self._closed:
                self._cond.wait()
            if self._closed:
                return False
            self._items.append(item)
            self._cond.notify_all()
            return True

    def get(self, timeout: Optional[float] = None) -> Any:
        """The oldest item; :data:`EMPTY` after ``timeout`` seconds (None:
        wait as long as needed); :data:`CLOSED` once closed."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait_for(lambda: self._items or self._closed, timeout)
            if self._closed:
                return CLOSED
            if not self._items:
                return EMPTY
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def close(self) -> None:
        """Wake both sides for good; queued items are discarded. Idempotent."""
        with self._cond:
            self._closed = True
            self._items.clear()
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
