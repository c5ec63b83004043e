"""Builds the Go and Java programs that drive the official SDKs, once per
version of their sources, into a cache outside the repository
(``$BEAM_TUNNEL_CACHE`` or ``~/.cache/beam_tunnel/compat``).

``python tests/compat/sdk_build.py`` (what ``make compat`` runs) builds both
and prints where; a second run with unchanged sources does nothing. Tests and
benchmarks call :func:`go_program` / :func:`java_program` for the command
that starts a program, building first when needed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from typing import List, Optional

_HERE = os.path.dirname(os.path.abspath(__file__))
GO_DIR = os.path.join(_HERE, "go")
JAVA_DIR = os.path.join(_HERE, "java")

GO_INSTALL = "install Go 1.22 or later (the Go toolchain, e.g. /usr/local/go/bin/go), then run `make compat`"
JAVA_INSTALL = "run `apt-get install openjdk-17-jdk-headless maven` (Java 17 and Maven), then `make compat`"

# A build of the SDK programs downloads modules / artifacts on first use.
_BUILD_TIMEOUT_S = 900


class ToolchainMissing(RuntimeError):
    """A compiler or build tool the program needs is not installed."""


def cache_root() -> str:
    return os.environ.get("BEAM_TUNNEL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "beam_tunnel", "compat")


def _source_hash(root: str) -> str:
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "target")
        for name in sorted(files):
            path = os.path.join(folder, name)
            digest.update(os.path.relpath(path, root).encode() + b"\0")
            with open(path, "rb") as source:
                digest.update(source.read() + b"\0")
    return digest.hexdigest()[:16]


def _tool(name: str, extra_dirs=(), install: str = "") -> str:
    found = shutil.which(name)
    for folder in extra_dirs:
        candidate = os.path.join(folder, name)
        if not found and os.access(candidate, os.X_OK):
            found = candidate
    if not found:
        raise ToolchainMissing(f"`{name}` not found: {install}")
    return found


def _build_into(final_dir: str, build) -> None:
    """Run ``build(tmp_dir)`` and move the result to ``final_dir`` atomically,
    so an interrupted build never leaves a half-written cache entry."""
    os.makedirs(os.path.dirname(final_dir), exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix=os.path.basename(final_dir) + ".", dir=os.path.dirname(final_dir))
    try:
        build(tmp_dir)
        try:
            os.rename(tmp_dir, final_dir)
        except OSError:
            if not os.path.isdir(final_dir):  # another process did not win the race
                raise
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _run(args: List[str], cwd: str, env: Optional[dict] = None) -> None:
    result = subprocess.run(
        args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=_BUILD_TIMEOUT_S
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed in {cwd} (exit {result.returncode}):\n{result.stdout[-4000:]}")


def go_program() -> List[str]:
    """The command that runs the Go program (built on first use)."""
    go = _tool("go", ["/usr/local/go/bin"], GO_INSTALL)
    final_dir = os.path.join(cache_root(), "go-" + _source_hash(GO_DIR))
    binary = os.path.join(final_dir, "compat")
    if not os.path.exists(binary):
        env = dict(os.environ, GOFLAGS="-mod=readonly", CGO_ENABLED="0")
        _build_into(final_dir, lambda tmp: _run([go, "build", "-trimpath", "-o", os.path.join(tmp, "compat"), "."],
                                                GO_DIR, env))
    return [binary]


def java_program() -> List[str]:
    """The command that runs the Java program (built on first use)."""
    java = _tool("java", install=JAVA_INSTALL)
    mvn = _tool("mvn", install=JAVA_INSTALL)
    final_dir = os.path.join(cache_root(), "java-" + _source_hash(JAVA_DIR))
    jar = os.path.join(final_dir, "compat.jar")
    if not os.path.exists(jar):
        def build(tmp: str) -> None:
            target = os.path.join(tmp, "target")
            _run([mvn, "-q", "-B", "package", "-DskipTests", f"-Dcompat.build.dir={target}"], JAVA_DIR)
            os.rename(os.path.join(target, "compat.jar"), os.path.join(tmp, "compat.jar"))
            shutil.rmtree(target)

        _build_into(final_dir, build)
    # A small heap and the serial collector: the program holds little, and the
    # 2-core machines run it beside the emulator.
    return [java, "-Xmx512m", "-XX:+UseSerialGC", "-jar", jar]


def main() -> int:
    failed = False
    for name, build in (("go", go_program), ("java", java_program)):
        try:
            print(f"{name}: {' '.join(build())}")
        except ToolchainMissing as missing:
            print(f"{name}: skipped, {missing}; the official {name} SDK tests will be skipped (fail under CI=true)")
            failed = failed or os.environ.get("CI") == "true"
        except RuntimeError as error:
            print(f"{name}: build failed: {error}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
