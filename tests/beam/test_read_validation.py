"""ReadFromTunnel validates at construction, naming the bad value, and keeps
secrets out of the pipeline graph."""

from __future__ import annotations

import datetime
import pickle

import apache_beam as beam
import pytest

from beam_tunnel import ReadFromTunnel
from beam_tunnel.errors import ConfigError

_BASE = dict(endpoint="http://127.0.0.1:1", instance="inst", table="t", tunnel="n",
             access_key_id="id", access_key_secret="very-secret-value")


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(table=""), "table must be a non-empty string, got ''"),
        (dict(tunnel=3), "tunnel must be a non-empty string, got 3"),
        (dict(tunnel_type="Bogus"), "Bogus"),
        (dict(endpoint="ftp://x"), "ftp://x"),
        (dict(num_slots=0), "num_slots must be an int >= 1, got 0"),
        (dict(max_slots=True), "max_slots must be an int >= 1, got True"),
        (dict(heartbeat_interval_s=-1), "heartbeat_interval_s must be a finite number of seconds > 0, got -1"),
        (dict(heartbeat_interval_s=10, heartbeat_timeout_s=5), "heartbeat_timeout_s must exceed"),
        (dict(max_bundle_records=0), "max_bundle_records must be an int >= 1, got 0"),
        (dict(max_bundle_seconds=float("inf")), "max_bundle_seconds must be a finite number"),
        (dict(idle_wait_s=-0.5), "idle_wait_s must be a finite number of seconds >= 0, got -0.5"),
        (dict(stop_at="tomorrow"), "stop_at must be an aware datetime.*got 'tomorrow'"),
        (dict(stop_at=datetime.datetime(2030, 1, 1)), "stop_at must be timezone-aware"),
        (dict(stop_at=5.0, stop_when_caught_up=True), "not both"),
        (dict(stop_when_caught_up="yes"), "stop_when_caught_up must be a bool, got 'yes'"),
        (dict(dead_letter=1), "dead_letter must be a bool, got 1"),
        (dict(start_offset="EARLIEST"), "start_offset/end_offset apply to Stream tunnels only"),
        (dict(tunnel_type="Stream", start_offset=7), "start_offset must be 'LATEST', 'EARLIEST' or an aware datetime, got 7"),
        (dict(access_key_id=None), "access_key_secret/sts_token were given without access_key_id"),
        (dict(credentials="not callable", access_key_id=None, access_key_secret=None), "not both|callable"),
    ],
)
def test_bad_arguments_are_refused_with_the_value(changes, message):
    arguments = dict(_BASE)
    arguments.update(changes)
    with pytest.raises(ConfigError, match=message):
        ReadFromTunnel(**arguments)


def test_missing_credentials_name_the_environment_variables(monkeypatch):
    for name in ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    arguments = {k: v for k, v in _BASE.items() if not k.startswith("access_key")}
    with pytest.raises(ConfigError, match="ALIBABA_CLOUD_ACCESS_KEY_ID"):
        ReadFromTunnel(**arguments)


def test_the_secret_is_not_in_the_pipeline_graph_or_display_data():
    pipeline = beam.Pipeline(runner="FnApiRunner")
    _ = pipeline | ReadFromTunnel(**_BASE, tunnel_type="BaseData")
    proto = pipeline.to_runner_api().SerializeToString()
    assert b"very-secret-value" not in proto
    transform = ReadFromTunnel(**_BASE)
    assert "very-secret-value" not in repr(transform.display_data())
    assert b"very-secret-value" not in pickle.dumps(transform._settings)
