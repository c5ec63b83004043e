"""Process hygiene of the shared job servers: stopped means gone, port too."""

from __future__ import annotations

import os

import pytest

from beam_runners import prism_binary, require_runner
from runner_processes import JobServerProcess, port_open


@pytest.mark.prism
def test_a_stopped_job_server_leaves_no_process_and_no_port():
    require_runner("prism")
    server = JobServerProcess.start(
        "prism",
        lambda port: [str(prism_binary()), "--job_port=%d" % port, "--serve_http=false"],
        timeout_s=30,
    )
    pid = server._process.pid
    assert port_open(server.port)
    server.stop()
    assert not port_open(server.port)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_job_server_that_dies_at_start_is_reported_and_cleaned_up(tmp_path):
    with pytest.raises(RuntimeError, match="exited with 3 before serving"):
        JobServerProcess.start("broken", lambda port: ["sh", "-c", "exit 3"], timeout_s=10)
