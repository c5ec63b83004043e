"""The beam_runners API (pipelines on each runner: test_runner_behaviour.py)."""

from __future__ import annotations

import pytest
from apache_beam.options.pipeline_options import StandardOptions

import beam_runners
from beam_runners import RUNNERS, pipeline_options


def test_options_name_the_runner_and_carry_streaming(runner):
    options = pipeline_options(runner, streaming=True)
    standard = options.view_as(StandardOptions)
    assert standard.streaming is True
    expected = {"fnapi": "FnApiRunner", "prism": "PrismRunner", "flink": "FlinkRunner"}[runner]
    assert standard.runner == expected


def test_extra_options_override_the_defaults():
    options = pipeline_options("fnapi", direct_num_workers=3, job_name="custom")
    flags = options.get_all_options()
    assert flags["direct_num_workers"] == 3
    assert flags["job_name"] == "custom"


def test_an_unknown_runner_is_refused_by_name():
    with pytest.raises(ValueError, match="'spark'.*fnapi, prism, flink"):
        pipeline_options("spark")


def test_a_missing_runner_skips_with_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setenv("BEAM_TUNNEL_RUNNER_CACHE", str(tmp_path))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="make runners"):
        beam_runners.require_runner("prism")


def test_a_missing_runner_fails_under_ci(monkeypatch, tmp_path):
    monkeypatch.setenv("BEAM_TUNNEL_RUNNER_CACHE", str(tmp_path))
    monkeypatch.setenv("CI", "true")
    for name in ("prism", "flink"):
        with pytest.raises(beam_runners.RunnerMissing, match=str(tmp_path)):
            beam_runners.require_runner(name)


def test_runner_names_are_stable():
    assert RUNNERS == ("fnapi", "prism", "flink")
