"""WorkerConfig (beam_tunnel.worker.config): SDK defaults, the heartbeat
timer and poll backoff it derives, and validation messages naming the value."""

import logging
import pickle

import pytest

from beam_tunnel.errors import ConfigError
from beam_tunnel.worker import WorkerConfig


def test_defaults_follow_the_sdks():
    config = WorkerConfig()
    assert (config.heartbeat_interval_s, config.heartbeat_timeout_s, config.checkpoint_interval_s) == (30.0, 300.0, 10.0)
    assert (config.max_channel_parallelism, config.client_tag, config.max_queued_batches) == (None, None, 2)
    assert (config.max_poll_interval_s, config.reconnect_max_delay_s) == (2.0, 10.0)


def test_numbers_are_stored_as_floats_and_the_config_pickles():
    config = WorkerConfig(heartbeat_interval_s=1, heartbeat_timeout_s=5, checkpoint_interval_s=2, reconnect_max_delay_s=0)
    assert [type(v) for v in (config.heartbeat_interval_s, config.checkpoint_interval_s)] == [float, float]
    assert config.reconnect_max_delay_s == 0.0  # reconnect at once is allowed
    assert pickle.loads(pickle.dumps(config)) == config


def test_derived_timer_and_backoff():
    config = WorkerConfig(heartbeat_interval_s=1, heartbeat_timeout_s=4.5, max_poll_interval_s=0.01)
    timer = config.heartbeat_timer()
    assert (timer.interval_s, timer.timeout_s, timer.client_timeout, timer.last_success) == (1.0, 4.5, 5, None)
    backoff = config.poll_backoff()
    # The first step never exceeds the bound, however small the bound is.
    assert (backoff.initial_s, backoff.max_s) == (0.01, 0.01)
    assert WorkerConfig().poll_backoff().initial_s == 0.02


def test_a_timeout_under_three_intervals_is_warned_about(caplog):
    with caplog.at_level(logging.WARNING, logger="beam_tunnel.worker.config"):
        WorkerConfig(heartbeat_interval_s=10, heartbeat_timeout_s=25)
    assert "heartbeat_timeout_s=25.0 is under three heartbeat intervals" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="beam_tunnel.worker.config"):
        WorkerConfig(heartbeat_interval_s=10, heartbeat_timeout_s=30)
    assert caplog.text == ""


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"heartbeat_interval_s": 0}, "heartbeat interval_s must be a finite number of seconds > 0, got 0"),
        ({"heartbeat_timeout_s": float("nan")}, "heartbeat timeout_s must be a finite number of seconds > 0, got nan"),
        ({"checkpoint_interval_s": True}, "checkpoint_interval_s must be a finite number of seconds > 0, got True"),
        ({"max_poll_interval_s": "2"}, "max_poll_interval_s must be a finite number of seconds > 0, got '2'"),
        ({"reconnect_max_delay_s": -0.5}, "reconnect_max_delay_s must be a finite number of seconds >= 0, got -0.5"),
        ({"max_queued_batches": 0}, "max_queued_batches must be an int >= 1, got 0"),
        ({"max_queued_batches": None}, "max_queued_batches must be an int >= 1, got None"),
        ({"max_channel_parallelism": 1.5}, "max_channel_parallelism must be an int >= 1 or None, got 1.5"),
        ({"client_tag": 7}, "client_tag must be a string or None, got 7"),
    ],
)
def test_validation_names_the_bad_value(kwargs, message):
    with pytest.raises(ConfigError) as err:
        WorkerConfig(**kwargs)
    assert message in str(err.value)
