"""Fixtures for the ReadFromTunnel tests: a real EmulatorServer per test on
a free loopback port; helpers live in beam_kit.py."""

from __future__ import annotations

import os
import sys

import pytest

from beam_tunnel.emulator import EmulatorServer

_TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)


@pytest.fixture
def server(tmp_path):
    # Small batches, so every channel is read in several batches and
    # commits fall between them.
    with EmulatorServer(data_dir=str(tmp_path / "emulator"), read_max_records=200) as running:
        yield running
