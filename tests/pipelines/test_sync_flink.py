"""sync_table.py on Flink, run the way the README tells a user to: its
``sync_table`` command line under "On Flink", taken from README.md as
written, in a subprocess pointed at the cached Beam 2.62 job server jar (Beam
starts the job server for the run). The table is changed by several writers
(puts, updates, one-version and all-version column deletes, row deletes) before
and after the tunnel exists; the bounded run then ends with target = source."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from beam_runners import flink_job_server_jar, require_runner
from sync_kit import make_orders, write_all

from beam_tunnel.client import TunnelClient
from pipelines._source_rows import source_rows

_REPO = Path(__file__).resolve().parents[2]
_RUN_TIMEOUT_S = 420  # job server start (a JVM, 20-40 s), the run, the README's 60 s idle shutdown, verify
_EXIT_WAIT_S = 15


def readme_flink_command() -> list:
    """The ``sync_table`` command of README "Pipelines" -> "On Flink", split as
    bash would (continuation lines joined, quotes removed; ``$JAR`` left)."""
    readme = (_REPO / "README.md").read_text()
    start = readme.index("**On Flink**")
    block = re.search(r"```bash\n(.*?)```", readme[start:readme.index("**On Dataflow", start)], re.S)
    assert block, "README 'On Flink' has no ```bash block"
    lines = block.group(1).replace("\\\n", " ").splitlines()
    commands = [line for line in lines if "-m pipelines.sync_table" in line]
    assert len(commands) == 1, f"expected one sync_table command in README 'On Flink', got {commands}"
    return shlex.split(commands[0], comments=True)


def _user_command(jar: Path) -> list:
    words = readme_flink_command()
    assert words[:3] == [".venv/bin/python", "-m", "pipelines.sync_table"], words[:3]
    assert "--flink_job_server_jar=$JAR" in words, "the README command points Beam at the job server jar"
    return [sys.executable, *words[1:3], *(word.replace("$JAR", str(jar)) for word in words[3:])]


def _stop_group(process: subprocess.Popen) -> None:
    """Kill what is left of the run (the pipeline and the job server JVM Beam
    started in its process group) and wait until the group is gone."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(_EXIT_WAIT_S)
    deadline = time.time() + _EXIT_WAIT_S
    while True:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        assert time.time() < deadline, f"process group {process.pid} (pipeline, job server) still alive after SIGKILL"
        time.sleep(0.2)


@pytest.mark.flink
def test_readme_flink_command_syncs_a_table_written_by_several_writers(server, tmp_path):
    require_runner("flink")
    command = _user_command(flink_job_server_jar())
    make_orders(server)
    before = write_all(server, "orders", writers=2, orders=200, changes=400, seed=81)
    TunnelClient(server.endpoint, server.instance_name, server.access_key_id,
                 server.access_key_secret).create_tunnel("orders", "orders-sync", "BaseAndStream")
    after = write_all(server, "orders", writers=3, orders=200, changes=300, seed=91)
    kinds = {kind for writer in before + after for kind in writer.kinds}
    assert kinds == {"put", "update column", "delete one version", "delete all versions", "delete row"}, kinds

    # The README's walkthrough exports these; the AccessKey is already set.
    env = dict(os.environ, TABLESTORE_ENDPOINT=server.endpoint, TABLESTORE_INSTANCE=server.instance_name,
               PYTHONPATH=os.pathsep.join(filter(None, [str(_REPO), os.environ.get("PYTHONPATH")])))
    out_path, err_path = tmp_path / "stdout", tmp_path / "stderr"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        # cwd: the README's relative sqlite:///orders.db lands in tmp_path.
        process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=err, start_new_session=True)
        try:
            try:
                status = process.wait(_RUN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pytest.fail(f"the Flink sync did not end within {_RUN_TIMEOUT_S} s; stderr ends:\n"
                            + err_path.read_text()[-3000:])
        finally:
            _stop_group(process)
    stdout, stderr = out_path.read_text(), err_path.read_text()
    print(stdout)
    assert status == 0, f"exit {status}\n{stdout}\n{stderr[-3000:]}"
    rows = len(source_rows(TunnelClient(server.endpoint, server.instance_name, server.access_key_id,
                                        server.access_key_secret), "orders"))
    assert rows > 0
    assert f"target equals source: {rows} rows" in stdout
    assert (tmp_path / "orders.db").is_file(), "the target is the README's sqlite:///orders.db"
