"""Fixtures for the official Go and Java SDK tests: an EmulatorServer per
test, and one long-lived program per SDK (serve mode) shared by every test,
so the JVM starts once. The programs are stopped at the end of the session,
also when a test fails."""

from __future__ import annotations

import os
import sys

import pytest

from beam_tunnel.emulator import EmulatorServer

_TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from sdk_kit import SdkProgram, program_command  # noqa: E402  (needs the path above)

_programs = {}


@pytest.fixture
def server():
    # Batches of 100 records: every channel is read in several rounds.
    with EmulatorServer(read_max_records=100) as running:
        yield running


@pytest.fixture(scope="session")
def _program_pool():
    yield _programs
    for program in _programs.values():
        program.close()
    _programs.clear()


@pytest.fixture(params=["go", "java"])
def sdk(request, _program_pool) -> SdkProgram:
    """The running program of one official SDK (started on first use)."""
    language = request.param
    if language not in _program_pool:
        _program_pool[language] = SdkProgram(language, program_command(language))
    return _program_pool[language]
