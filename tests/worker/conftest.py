"""Fixtures for the TunnelWorker tests: a real EmulatorServer per test on a
free loopback port; the helpers live in worker_kit.py."""

from __future__ import annotations

import os
import sys

import pytest

from beam_tunnel.emulator import EmulatorServer

_TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)


@pytest.fixture
def server():
    # Small batches, so every channel is read in several rounds and
    # checkpoints fall between batches.
    with EmulatorServer(read_max_records=25) as running:
        yield running
