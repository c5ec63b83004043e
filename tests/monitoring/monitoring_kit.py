"""Helpers for the lag-monitoring tests: run ``beam-tunnel lag``/``monitor``
as real subprocesses against an in-process emulator, read their output
with bounded waits, and stop every process they start."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from typing import Callable, List, Optional

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOUR = 3600.0


def cli_env(server) -> dict:
    """The environment the commands get: the emulator's AccessKey (kept off
    the command line, as users are told to) and this checkout on the path."""
    return dict(
        os.environ,
        ALIBABA_CLOUD_ACCESS_KEY_ID=server.access_key_id,
        ALIBABA_CLOUD_ACCESS_KEY_SECRET=server.access_key_secret,
        PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])),
    )


def command(server, subcommand: str, *extra: str) -> List[str]:
    return [sys.executable, "-m", "beam_tunnel.cli", subcommand,
            "--endpoint", server.endpoint, "--instance", server.instance_name, *extra]


def run_lag(server, *extra: str, table: str = "t", tunnel: str = "tun", timeout: float = 120):
    """``beam-tunnel lag`` to completion (killed if it outlives ``timeout``)."""
    return subprocess.run(command(server, "lag", "--table", table, "--tunnel", tunnel, *extra),
                          env=cli_env(server), capture_output=True, text=True, timeout=timeout)


def lag_json(server, *extra: str, **kwargs):
    """``lag --once --json``: (exit code, the JSON object or None, stderr)."""
    result = run_lag(server, "--once", "--json", *extra, **kwargs)
    document = json.loads(result.stdout) if result.stdout.strip() else None
    return result.returncode, document, result.stderr


class Processes:
    """Starts processes in their own session and stops all of them (and
    their children) at the end of the test, on failure too."""

    def __init__(self) -> None:
        self._started: List[subprocess.Popen] = []

    def start(self, args: List[str], **kwargs) -> subprocess.Popen:
        process = subprocess.Popen(args, start_new_session=True, **kwargs)
        self._started.append(process)
        return process

    def stop_all(self) -> None:
        for process in self._started:
            # The whole session: a browser's helpers outlive their parent.
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                process.communicate(timeout=30)
            except (subprocess.TimeoutExpired, ValueError):
                pass


def read_line(stream, timeout: float, what: str) -> str:
    """One line from a process pipe, waiting at most ``timeout`` seconds."""
    selector = selectors.DefaultSelector()
    selector.register(stream, selectors.EVENT_READ)
    try:
        if not selector.select(timeout):
            raise AssertionError(f"no {what} within {timeout:.0f} s")
        return stream.readline()
    finally:
        selector.close()


def wait_for(predicate: Callable[[], Optional[object]], timeout: float, what: str, step: float = 0.1):
    """Poll ``predicate`` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)
