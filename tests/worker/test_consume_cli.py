"""``beam-tunnel consume`` as a real subprocess against the emulator:
JSON lines out, progress on stderr, a graceful stop on SIGTERM that resumes
without repeats, and a SIGKILLed consumer whose channels another worker
takes over with repeats only after the dead one's last checkpoint."""

import collections
import json
import os
import re
import signal
import subprocess
import sys
import threading

from beam_tunnel.worker import TunnelWorker

from worker_kit import FAST, Ledger, active_channels, check_channel_runs, make_table, spread_keys, tunnel_client, wait_for, write_rows

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _start(server, output, *extra):
    command = [
        sys.executable, "-m", "beam_tunnel.cli", "--log-level", "WARNING", "consume",
        "--endpoint", server.endpoint, "--instance", server.instance_name,
        "--table", "t", "--tunnel", "tun", "--output", str(output),
        "--heartbeat-interval", "0.2", "--heartbeat-timeout", "2", "--checkpoint-interval", "0.2",
        "--progress-interval", "0.2", "--reconnect-max-delay", "0.2",
        *extra,
    ]  # fmt: skip
    env = dict(
        os.environ,
        ALIBABA_CLOUD_ACCESS_KEY_ID=server.access_key_id,
        ALIBABA_CLOUD_ACCESS_KEY_SECRET=server.access_key_secret,
        PYTHONPATH=os.pathsep.join(filter(None, [_REPO, os.environ.get("PYTHONPATH")])),
    )
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _lines(path):
    """Complete JSON lines written so far (a line cut by SIGKILL is not one)."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    return [json.loads(line) for line in text.split("\n")[:-1]]


def _ident(line):
    n = next(c["value"] for c in line["columns"] if c["name"] == "n")
    return line["primary_key"]["id"], n


def _stop(process):
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    return process.returncode, stderr


def test_consume_creates_a_full_data_tunnel_and_writes_every_row(server, tmp_path):
    make_table(server, "t", partitions=3, stream=False)
    written = write_rows(server, "t", spread_keys(200))
    output = tmp_path / "out.jsonl"
    process = _start(server, output, "--type", "BaseData", "--stop-when-finished")
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    lines = _lines(output)
    assert sorted(_ident(line) for line in lines) == sorted(written)
    assert {line["is_full_data"] for line in lines} == {True}
    assert "created BaseData tunnel 'tun'" in stderr
    assert "stopped: 200 records written" in stderr
    assert "records=" in stderr and "rate=" in stderr and "lag=" in stderr


def test_sigterm_stops_gracefully_and_a_restart_resumes_without_repeats(server, tmp_path):
    make_table(server, "t", partitions=2)
    tunnel_client(server).create_tunnel("t", "tun", "Stream")
    output = tmp_path / "out.jsonl"
    first = write_rows(server, "t", spread_keys(120, "one"))
    process = _start(server, output)
    wait_for(lambda: len(_lines(output)) >= len(first), "the first writes in the file")
    code, stderr = _stop(process)
    assert code == 0, stderr
    second = write_rows(server, "t", spread_keys(120, "two"))
    process = _start(server, output)
    wait_for(lambda: len(_lines(output)) >= len(first) + len(second), "the second writes in the file")
    code, stderr = _stop(process)
    assert code == 0, stderr
    idents = [_ident(line) for line in _lines(output)]
    assert sorted(idents) == sorted(first + second)
    assert re.search(r"lag=\d+\.\ds", stderr), stderr


def test_consumer_killed_with_sigkill_is_taken_over(server, tmp_path, record_property):
    make_table(server, "t", partitions=4)
    client = tunnel_client(server)
    tunnel_id = client.create_tunnel("t", "tun", "Stream")
    output = tmp_path / "out.jsonl"
    ledger = Ledger()
    process = _start(server, output)
    written, stop_writing = [], threading.Event()

    def writer():
        round_ = 0
        while not stop_writing.wait(0.01):
            round_ += 1
            written.extend(write_rows(server, "t", spread_keys(4, f"k{round_}")))

    with TunnelWorker(client, tunnel_id, ledger.processor("survivor"), FAST) as worker:
        wait_for(lambda: len(active_channels(worker)) == 2 and len(_owners(client)) == 2, "two channels each")
        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        try:
            wait_for(lambda: len(_lines(output)) > 100, "the consumer writing")
            process.kill()
            process.wait(60)
            wait_for(lambda: len(active_channels(worker)) == 4, "the survivor holding every channel")
            seen = len(ledger.deliveries)
            wait_for(lambda: len(ledger.deliveries) > seen + 100, "deliveries after the takeover")
        finally:
            stop_writing.set()
            thread.join()
        wait_for(lambda: set(written) <= set(ledger.idents()) | {_ident(l) for l in _lines(output)}, "every write")

    killed = collections.defaultdict(list)
    for line in _lines(output):
        killed[line["channel_id"]].append(_ident(line))
    repeats = 0
    for channel_id, deliveries in ledger.by_channel().items():
        assert check_channel_runs(deliveries) == 0
        taken = [d.ident for d in deliveries]
        dead = killed.get(channel_id, [])
        overlap = len(set(taken) & set(dead))
        # The survivor starts where the dead consumer last checkpointed: its
        # first records on the channel are the tail of what the dead one wrote.
        assert taken[:overlap] == dead[len(dead) - overlap :]
        repeats += overlap
    record_property("repeated_deliveries", repeats)


def _owners(client):
    return {c.client_id for c in client.describe_tunnel("t", "tun").channels if c.client_id}
