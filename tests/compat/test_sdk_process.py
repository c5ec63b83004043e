"""The SDK programs run one command from the command line and stop cleanly:
on SIGTERM (the consumer shuts its worker down and reports what it read) or
at a time limit."""

import json
import signal
import subprocess
import tempfile
import time

import pytest

from scenario_kit import consume_fields, keys, make_table, put_direct, puts, tunnel_client, wait_for
from sdk_kit import connection, program_command

pytestmark = pytest.mark.official_sdk


@pytest.fixture(params=["go", "java"])
def language(request):
    return request.param


def _start(language, command):
    stdout = tempfile.TemporaryFile(mode="w+")
    process = subprocess.Popen(program_command(language) + [json.dumps(command)], stdout=stdout,
                               stderr=subprocess.DEVNULL, text=True)
    return process, stdout


def _lines(stdout):
    stdout.seek(0)
    return [json.loads(line) for line in stdout.read().splitlines() if line.startswith("{")]


def _run_until_stopped(process, stdout, stop):
    try:
        stop(process)
        process.wait(60)
        return _lines(stdout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        stdout.close()


def test_consumer_stops_gracefully_on_sigterm(language, server):
    conn = connection(server)
    make_table(server, "t")
    tunnel_id = tunnel_client(server).create_tunnel("t", "inc", "Stream")
    changes = puts(keys("ab", 5))
    put_direct(server, "t", changes)
    process, stdout = _start(language, dict(conn, id="c", op="consume", **consume_fields(language, tunnel_id)))

    def stop(proc):
        wait_for(lambda: sum(1 for line in _lines(stdout) if line["event"] == "record") >= len(changes)
                 or proc.poll() is not None, f"the {language} consumer to read {len(changes)} records")
        proc.send_signal(signal.SIGTERM)

    lines = _run_until_stopped(process, stdout, stop)
    assert process.returncode == 0
    assert lines[-1]["event"] == "done" and lines[-1]["reason"] == "stopped", lines[-1]
    assert lines[-1]["records"] == len(changes)


def test_consumer_stops_at_its_time_limit(language, server):
    conn = connection(server)
    make_table(server, "t")
    tunnel_id = tunnel_client(server).create_tunnel("t", "idle", "Stream")
    started = time.monotonic()
    process, stdout = _start(
        language, dict(conn, id="c", op="consume", **consume_fields(language, tunnel_id, time_limit_s=1))
    )
    lines = _run_until_stopped(process, stdout, lambda proc: None)
    assert process.returncode == 0
    assert lines[-1]["event"] == "done" and lines[-1]["reason"] == "time_limit" and lines[-1]["records"] == 0
    assert time.monotonic() - started < 30
