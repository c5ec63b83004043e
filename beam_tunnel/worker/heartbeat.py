"""When to heartbeat and when the lease is lost: a pure timer, no thread.

The loop that acts on it (the worker's heartbeat thread, or the Beam source's
``process()``) passes the time in; nothing here reads a clock, so the timer
is plain data that fits in a Beam restriction and tests need no sleeps.

Usage::

    timer = HeartbeatTimer(interval_s=30, timeout_s=300).connected(now)
    if timer.is_due(now):
        timer = timer.sent(now)
        ...  # send the heartbeat
        timer = timer.succeeded(sent_at=now)
    if timer.lease_expired(later):
        ...  # reconnect with a new client id
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

from beam_tunnel.errors import ConfigError
from beam_tunnel.worker._checks import positive_number

__all__ = ["HeartbeatTimer", "DEFAULT_HEARTBEAT_INTERVAL_S", "DEFAULT_HEARTBEAT_TIMEOUT_S"]

DEFAULT_HEARTBEAT_INTERVAL_S = 30.0
"""The Go and Java SDKs' interval: ten chances to renew within the timeout."""

DEFAULT_HEARTBEAT_TIMEOUT_S = 300.0
"""The SDKs' ClientConfig.timeout: the service reclaims a silent client's
channels after this long."""


@dataclasses.dataclass(frozen=True)
class HeartbeatTimer:
    """Heartbeat schedule and client-side lease expiry.

    Times are seconds on any monotonic clock the caller chooses.

    Attributes:
      interval_s: seconds between heartbeats (default 30, as the SDKs).
      timeout_s: the heartbeat timeout in seconds (default 300, as the SDKs);
        sent to the service as ClientConfig.timeout and used here to decide
        that the lease is lost. Must exceed ``interval_s``.
      last_sent: when the last heartbeat was sent, or None before the first
        (the first heartbeat is due at once after connecting).
      last_success: when the last heartbeat that got an answer was *sent*
        (or when the client connected). The service saw it no earlier, so a
        lease counted from here never outlives the service's.
    """

    interval_s: float = DEFAULT_HEARTBEAT_INTERVAL_S
    timeout_s: float = DEFAULT_HEARTBEAT_TIMEOUT_S
    last_sent: Optional[float] = None
    last_success: Optional[float] = None

    def __post_init__(self) -> None:
        interval = positive_number("heartbeat interval_s", self.interval_s)
        timeout = positive_number("heartbeat timeout_s", self.timeout_s)
        if timeout <= interval:
            raise ConfigError(
                f"heartbeat timeout_s must exceed interval_s, got timeout_s={self.timeout_s!r} "
                f"and interval_s={self.interval_s!r}"
            )
        object.__setattr__(self, "interval_s", interval)
        object.__setattr__(self, "timeout_s", timeout)

    @property
    def client_timeout(self) -> int:
        """ClientConfig.timeout for ConnectTunnel: whole seconds, rounded up.

        The wire field is an integer; rounding up keeps the service's lease at
        least as long as the one this timer enforces.
        """
        return int(math.ceil(self.timeout_s))

    def connected(self, now: float) -> "HeartbeatTimer":
        """A new lease starting at ``now``; the first heartbeat is due at once."""
        return dataclasses.replace(self, last_sent=None, last_success=now)

    def sent(self, now: float) -> "HeartbeatTimer":
        """A heartbeat was sent at ``now`` (answered or not)."""
        return dataclasses.replace(self, last_sent=now)

    def succeeded(self, sent_at: float) -> "HeartbeatTimer":
        """The heartbeat sent at ``sent_at`` was answered."""
        last = sent_at if self.last_success is None else max(self.last_success, sent_at)
        return dataclasses.replace(self, last_success=last)

    def next_due(self) -> Optional[float]:
        """When the next heartbeat is due, or None if it is due at once."""
        if self.last_sent is None:
            return None
        return self.last_sent + self.interval_s

    def time_to_next(self, now: float) -> float:
        """Seconds from ``now`` until the next heartbeat is due (0 if due)."""
        due = self.next_due()
        return 0.0 if due is None else max(0.0, due - now)

    def is_due(self, now: float) -> bool:
        """True when a heartbeat should be sent at ``now``."""
        return self.time_to_next(now) == 0.0

    def lease_expired(self, now: float) -> bool:
        """True when no heartbeat was answered within ``timeout_s``.

        The service may already have given this client's channels to others:
        stop reading them and reconnect with a new client id. False before
        :meth:`connected`.
        """
        return self.last_success is not None and now - self.last_success >= self.timeout_s
