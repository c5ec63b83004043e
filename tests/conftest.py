"""Suite-wide test support: ``tests/`` on ``sys.path`` (so any test can
``from beam_runners import pipeline_options``), the ``runner`` fixture over
the real Beam runners, and the session-end stop and check of the shared job
servers. See ``tests/beam_runners.py`` for the API."""

from __future__ import annotations

import os
import sys

import pytest

_TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from beam_runners import runner_params, stop_job_servers  # noqa: E402  (needs the path above)


@pytest.fixture(params=runner_params())
def runner(request) -> str:
    """The name of a Beam runner; pass it to ``beam_runners.pipeline_options``."""
    return request.param


@pytest.fixture(scope="session", autouse=True)
def _beam_job_servers():
    """Stops (and checks) the job servers tests started, once, at session end."""
    yield
    stop_job_servers()
