"""Running ``beam-tunnel`` as a subprocess and watching what it says.

:class:`Cli` reads stderr on a thread, so a test can wait for a line while
the process runs; every process is killed when the test leaves the ``with``
block, on failure too.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Nothing of the developer's environment leaks in: each test says what the
# CLI finds in its environment.
_SERVICE_VARIABLES = (
    "TABLESTORE_ENDPOINT", "TABLESTORE_INSTANCE",
    "ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN",
)


def cli_env(**variables: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SERVICE_VARIABLES}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_REPO, os.environ.get("PYTHONPATH")]))
    env.update(variables)
    return env


def server_env(server) -> Dict[str, str]:
    """The four variables the emulator's banner tells a user to export."""
    return cli_env(
        TABLESTORE_ENDPOINT=server.endpoint,
        TABLESTORE_INSTANCE=server.instance_name,
        ALIBABA_CLOUD_ACCESS_KEY_ID=server.access_key_id,
        ALIBABA_CLOUD_ACCESS_KEY_SECRET=server.access_key_secret,
    )


def run(*args: str, env: Optional[Dict[str, str]] = None, stdin: Optional[str] = None, timeout: float = 60):
    """Run ``beam-tunnel ARGS`` to completion; the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "beam_tunnel.cli", *args], env=env or cli_env(), input=stdin,
        capture_output=True, text=True, timeout=timeout, cwd=_REPO,
    )


def dead_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cli:
    """``beam-tunnel ARGS`` in the background, stderr collected line by line."""

    def __init__(self, *args: str, env: Optional[Dict[str, str]] = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "beam_tunnel.cli", *args], env=env or cli_env(), cwd=_REPO,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        self._lines: List[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def __enter__(self) -> "Cli":
        return self

    def __exit__(self, *exc_info) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(30)
        self._reader.join(10)

    def _read(self) -> None:
        for line in self.process.stderr:
            with self._lock:
                self._lines.append(line.rstrip("\n"))

    @property
    def lines(self) -> List[str]:
        with self._lock:
            return list(self._lines)

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, pattern: str, timeout: float = 60, after: int = 0) -> re.Match:
        """The first match of ``pattern`` in a line (from line ``after`` on)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines[after:]:
                match = regex.search(line)
                if match:
                    return match
            if self.process.poll() is not None:
                time.sleep(0.2)  # the reader may still hold the last lines
                if not any(regex.search(line) for line in self.lines[after:]):
                    raise AssertionError(f"exited ({self.process.returncode}) without a line matching {pattern!r}:\n{self.stderr}")
                continue
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r} within {timeout} s:\n{self.stderr}")

    def signal(self, signum: int = signal.SIGINT) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        """The exit status; fails the test when it takes longer than ``timeout``."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {timeout} s:\n{self.stderr}") from None
        self._reader.join(10)
        return code
