"""Fixtures for the command-line tests: the CLI runs as a real subprocess
(``python -m beam_tunnel.cli``) against a real emulator over loopback."""

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
    with EmulatorServer(read_max_records=25) as running:
        yield running
