"""A throwaway PostgreSQL server for the tests: ``initdb`` into a temporary
directory, ``pg_ctl start`` on a free loopback port, stopped and removed at
the end, on failure too.

PostgreSQL refuses to run as root, so as root the server runs as the
``postgres`` user Debian's package creates (else ``nobody``). Without the
binaries the tests skip with the install command, and fail under CI=true
(``make postgres`` installs them).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from typing import Iterator, Optional

import pytest

INSTALL = "apt-get update && apt-get install -y postgresql   (or: make postgres)"


def _bin_dir() -> Optional[str]:
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return os.path.dirname(os.path.realpath(found))
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                      key=lambda path: int(path.split("/")[-3]) if path.split("/")[-3].isdigit() else 0)
    return os.path.dirname(versions[-1]) if versions else None


def require_postgres() -> str:
    """The directory of initdb/pg_ctl, or skip (fail under CI=true)."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        message = f"PostgreSQL (initdb, pg_ctl) not found; install it: {INSTALL}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return bin_dir


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run_as(user: Optional[pwd.struct_passwd], *command: str, timeout: float = 120) -> None:
    kwargs = {} if user is None else dict(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stdout[-2000:]} {done.stderr[-2000:]}")


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Start a server; yield its SQLAlchemy URL (psycopg driver)."""
    bin_dir = require_postgres()
    user = None
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            user = pwd.getpwnam("nobody")
    home = tempfile.mkdtemp(prefix="beam-tunnel-pg-")
    data, log = os.path.join(home, "data"), os.path.join(home, "server.log")
    if user is not None:
        os.chown(home, user.pw_uid, user.pw_gid)
    port = _free_port()
    started = False
    try:
        _run_as(user, os.path.join(bin_dir, "initdb"), "-D", data, "-U", "sync", "--auth=trust", "-E", "UTF8",
                "--no-locale", "--no-sync")
        _run_as(user, os.path.join(bin_dir, "pg_ctl"), "-D", data, "-l", log, "-w", "-t", "60",
                "-o", f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        started = True
        yield f"postgresql+psycopg://sync@127.0.0.1:{port}/postgres"
    finally:
        if started:
            _run_as(user, os.path.join(bin_dir, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "-t", "60", "stop")
        shutil.rmtree(home, ignore_errors=True)
