"""A job server process (Prism, Flink) owned by the test session: started on
a free loopback port, stopped with its whole process group, and checked to be
gone (process and port) after it is stopped."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from typing import Callable, List

_PR_SET_PDEATHSIG = 1
_STOP_GRACE_S = 15.0
_KILL_WAIT_S = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: if the test process is killed
    # (even with SIGKILL) the kernel kills the job server too.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class JobServerProcess:
    """Use ``JobServerProcess.start``; ``endpoint`` is ``localhost:<port>``."""

    def __init__(self, name: str, process: subprocess.Popen, port: int, log_path: str):
        self.name = name
        self.port = port
        self.endpoint = "localhost:%d" % port
        self.log_path = log_path
        self._process = process

    @classmethod
    def start(
        cls, name: str, command_for_port: Callable[[int], List[str]], *, timeout_s: float
    ) -> "JobServerProcess":
        port = free_port()
        log = tempfile.NamedTemporaryFile(
            prefix="beam_tunnel-%s-" % name, suffix=".log", delete=False
        )
        # PDEATHSIG follows the thread that forks; only the main thread lives
        # as long as the session.
        on_main_thread = threading.current_thread() is threading.main_thread()
        process = subprocess.Popen(
            command_for_port(port),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if on_main_thread else None,
        )
        log.close()
        server = cls(name, process, port, log.name)
        try:
            server._wait_until_serving(timeout_s)
        except BaseException:
            server.stop()
            raise
        return server

    def alive(self) -> bool:
        return self._process.poll() is None

    def _log_tail(self, lines: int = 20) -> str:
        try:
            with open(self.log_path, errors="replace") as log:
                return "".join(log.readlines()[-lines:])
        except OSError:
            return "(no log)"

    def _wait_until_serving(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(
                    "%s job server exited with %s before serving on port %d; log %s:\n%s"
                    % (self.name, self._process.returncode, self.port, self.log_path, self._log_tail())
                )
            if port_open(self.port):
                return
            time.sleep(0.2)
        raise TimeoutError(
            "%s job server did not serve on port %d within %.0f s; log %s:\n%s"
            % (self.name, self.port, timeout_s, self.log_path, self._log_tail())
        )

    def stop(self) -> None:
        """Stop the process group; raise if the process or the port survives."""
        pgid = self._process.pid  # start_new_session: the leader's pid is the pgid
        if _group_alive(pgid):
            os.killpg(pgid, signal.SIGTERM)
            try:
                self._process.wait(timeout=_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                pass
            if _group_alive(pgid):
                os.killpg(pgid, signal.SIGKILL)
        try:
            self._process.wait(timeout=_KILL_WAIT_S)
        except subprocess.TimeoutExpired:
            raise RuntimeError(
                "%s job server (pid %d) still running after SIGKILL" % (self.name, pgid)
            ) from None
        deadline = time.monotonic() + _KILL_WAIT_S
        while (_group_alive(pgid) or port_open(self.port)) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _group_alive(pgid):
            raise RuntimeError("%s job server left processes in group %d" % (self.name, pgid))
        if port_open(self.port):
            raise RuntimeError("%s job server port %d still open after stop" % (self.name, self.port))
        try:
            os.unlink(self.log_path)
        except OSError:
            pass
