"""Adaptive polling (beam_tunnel.worker.polling): the "more data" rule and
the bounded, jittered exponential backoff for idle channels."""

import pytest

from beam_tunnel.errors import ConfigError
from beam_tunnel.worker.polling import PollBackoff, has_more


def test_service_hint_wins_when_present():
    assert has_more(0, 0, True)
    assert not has_more(10_000, 10_000_000, False)


def test_size_heuristic_without_a_hint():
    assert not has_more(500, 900 * 1024, None)
    assert has_more(501, 0, None)
    assert has_more(1, 900 * 1024 + 1, None)


def test_no_wait_while_busy_then_growing_waits_up_to_the_bound():
    backoff = PollBackoff(initial_s=0.02, multiplier=5, max_s=2.0, jitter=0.25)
    assert backoff.delay(0, 0.9) == 0.0
    middle = [backoff.delay(n, 0.5) for n in range(1, 6)]  # rand 0.5: no jitter
    assert middle == pytest.approx([0.02, 0.1, 0.5, 2.0, 2.0])
    assert backoff.delay(10_000, 0.99) == 2.0


def test_jitter_spreads_within_its_share_and_never_exceeds_the_bound():
    backoff = PollBackoff(initial_s=0.1, multiplier=2, max_s=1.0, jitter=0.25)
    assert backoff.delay(1, 0.0) == pytest.approx(0.075)
    assert backoff.delay(1, 0.999999) == pytest.approx(0.125, rel=1e-4)
    assert backoff.delay(5, 0.999999) == 1.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"initial_s": 0}, "initial_s must be a finite number > 0, got 0"),
        ({"max_s": -1}, "max_s must be a finite number > 0, got -1"),
        ({"multiplier": 0.5}, "multiplier must be a number >= 1, got 0.5"),
        ({"jitter": 1}, "jitter must be a number in [0, 1), got 1"),
        ({"initial_s": 3, "max_s": 2}, "initial_s must not exceed max_s, got initial_s=3 and max_s=2"),
    ],
)
def test_validation_names_the_bad_values(kwargs, message):
    with pytest.raises(ConfigError) as err:
        PollBackoff(**kwargs)
    assert message in str(err.value)
