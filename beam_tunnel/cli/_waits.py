"""Saying what the command line waits for, and ending the wait on request.

* :class:`RetryNotices`: the client retries an unanswered call for up to
  35 s (75 s for ReadRecords) and logs that at INFO only; this says on
  stderr, when a call starts such a wait, which endpoint it waits for, why
  and for how long.
* :class:`StopSignals`: the first SIGINT/SIGTERM asks for a graceful stop,
  a second one exits at once.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
import time
from typing import Callable, Dict

__all__ = ["RetryNotices", "StopSignals"]

_RETRY_LOGGER = "beam_tunnel.client.retry"

# RetryPolicy.run's line for the first failed attempt of a call: the start of
# a retrying wait (later attempts of the same wait say "attempt 2", ...).
_FIRST_FAILURE = re.compile(r"^\[retry\] (?P<call>[^:]+): attempt 1 failed \((?P<error>.*)\); retrying in ")

_REPEAT_AFTER_S = 10.0
"""One notice per call name in this many seconds: when the service dies,
every channel reader starts a wait at once."""


class RetryNotices(logging.Filter):
    """A filter on the client's retry logger that turns the start of each
    retrying wait into a stderr line, whatever the log level.

    It sits on the logger (not a handler) so it sees the INFO records; it
    passes on only those the user's ``--log-level`` asks for.

    Args:
      prefix: starts each line, e.g. ``"beam-tunnel consume"``.
      endpoint: the service the calls wait for.
      deadline_s: the retry deadline of a call, by call name.
    """

    def __init__(self, prefix: str, endpoint: str, deadline_s: Callable[[str], float]) -> None:
        super().__init__()
        self._prefix = prefix
        self._endpoint = endpoint
        self._deadline_s = deadline_s
        self._last: Dict[str, float] = {}
        self._lock = threading.Lock()
        self._logger = logging.getLogger(_RETRY_LOGGER)
        self._passes = logging.WARNING
        self._previous_level = logging.NOTSET

    def __enter__(self) -> "RetryNotices":
        self._passes = self._logger.getEffectiveLevel()
        self._previous_level = self._logger.level
        self._logger.setLevel(min(self._passes, logging.INFO))
        self._logger.addFilter(self)
        return self

    def __exit__(self, *exc_info) -> None:
        self._logger.removeFilter(self)
        self._logger.setLevel(self._previous_level)

    def filter(self, record: logging.LogRecord) -> bool:
        match = _FIRST_FAILURE.match(record.getMessage())
        if match:
            self._notice(match.group("call"), match.group("error"))
        return record.levelno >= self._passes

    def _notice(self, call: str, error: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(call, -_REPEAT_AFTER_S) < _REPEAT_AFTER_S:
                return
            self._last[call] = now
        print(
            f"{self._prefix}: waiting for the service at {self._endpoint}: {call} failed "
            f"({error[:300]}); retrying for up to {self._deadline_s(call):g} s",
            file=sys.stderr, flush=True,
        )


class StopSignals:
    """SIGINT and SIGTERM for a command that can stop gracefully.

    Until :meth:`allow_graceful_stop`, a signal exits at once (nothing to
    save yet). After it, the first signal sets :attr:`requested` and says
    how long the graceful stop may take; a second one exits at once with
    status 128 + the signal number, without waiting for anything.

    Args:
      prefix: starts each line, e.g. ``"beam-tunnel consume"``.
      stop_timeout_s: the bound of the graceful stop, for the message.
    """

    def __init__(self, prefix: str, stop_timeout_s: float) -> None:
        self.requested = threading.Event()
        self._prefix = prefix
        self._stop_timeout_s = stop_timeout_s
        self._graceful = False
        self._previous: Dict[int, object] = {}

    def __enter__(self) -> "StopSignals":
        self._previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc_info) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def allow_graceful_stop(self) -> None:
        self._graceful = True

    def _on_signal(self, signum: int, _frame) -> None:
        name = signal.Signals(signum).name
        if self._graceful and not self.requested.is_set():
            self.requested.set()
            print(
                f"{self._prefix}: {name}: stopping gracefully (finishing the batches in hand, saving "
                f"checkpoints, leaving the tunnel) for up to {self._stop_timeout_s:g} s (--stop-timeout); "
                f"{name} again exits at once",
                file=sys.stderr, flush=True,
            )
            return
        if self._graceful:
            what = "exiting at once; records since the last checkpoint will be read again"
        else:
            what = "exiting before reading began"
        print(f"{self._prefix}: {name}: {what}", file=sys.stderr, flush=True)
        # Not sys.exit: the threads may be stuck in a retrying request, and
        # every record written so far was flushed before it was acknowledged.
        os._exit(128 + signum)


