"""Fixtures for the pipelines tests: a real EmulatorServer per test on a free
loopback port, and the AccessKey in the environment as a worker reads it."""

from __future__ import annotations

import os
import sys

import pytest

from beam_tunnel.emulator import EmulatorServer

_TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)


@pytest.fixture
def server(tmp_path, monkeypatch):
    with EmulatorServer(data_dir=str(tmp_path / "emulator"), read_max_records=200) as running:
        monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", running.access_key_id)
        monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", running.access_key_secret)
        yield running
