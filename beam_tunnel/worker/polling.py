"""Adaptive polling of one channel: read again at once or back off. Pure.

A ReadRecords answer either says there is more to read now (read again at
once) or that the reader caught up (wait, longer each idle round, up to a
bound, so an idle channel costs little and a busy one is read at full speed).
Stream channels often answer with zero records; that is normal and simply
counts as idle.

Usage::

    backoff = PollBackoff()
    more = has_more(len(result.records), result.size_bytes, result.may_more_record)
    idle = 0 if more else idle + 1
    stop_event.wait(backoff.delay(idle, random.random()))
"""

from __future__ import annotations

import dataclasses

from beam_tunnel.errors import ConfigError
from beam_tunnel.worker._checks import positive_number

__all__ = ["PollBackoff", "has_more", "FULL_BATCH_RECORDS", "FULL_BATCH_BYTES"]

FULL_BATCH_RECORDS = 500
"""More records than this in one answer means "there is more": the SDKs'
threshold for services that do not send ``may_more_record``."""

FULL_BATCH_BYTES = 900 * 1024
"""A body larger than this means "there is more" (the SDKs' 900 KiB)."""


def has_more(records: int, size_bytes: int, may_more_record) -> bool:
    """Whether to read the channel again at once.

    Args:
      records: how many records the answer held.
      size_bytes: the size of the answer in bytes.
      may_more_record: the service's hint, or None when it sent none; the
        hint wins when present, as in the SDKs.
    """
    if may_more_record is not None:
        return bool(may_more_record)
    return records > FULL_BATCH_RECORDS or size_bytes > FULL_BATCH_BYTES


@dataclasses.dataclass(frozen=True)
class PollBackoff:
    """Exponential backoff for an idle channel.

    Attributes:
      initial_s: the first wait after an idle answer, in seconds (default
        0.02, the Go SDK's base).
      multiplier: growth per idle round (default 5, as both SDKs).
      max_s: the longest wait, in seconds (default 2, the Java SDK's
        default; bounds the latency of the first record after a quiet spell).
      jitter: +/- share of randomness (default 0.25, as both SDKs), so many
        idle channels do not poll in step.
    """

    initial_s: float = 0.02
    multiplier: float = 5.0
    max_s: float = 2.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        positive_number("PollBackoff.initial_s", self.initial_s, unit=None)
        positive_number("PollBackoff.max_s", self.max_s, unit=None)
        if isinstance(self.multiplier, bool) or not isinstance(self.multiplier, (int, float)) or self.multiplier < 1:
            raise ConfigError(f"PollBackoff.multiplier must be a number >= 1, got {self.multiplier!r}")
        if isinstance(self.jitter, bool) or not isinstance(self.jitter, (int, float)) or not 0 <= self.jitter < 1:
            raise ConfigError(f"PollBackoff.jitter must be a number in [0, 1), got {self.jitter!r}")
        if self.initial_s > self.max_s:
            raise ConfigError(
                f"PollBackoff.initial_s must not exceed max_s, got initial_s={self.initial_s!r} "
                f"and max_s={self.max_s!r}"
            )

    def delay(self, idle_rounds: int, rand: float) -> float:
        """Seconds to wait before the next read.

        Args:
          idle_rounds: consecutive answers without "more" (0: read at once).
          rand: a number in [0, 1) from the caller's random source.

        Returns:
          0 when ``idle_rounds`` is 0; otherwise the backoff for that round
          with jitter applied, never above ``max_s``.
        """
        if idle_rounds <= 0:
            return 0.0
        # Cap the exponent before computing the power: idle_rounds grows
        # without bound on a quiet channel.
        steps = min(idle_rounds - 1, 64)
        base = min(self.max_s, self.initial_s * self.multiplier ** steps)
        spread = base * self.jitter * (2.0 * rand - 1.0)
        return min(self.max_s, max(0.0, base + spread))
