"""The pure heartbeat timer (beam_tunnel.worker.heartbeat): schedule, lease
expiry counted from the send time of the last answered heartbeat, and
validation messages. Times are passed in; no clock, no sleeps."""

import pytest

from beam_tunnel.errors import ConfigError
from beam_tunnel.worker.heartbeat import HeartbeatTimer


def test_defaults_follow_the_sdks():
    timer = HeartbeatTimer()
    assert (timer.interval_s, timer.timeout_s, timer.client_timeout) == (30.0, 300.0, 300)


def test_first_heartbeat_is_due_at_once_after_connecting():
    timer = HeartbeatTimer(interval_s=5, timeout_s=20).connected(100.0)
    assert timer.is_due(100.0)
    assert timer.time_to_next(100.0) == 0.0


def test_next_heartbeat_is_one_interval_after_the_last_send():
    timer = HeartbeatTimer(interval_s=5, timeout_s=20).connected(100.0).sent(101.0)
    assert timer.next_due() == 106.0
    assert timer.time_to_next(102.5) == 3.5
    assert not timer.is_due(105.999)
    assert timer.is_due(106.0)
    # A failed heartbeat keeps the schedule: the next try is an interval later.
    assert timer.sent(106.0).time_to_next(106.0) == 5.0


def test_lease_counts_from_the_send_time_of_the_last_answered_heartbeat():
    timer = HeartbeatTimer(interval_s=5, timeout_s=20).connected(0.0)
    timer = timer.sent(4.0).succeeded(sent_at=4.0)
    assert not timer.lease_expired(23.9)
    assert timer.lease_expired(24.0)
    # Unanswered heartbeats do not renew it.
    assert timer.sent(10.0).lease_expired(24.0)


def test_lease_starts_at_connect_and_not_before():
    timer = HeartbeatTimer(interval_s=1, timeout_s=2)
    assert not timer.lease_expired(1e9)
    assert timer.connected(10.0).lease_expired(12.0)


def test_a_late_answer_never_moves_the_lease_back():
    timer = HeartbeatTimer(interval_s=1, timeout_s=3).connected(0.0).succeeded(5.0).succeeded(2.0)
    assert timer.last_success == 5.0


def test_reconnecting_resets_the_schedule():
    timer = HeartbeatTimer(interval_s=1, timeout_s=3).connected(0.0).sent(0.5).connected(9.0)
    assert timer.is_due(9.0) and not timer.lease_expired(11.9)


def test_client_timeout_is_whole_seconds_rounded_up():
    assert HeartbeatTimer(interval_s=0.2, timeout_s=1.5).client_timeout == 2
    assert HeartbeatTimer(interval_s=0.2, timeout_s=2).client_timeout == 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"interval_s": 0}, "interval_s must be a finite number of seconds > 0, got 0"),
        ({"timeout_s": -1}, "timeout_s must be a finite number of seconds > 0, got -1"),
        ({"interval_s": "5"}, "got '5'"),
        ({"interval_s": float("inf")}, "got inf"),
        ({"interval_s": 10, "timeout_s": 10}, "timeout_s must exceed interval_s, got timeout_s=10 and interval_s=10"),
    ],
)
def test_validation_names_the_bad_values(kwargs, message):
    with pytest.raises(ConfigError) as err:
        HeartbeatTimer(**kwargs)
    assert message in str(err.value)
