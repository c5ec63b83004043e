"""Pipeline options for the real Beam runners the suite runs on.

Stable API (other test files depend on these names):

``RUNNERS = ("fnapi", "prism", "flink")``
    ``fnapi``: Beam's in-process FnApiRunner (what DirectRunner falls back to
    without Prism). ``prism``: Beam's Go runner, what DirectRunner is on a
    user's machine. ``flink``: Beam's portable Flink runner on an embedded
    MiniCluster.

``pipeline_options(runner, *, streaming=False, **extra) -> PipelineOptions``
    Options that run a pipeline on ``runner``. ``streaming=True`` adds
    ``--streaming``. ``extra`` are more options as keyword arguments, rendered
    as ``--name=value`` (``True`` -> ``--name``; ``False``/``None`` -> left
    out); they override the defaults below. For prism and flink the call first
    does ``require_runner(runner)`` and starts the session's shared job server
    if it is not running yet (see below).

    - fnapi: ``--runner=FnApiRunner --direct_num_workers=1`` (more workers
      silently drop SDF residuals).
    - prism: ``PrismRunner``, ``--prism_location`` = the cached binary,
      ``--job_endpoint`` = a Prism process shared by the session, LOOPBACK.
    - flink: ``FlinkRunner``, ``--flink_master=[local]``,
      ``--flink_job_server_jar`` = the cached job server, ``--job_endpoint`` =
      that job server shared by the session, LOOPBACK, ``--parallelism=1``,
      ``--checkpointing_interval=1000`` (bundle finalization runs only after a
      Flink checkpoint), ``--shutdown_sources_after_idle_ms=10000`` (with
      checkpointing on, Flink would otherwise never end a streaming job; a
      streaming pipeline on Flink so lasts at least 10 s). Flink here is the
      2.62.0 job server: see README "Beam runners" for what it does.

``require_runner(runner) -> None``
    Returns if ``runner`` is installed. Otherwise, with ``CI=true`` it raises
    ``RunnerMissing`` (the test fails); elsewhere it calls ``pytest.skip`` with
    the one command that installs it (``make runners``).

``runner_params() -> list``
    ``RUNNERS`` as marked ``pytest.param``s, for a module- or session-scoped
    fixture that runs one pipeline per runner.

``stop_job_servers() -> None``
    Stops every shared job server this process started and checks that its
    process is gone and its port closed. ``tests/conftest.py`` calls it at
    session end; it is also registered with ``atexit``.

Fixtures (``tests/conftest.py``): ``runner`` is parametrized over ``RUNNERS``
and marks the ``prism`` and ``flink`` cases with ``pytest.mark.prism`` /
``pytest.mark.flink``, so ``pytest -m flink`` selects them::

    def test_x(runner):
        with beam.Pipeline(options=pipeline_options(runner, streaming=True)) as p:
            ...

Why shared job servers: a Flink job server is a JVM that takes seconds to
start; one per session, not per test. Every job server runs in its own process
group, dies with the test process (PR_SET_PDEATHSIG) and is stopped and
checked at session end.

Installation: ``make runners`` (``tests/runners/install.sh``) builds Prism and
fetches the Flink job server into ``$BEAM_TUNNEL_RUNNER_CACHE`` or
``${XDG_CACHE_HOME:-~/.cache}/beam_tunnel/runners``; ``make test`` runs it.
"""

from __future__ import annotations

import atexit
import os
import threading
from pathlib import Path

from apache_beam.options.pipeline_options import PipelineOptions

from runner_processes import JobServerProcess

RUNNERS = ("fnapi", "prism", "flink")

INSTALL_COMMAND = "make runners"

_RUNNERS_DIR = Path(__file__).resolve().parent / "runners"
_FLINK_CHECKPOINT_INTERVAL_MS = 1000
# Flink ends a streaming job only once its sources shut down, and Beam 2.62
# then drops SDF residuals still waiting for their resume timer: keep the
# Impulse up long enough for test-sized SDFs to finish.
_FLINK_SOURCE_IDLE_SHUTDOWN_MS = 10_000
_FLINK_START_TIMEOUT_S = 120.0
_PRISM_START_TIMEOUT_S = 30.0


class RunnerMissing(RuntimeError):
    """A runner the test needs is not installed (raised only with CI=true)."""


def _versions() -> dict:
    versions = {}
    for line in (_RUNNERS_DIR / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            versions[name.strip()] = value.strip()
    return versions


def runner_params() -> list:
    """``RUNNERS`` as ``pytest.param``s marked ``fnapi``/``prism``/``flink``,
    for fixtures of a wider scope than the ``runner`` fixture."""
    import pytest

    return [pytest.param(name, marks=getattr(pytest.mark, name), id=name) for name in RUNNERS]


def runner_cache_dir() -> Path:
    """Where install.sh puts the runners (the same rule as the script)."""
    explicit = os.environ.get("BEAM_TUNNEL_RUNNER_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "beam_tunnel" / "runners"


def prism_binary() -> Path:
    return runner_cache_dir() / "prism" / _versions()["PRISM_VERSION"] / "prism"


def flink_job_server_jar() -> Path:
    versions = _versions()
    folder = "%s-%s" % (versions["FLINK_RUNNER_ARTIFACT"], versions["FLINK_RUNNER_VERSION"])
    return runner_cache_dir() / "flink" / folder / "job-server.jar"


def _check_runner_name(runner: str) -> None:
    if runner not in RUNNERS:
        raise ValueError("unknown runner %r: expected one of %s" % (runner, ", ".join(RUNNERS)))


def _missing_reason(runner: str):
    if runner == "prism" and not os.access(prism_binary(), os.X_OK):
        return "Prism binary not found at %s" % prism_binary()
    if runner == "flink" and not flink_job_server_jar().is_file():
        return "Flink job server not found at %s" % flink_job_server_jar()
    return None


def require_runner(runner: str) -> None:
    _check_runner_name(runner)
    reason = _missing_reason(runner)
    if reason is None:
        return
    message = "%s; install it with `%s`" % (reason, INSTALL_COMMAND)
    if os.environ.get("CI", "").lower() == "true":
        raise RunnerMissing(message)
    import pytest

    pytest.skip(message)


class _SharedJobServers:
    """One job server process per runner for the whole test session,
    (re)started on first use."""

    def __init__(self):
        self._lock = threading.Lock()
        self._servers = {}

    def endpoint(self, runner: str) -> str:
        with self._lock:
            server = self._servers.get(runner)
            if server is None or not server.alive():
                if server is not None:
                    server.stop()
                server = self._start(runner)
                self._servers[runner] = server
            return server.endpoint

    def _start(self, runner: str) -> JobServerProcess:
        if runner == "prism":
            return JobServerProcess.start(
                "prism",
                lambda port: [
                    str(prism_binary()),
                    "--job_port=%d" % port,
                    "--serve_http=false",
                    "--log_level=warn",
                ],
                timeout_s=_PRISM_START_TIMEOUT_S,
            )
        return JobServerProcess.start(
            "flink",
            lambda port: [
                "java",
                "-Xmx1g",
                "-jar",
                str(flink_job_server_jar()),
                "--flink-master=[local]",
                "--job-port=%d" % port,
                "--artifact-port=0",
                "--expansion-port=-1",
            ],
            timeout_s=_FLINK_START_TIMEOUT_S,
        )

    def stop_all(self) -> None:
        with self._lock:
            servers, self._servers = list(self._servers.values()), {}
        errors = []
        for server in servers:
            try:
                server.stop()
            except Exception as error:  # keep stopping the others
                errors.append(error)
        if errors:
            raise errors[0]


_SHARED = _SharedJobServers()
atexit.register(_SHARED.stop_all)


def stop_job_servers() -> None:
    _SHARED.stop_all()


def _render(flags: dict) -> list:
    rendered = []
    for name, value in flags.items():
        if value is None or value is False:
            continue
        rendered.append("--%s" % name if value is True else "--%s=%s" % (name, value))
    return rendered


def pipeline_options(runner: str, *, streaming: bool = False, **extra) -> PipelineOptions:
    _check_runner_name(runner)
    if runner == "fnapi":
        flags = {"runner": "FnApiRunner", "direct_num_workers": 1}
    else:
        require_runner(runner)
        flags = {"environment_type": "LOOPBACK", "job_endpoint": _SHARED.endpoint(runner)}
        if runner == "prism":
            flags.update(runner="PrismRunner", prism_location=prism_binary())
        else:
            flags.update(
                runner="FlinkRunner",
                flink_master="[local]",
                flink_job_server_jar=flink_job_server_jar(),
                parallelism=1,
                checkpointing_interval=_FLINK_CHECKPOINT_INTERVAL_MS,
                shutdown_sources_after_idle_ms=_FLINK_SOURCE_IDLE_SHUTDOWN_MS,
            )
    flags["streaming"] = streaming
    flags.update(extra)
    return PipelineOptions(_render(flags))
