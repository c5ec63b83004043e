"""Constants and helpers shared by the client tests (imported by conftest.py
and the test modules; kept out of conftest.py so that importing them does not
depend on which conftest module pytest registered last)."""

from __future__ import annotations

from beam_tunnel.client import RetryPolicy

INSTANCE = "test-inst"
ACCESS_KEY_ID = "LTAI5tTestKeyId"
# Distinctive so a leak is easy to find in any text.
SECRET = "Sup3r-S3cret/Value+=="
STS_TOKEN = "CAIS-sts-Token-Value-7f3a"


class FakeClock:
    """A monotonic clock that only moves when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def policy(clock: FakeClock, deadline_s: float = 10.0) -> RetryPolicy:
    """Small backoff on the fake clock: retries cost no real time."""
    return RetryPolicy(
        initial_backoff_s=0.01, max_backoff_s=0.08, deadline_s=deadline_s, clock=clock.time, sleep=clock.sleep
    )
