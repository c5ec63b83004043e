"""Heartbeats that have arrived but are not answered yet.

The emulator can be slow to answer (a commit waiting on the disk or on a
lock). A client whose heartbeat is in must not lose its lease meanwhile:
a heartbeat that arrived in time keeps its lease alive until it is
answered (``channels.lease_lapsed``). In memory only: after a restart
nothing is waiting.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from typing import Callable, Dict, Iterator, List, Optional

__all__ = ["Arrivals"]


class Arrivals:
    """Arrival times of calls still being served, per client.

    Args:
      now_us: the emulator clock.
    """

    def __init__(self, now_us: Callable[[], int]) -> None:
        self._now_us = now_us
        self._lock = threading.Lock()
        self._times: Dict[str, List[int]] = collections.defaultdict(list)

    @contextlib.contextmanager
    def arriving(self, client_id: str) -> Iterator[int]:
        """Record a call of ``client_id`` from now until the block ends;
        yields its arrival time in µs."""
        arrived_us = self._now_us()
        with self._lock:
            self._times[client_id].append(arrived_us)
        try:
            yield arrived_us
        finally:
            with self._lock:
                times = self._times[client_id]
                times.remove(arrived_us)
                if not times:
                    del self._times[client_id]

    def since(self, client_id: str) -> Optional[int]:
        """Arrival µs of the client's oldest call still being served, or None."""
        with self._lock:
            times = self._times.get(client_id)
            return min(times) if times else None

    def snapshot(self) -> Dict[str, int]:
        """client id -> arrival µs of its oldest call still being served."""
        with self._lock:
            return {client_id: min(times) for client_id, times in self._times.items()}
