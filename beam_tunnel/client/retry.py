"""When to try a Tunnel call again, and how long to wait first.

Pure policy: no HTTP. A :class:`RetryPolicy` is bounded, jittered exponential
backoff under an overall deadline, with the clock and the sleep injectable so
tests run without waiting. What may be retried is decided from the error's
``retriable`` flag only, never from its text:

* :class:`~beam_tunnel.errors.ServerUnavailableError` (the service said
  ``OTSTunnelServerUnavailable``: it did not do the work) and
  :class:`~beam_tunnel.errors.RequestNotSentError` (the request never left
  this machine) are retried for every call.
* Other retriable errors (a dropped connection or read timeout after the
  request was sent, a 5xx without an error body) are retried only for calls
  marked idempotent, since the service may already have acted on the lost
  request.
* Everything else (``OTSParameterInvalid``, ``OTSTunnelExpired``,
  ``OTSPermissionDenied`` ...) is raised at once.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from typing import Callable, TypeVar

from beam_tunnel.errors import ConfigError, RequestNotSentError, ServiceError, TunnelError

__all__ = [
    "RetryPolicy",
    "READ_RECORDS_RETRY",
    "META_RETRY",
    "is_safe_to_retry",
]

_LOGGER = logging.getLogger(__name__)

_T = TypeVar("_T")

# Past this many doublings any sane backoff is at its cap; stopping the
# exponent here keeps the float arithmetic finite for very long outages.
_MAX_EXPONENT = 64


def is_safe_to_retry(err: BaseException, idempotent: bool) -> bool:
    """True when sending the same request again is both useful and harmless.

    Args:
      err: what the previous attempt raised.
      idempotent: whether the call has the same effect when applied twice.
    """
    if not isinstance(err, TunnelError) or not err.retriable:
        return False
    if idempotent:
        return True
    # The service answered "unavailable" (so did nothing), or never saw it.
    return isinstance(err, (ServiceError, RequestNotSentError))


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Jittered exponential backoff with an overall deadline.

    The n-th wait (n = 0, 1, ...) is ``min(initial_backoff_s * multiplier**n,
    max_backoff_s)`` scaled by a random factor in ``[1 - jitter, 1 + jitter]``.
    A retry is abandoned, and the last error raised, when the time since the
    first attempt plus the next wait would pass ``deadline_s``: no attempt
    starts after the deadline. The deadline does not cut short an attempt
    already in flight; the transport bounds each attempt to the connect
    timeout plus the read timeout, so a call through a TunnelClient ends
    within ``deadline_s + connect timeout + read timeout``.

    Picklable as long as ``clock`` and ``sleep`` are (the defaults are).

    Attributes:
      initial_backoff_s: first wait, seconds (> 0).
      max_backoff_s: cap on one wait before jitter, seconds (>= initial).
      deadline_s: overall time budget from the first attempt, seconds (>= 0;
        0 means a single attempt).
      multiplier: growth factor per retry (>= 1). Default 2, as the Go SDK.
      jitter: relative randomisation in [0, 1). Default 0.33, as the Go SDK,
        so that clients failed by one outage do not retry in lockstep.
      clock: monotonic clock in seconds. Default ``time.monotonic``.
      sleep: waits the given seconds. Default ``time.sleep``.
    """

    initial_backoff_s: float
    max_backoff_s: float
    deadline_s: float
    multiplier: float = 2.0
    jitter: float = 0.33
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        def number(name: str) -> float:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                raise ConfigError(f"RetryPolicy.{name} must be a number, got {value!r}")
            return float(value)

        if number("initial_backoff_s") <= 0:
            raise ConfigError(f"RetryPolicy.initial_backoff_s must be > 0, got {self.initial_backoff_s!r}")
        if number("max_backoff_s") < self.initial_backoff_s:
            raise ConfigError(
                f"RetryPolicy.max_backoff_s must be >= initial_backoff_s ({self.initial_backoff_s!r}), "
                f"got {self.max_backoff_s!r}"
            )
        if number("deadline_s") < 0:
            raise ConfigError(f"RetryPolicy.deadline_s must be >= 0, got {self.deadline_s!r}")
        if number("multiplier") < 1:
            raise ConfigError(f"RetryPolicy.multiplier must be >= 1, got {self.multiplier!r}")
        if not 0 <= number("jitter") < 1:
            raise ConfigError(f"RetryPolicy.jitter must be in [0, 1), got {self.jitter!r}")
        if not callable(self.clock) or not callable(self.sleep):
            raise ConfigError("RetryPolicy.clock and RetryPolicy.sleep must be callables")

    def backoff(self, retry_index: int, unit_random: float) -> float:
        """The wait before retry number ``retry_index`` (0-based), in seconds.

        Args:
          retry_index: how many retries were already made.
          unit_random: a random number in [0, 1) choosing the jitter.
        """
        exponent = min(retry_index, _MAX_EXPONENT)
        base = min(self.initial_backoff_s * self.multiplier**exponent, self.max_backoff_s)
        return base * (1.0 + self.jitter * (2.0 * unit_random - 1.0))

    def with_deadline(self, deadline_s: float) -> "RetryPolicy":
        """A copy of this policy with another overall deadline."""
        return dataclasses.replace(self, deadline_s=deadline_s)

    def run(
        self,
        attempt: Callable[[], _T],
        *,
        idempotent: bool,
        description: str,
        unit_random: Callable[[], float] = random.random,
    ) -> _T:
        """Call ``attempt`` until it returns, fails for good, or time runs out.

        Args:
          attempt: makes one try; raises a TunnelError on failure.
          idempotent: whether errors that leave the outcome unknown may be
            retried (see the module docstring).
          description: names the call in log lines, e.g. "ReadRecords".
          unit_random: source of jitter in [0, 1).

        Returns:
          What ``attempt`` returned.

        Raises:
          TunnelError: the last error, when it may not be retried or when the
            deadline leaves no room for another wait.
        """
        started = self.clock()
        retries = 0
        while True:
            try:
                return attempt()
            except TunnelError as err:
                if not is_safe_to_retry(err, idempotent):
                    raise
                delay = self.backoff(retries, unit_random())
                elapsed = self.clock() - started
                if elapsed + delay > self.deadline_s:
                    _LOGGER.info(
                        "[retry] %s: giving up after %d attempt(s) in %.3fs (deadline %.3fs): %s",
                        description, retries + 1, elapsed, self.deadline_s, err,
                    )
                    raise
                _LOGGER.info(
                    "[retry] %s: attempt %d failed (%s); retrying in %.3fs",
                    description, retries + 1, err, delay,
                )
                self.sleep(delay)
                retries += 1


# The Go SDK's ReadRecords backoff: start at 16 ms because a lost read is
# cheap to repeat and a reader that stalls holds its channel back; cap at 3 s;
# give up after the Go SDK's MaxRetryElapsedTime default of 75 s.
READ_RECORDS_RETRY = RetryPolicy(initial_backoff_s=0.016, max_backoff_s=3.0, deadline_s=75.0)

# The Go SDK's backoff for every other call ("meta" calls): 100 ms up to 2 s,
# 35 s overall - these calls are rare, so waiting longer between tries costs
# little and spares a struggling service.
META_RETRY = RetryPolicy(initial_backoff_s=0.1, max_backoff_s=2.0, deadline_s=35.0)
