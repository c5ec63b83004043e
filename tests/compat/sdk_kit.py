"""Drives the Go and Java SDK programs (tests/compat/go, tests/compat/java)
from Python: :class:`SdkProgram` starts one in serve mode, sends it JSON
commands and collects the JSON lines it answers, per command id."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import tempfile
import threading
import time
from typing import Dict, List, Optional

import pytest

import sdk_build

_ids = itertools.count(1)
_RESULTS = ("done", "tunnel", "describe")


def program_command(language: str) -> List[str]:
    """The command that starts ``language``'s program, building it if needed.

    A missing toolchain skips the test with the install command, except
    under CI=true where it fails: CI must run every official-SDK test.
    """
    try:
        return sdk_build.go_program() if language == "go" else sdk_build.java_program()
    except sdk_build.ToolchainMissing as missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"official {language} SDK test cannot run under CI: {missing}")
        pytest.skip(f"official {language} SDK test skipped: {missing}")


def connection(server) -> dict:
    """The fields every command needs to reach ``server`` (an EmulatorServer)."""
    return {
        "endpoint": server.endpoint,
        "instance": server.instance_name,
        "key_id": server.access_key_id,
        "key_secret": server.access_key_secret,
    }


class SdkProgram:
    """One running SDK program in serve mode.

    ``send(op, **fields)`` starts a command and returns its id; ``wait(id)``
    waits (bounded) for its "done" or "error" line; ``lines(id)`` lists what
    it reported so far. ``close()`` stops every command, closes stdin and
    waits for the process to exit, killing it if it does not.
    """

    def __init__(self, language: str, command: List[str]):
        self.language = language
        self._stderr = tempfile.TemporaryFile()
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True, bufsize=1
        )
        self._lock = threading.Condition()
        self._lines: Dict[str, List[dict]] = {}
        self._noise: List[str] = []
        self._reader = threading.Thread(target=self._read, name=f"{language}-sdk-stdout", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for raw in self._process.stdout:
            try:
                line = json.loads(raw)
            except ValueError:
                with self._lock:
                    self._noise.append(raw)
                continue
            with self._lock:
                self._lines.setdefault(line.get("id", ""), []).append(line)
                self._lock.notify_all()
        with self._lock:
            self._lock.notify_all()

    def send(self, op: str, **fields) -> str:
        command_id = f"{op}-{next(_ids)}"
        line = json.dumps(dict(fields, id=command_id, op=op))
        self._process.stdin.write(line + "\n")
        self._process.stdin.flush()
        return command_id

    def stop(self, command_id: str) -> None:
        self._process.stdin.write(json.dumps({"op": "stop", "target": command_id}) + "\n")
        self._process.stdin.flush()

    def lines(self, command_id: str, event: Optional[str] = None) -> List[dict]:
        with self._lock:
            lines = list(self._lines.get(command_id, ()))
        return [line for line in lines if event is None or line.get("event") == event]

    def records(self, command_id: str) -> List[dict]:
        return self.lines(command_id, "record")

    def wait(self, command_id: str, timeout_s: float = 60.0) -> dict:
        """The command's result line ("done", or "tunnel" / "describe" for
        those ops); its error, or a timeout, fails the test."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                for line in self._lines.get(command_id, ()):
                    if line.get("event") == "error":
                        raise AssertionError(f"{self.language} {command_id} failed: {line['error']}\n{self.stderr()}")
                    if line.get("event") in _RESULTS:
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._process.poll() is not None:
                    raise AssertionError(
                        f"{self.language} {command_id}: no 'done' line within {timeout_s} s "
                        f"(exit code {self._process.poll()}); got {len(self._lines.get(command_id, ()))} lines\n"
                        f"{self.stderr()}"
                    )
                self._lock.wait(min(remaining, 0.5))

    def call(self, op: str, timeout_s: float = 60.0, **fields) -> dict:
        """Send a command and wait for its result line."""
        return self.wait(self.send(op, **fields), timeout_s)

    def wait_for_records(self, command_ids, count: int, timeout_s: float = 60.0) -> None:
        """Wait (bounded) until the commands together reported ``count`` records."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                got = sum(1 for cid in command_ids for line in self._lines.get(cid, ()) if line.get("event") == "record")
                if got >= count:
                    return
                errors = [line for cid in command_ids for line in self._lines.get(cid, ()) if line.get("event") == "error"]
                if errors or time.monotonic() > deadline or self._process.poll() is not None:
                    raise AssertionError(
                        f"{self.language} {command_ids}: {got} of {count} records within {timeout_s} s; "
                        f"errors {errors}\n{self.stderr()}"
                    )
                self._lock.wait(0.2)

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-4000:]

    def close(self, timeout_s: float = 30.0) -> int:
        if self._process.poll() is None:
            try:
                self._process.stdin.close()  # EOF: stop every command, exit
            except OSError:
                pass
            try:
                self._process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)
        self._reader.join(10)
        self._stderr.close()
        return self._process.returncode
