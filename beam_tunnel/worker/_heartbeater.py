"""The thread that keeps a TunnelWorker's lease: connect, heartbeat, reconnect.

Mechanism only; the policy (what a tick does, how long until the next) is
the worker's ``_heartbeat_tick()``, which returns the seconds to wait, or
None when the worker is done.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # pragma: no cover
    from beam_tunnel.worker.worker import TunnelWorker

_LOGGER = logging.getLogger(__name__)

_HEARTBEATER_NAME = "TunnelWorker-heartbeat"


class _Heartbeater:
    """Calls ``worker._heartbeat_tick()`` until stopped."""

    def __init__(self, worker: "TunnelWorker") -> None:
        self._worker = worker
        self._operational_lock = threading.Lock()
        self._stop_event = threading.Event()
        self._wake_event = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        with self._operational_lock:
            if self._thread is not None:
                raise ValueError("heartbeater is already running")
            self._stop_event.clear()
            self._thread = threading.Thread(name=_HEARTBEATER_NAME, target=self._run, daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Run the next tick now instead of at its scheduled time."""
        self._wake_event.set()

    def stop(self) -> None:
        """Stop the loop and wait for it. Idempotent; callable from the loop."""
        with self._operational_lock:
            self._stop_event.set()
            self._wake_event.set()
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        while True:
            # Cleared before the stop check: stop() sets the stop event
            # first, so a stop racing with this line is still seen.
            self._wake_event.clear()
            if self._stop_event.is_set():
                break
            delay = self._worker._heartbeat_tick()
            if delay is None:
                break
            # Waiting on the wake event (which stop() also sets) rather than
            # sleeping lets stop() and wake() take effect at once.
            self._wake_event.wait(delay)
        _LOGGER.debug("[heartbeat] loop ended")
