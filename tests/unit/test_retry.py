"""RetryPolicy: backoff shape, deadline, and which errors are retried.

Pure: a fake clock and a recording sleep, no waiting, no network.
"""

from __future__ import annotations

import pickle

import pytest

from beam_tunnel import errors
from beam_tunnel.client.retry import META_RETRY, READ_RECORDS_RETRY, RetryPolicy, is_safe_to_retry


class Clock:
    def __init__(self):
        self.now = 50.0
        self.sleeps = []

    def time(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def make_policy(clock, **overrides):
    values = dict(initial_backoff_s=0.1, max_backoff_s=1.0, deadline_s=5.0, clock=clock.time, sleep=clock.sleep)
    values.update(overrides)
    return RetryPolicy(**values)


def failing(*outcomes):
    """An attempt that raises or returns the given outcomes in order, counting calls."""
    queue = list(outcomes)
    calls = []

    def attempt():
        calls.append(1)
        outcome = queue.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    attempt.calls = calls
    return attempt


UNAVAILABLE = errors.ServerUnavailableError("busy")
DROPPED = errors.TransportError("connection lost")
NOT_SENT = errors.RequestNotSentError("refused")


# ---- backoff ---------------------------------------------------------------------


def test_backoff_doubles_to_the_cap_without_jitter():
    policy = make_policy(Clock(), jitter=0.0)
    assert [policy.backoff(n, 0.5) for n in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_backoff_jitter_bounds():
    policy = make_policy(Clock(), jitter=0.33)
    assert policy.backoff(2, 0.0) == pytest.approx(0.4 * 0.67)
    assert policy.backoff(2, 0.5) == pytest.approx(0.4)
    assert policy.backoff(2, 0.999999) == pytest.approx(0.4 * 1.33, rel=1e-5)


def test_backoff_survives_a_huge_retry_count():
    assert make_policy(Clock(), jitter=0.0).backoff(10_000, 0.5) == 1.0


def test_defaults_follow_the_go_sdk():
    assert (READ_RECORDS_RETRY.initial_backoff_s, READ_RECORDS_RETRY.max_backoff_s) == (0.016, 3.0)
    assert (META_RETRY.initial_backoff_s, META_RETRY.max_backoff_s) == (0.1, 2.0)
    assert (READ_RECORDS_RETRY.deadline_s, META_RETRY.deadline_s) == (75.0, 35.0)
    assert (META_RETRY.multiplier, META_RETRY.jitter) == (2.0, 0.33)


# ---- run -------------------------------------------------------------------------


def test_returns_after_retriable_failures_sleeping_the_backoff():
    clock = Clock()
    attempt = failing(UNAVAILABLE, DROPPED, "ok")

    result = make_policy(clock).run(attempt, idempotent=True, description="Op", unit_random=lambda: 0.5)

    assert result == "ok" and len(attempt.calls) == 3
    assert clock.sleeps == pytest.approx([0.1, 0.2])


@pytest.mark.parametrize(
    "err",
    [
        errors.ParameterInvalidError("bad"),
        errors.TunnelExpiredError("expired"),
        errors.PermissionDeniedError("no"),
        errors.SequenceNumberMismatchError("seq"),
        errors.ProtocolError("md5"),
        errors.ConfigError("arg"),
        ValueError("not ours"),
    ],
)
def test_non_retriable_errors_are_raised_at_once(err):
    clock = Clock()
    attempt = failing(err, "never")

    with pytest.raises(type(err)) as caught:
        make_policy(clock).run(attempt, idempotent=True, description="Op")

    assert caught.value is err and len(attempt.calls) == 1 and clock.sleeps == []


def test_deadline_raises_the_last_error():
    clock = Clock()
    outcomes = [errors.ServerUnavailableError(f"busy {i}") for i in range(100)]
    attempt = failing(*outcomes)

    with pytest.raises(errors.ServerUnavailableError) as caught:
        make_policy(clock, deadline_s=2.0).run(attempt, idempotent=True, description="Op", unit_random=lambda: 0.5)

    # 0.1 + 0.2 + 0.4 + 0.8 = 1.5 s slept; the next 1.0 s wait would end past 2.0 s.
    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.4, 0.8])
    assert caught.value is outcomes[4] and len(attempt.calls) == 5


def test_deadline_counts_time_spent_in_attempts():
    clock = Clock()

    def slow_failure():
        clock.now += 3.0  # the attempt itself took 3 s
        raise UNAVAILABLE

    with pytest.raises(errors.ServerUnavailableError):
        make_policy(clock, deadline_s=5.0).run(slow_failure, idempotent=True, description="Op")

    assert len(clock.sleeps) == 1  # after 3 s + a wait, a second 3 s try leaves no room


def test_zero_deadline_means_one_attempt():
    clock = Clock()
    attempt = failing(UNAVAILABLE, "ok")
    with pytest.raises(errors.ServerUnavailableError):
        make_policy(clock, deadline_s=0).run(attempt, idempotent=True, description="Op")
    assert len(attempt.calls) == 1


@pytest.mark.parametrize(
    "err, idempotent, expected",
    [
        (UNAVAILABLE, True, True),
        (UNAVAILABLE, False, True),  # the service did nothing
        (NOT_SENT, False, True),  # the request never left
        (DROPPED, True, True),
        (DROPPED, False, False),  # may have been applied
        (errors.TransportError("html 502", code="OTSTunnelServerUnavailable"), False, False),
        (errors.for_code("OTSNewRetriableLooking")("x"), True, False),
        (errors.ResourceGoneError("gone"), True, False),
        (RuntimeError("x"), True, False),
    ],
)
def test_safe_to_retry_matrix(err, idempotent, expected):
    assert is_safe_to_retry(err, idempotent) is expected


def test_non_idempotent_call_is_not_retried_after_a_dropped_connection():
    clock = Clock()
    attempt = failing(DROPPED, "ok")
    with pytest.raises(errors.TransportError):
        make_policy(clock).run(attempt, idempotent=False, description="Checkpoint")
    assert len(attempt.calls) == 1


# ---- construction ---------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, shown",
    [
        (dict(initial_backoff_s=0), "initial_backoff_s must be > 0, got 0"),
        (dict(max_backoff_s=0.05), "got 0.05"),
        (dict(deadline_s=-1), "deadline_s must be >= 0, got -1"),
        (dict(multiplier=0.5), "got 0.5"),
        (dict(jitter=1.0), "jitter must be in [0, 1), got 1.0"),
        (dict(deadline_s="10"), "got '10'"),
        (dict(initial_backoff_s=True), "got True"),
    ],
)
def test_bad_policy_values_are_refused(overrides, shown):
    with pytest.raises(errors.ConfigError) as caught:
        make_policy(Clock(), **overrides)
    assert shown in str(caught.value)


def test_default_policy_pickles_and_with_deadline_copies():
    restored = pickle.loads(pickle.dumps(READ_RECORDS_RETRY))
    assert restored == READ_RECORDS_RETRY
    shorter = READ_RECORDS_RETRY.with_deadline(1.0)
    assert shorter.deadline_s == 1.0 and READ_RECORDS_RETRY.deadline_s == 75.0
    assert shorter.initial_backoff_s == READ_RECORDS_RETRY.initial_backoff_s
