"""Fixtures for emulator tests: a running EmulatorServer per test, the
official tablestore SDK pointed at it, and a raw signed-request client for
wire-level tests."""

from __future__ import annotations

import os
import sys

import pytest

from beam_tunnel.emulator import EmulatorServer

_TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from tunnel_kit import ots_client  # noqa: E402  (needs the path above)
from wire_kit import RawClient  # noqa: E402


@pytest.fixture
def server():
    with EmulatorServer() as running:
        yield running


@pytest.fixture
def ots(server):
    """The official Python SDK client, without retries (errors surface at once)."""
    return ots_client(server)


@pytest.fixture
def raw(server):
    client = RawClient(server)
    yield client
    client.close()
