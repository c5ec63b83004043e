"""Fixtures for the lag-monitoring tests: a real EmulatorServer on a free
loopback port per test (one whose clock the test moves, for the expiry
guard), and a registry that stops every process a test starts."""

from __future__ import annotations

import os
import sys

import pytest

from beam_tunnel.emulator import EmulatorServer, ManualClock

_TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The emulator and worker test kits set up tables, rows and SDK-rule
# tunnel clients; this directory's own kit runs the commands under test.
for _folder in ("monitoring", "worker", "emulator"):
    _path = os.path.join(_TESTS, _folder)
    if _path not in sys.path:
        sys.path.insert(0, _path)

from monitoring_kit import Processes  # noqa: E402  (needs the path above)


@pytest.fixture
def server():
    with EmulatorServer() as running:
        yield running


@pytest.fixture
def far_clock():
    """(server, clock): the emulator's clock moves when the test says, days
    ahead of the wall clock the commands sign their requests with."""
    clock = ManualClock()
    with EmulatorServer(clock=clock, max_date_skew_s=None) as running:
        yield running, clock


@pytest.fixture
def processes():
    registry = Processes()
    try:
        yield registry
    finally:
        registry.stop_all()
