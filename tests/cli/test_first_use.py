"""A newcomer's first use of the command line, as the README tells it: start
the emulator, create a table with partitions and a stream, write rows,
consume them; and the mistakes a newcomer makes get a clear error naming
the flag or the path, never a traceback. Real subprocesses throughout."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys

import pytest

from cli_kit import Cli, cli_env, run, server_env

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _start_emulator(*args):
    process = subprocess.Popen(
        [sys.executable, "-m", "beam_tunnel.cli", "emulator", "--port", "0", *args],
        env=cli_env(), cwd=_REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    banner = []
    for line in process.stdout:
        banner.append(line.rstrip("\n"))
        if line.startswith("Stop with"):
            break
    return process, banner


def _stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(30)


def _exports(banner):
    """The variables the banner's `export` lines set."""
    found = {}
    for line in banner:
        if line.strip().startswith("export "):
            for pair in line.split()[1:]:
                name, _, value = pair.partition("=")
                found[name] = value
    return found


def test_the_readme_walkthrough_emulator_create_table_put_rows_consume(tmp_path):
    emulator, banner = _start_emulator("--data-dir", str(tmp_path / "data"))
    try:
        exports = _exports(banner)
        assert set(exports) == {"TABLESTORE_ENDPOINT", "TABLESTORE_INSTANCE",
                                "ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET"}, banner
        env = cli_env(**exports)
        done = run("emulator", "create-table", "orders", "--pk", "region:STRING", "--pk", "order_id:INTEGER",
                   "--split-points", "eu,us", "--stream", env=env)
        assert done.returncode == 0, done.stderr
        assert "3 partition(s)" in done.stdout
        done = run("emulator", "put-rows", "orders", "--generate", "60", env=env)
        assert done.returncode == 0 and "wrote 60 row(s)" in done.stdout, done.stderr
        output = tmp_path / "orders.jsonl"
        with Cli("consume", "--table", "orders", "--tunnel", "orders-sync", "--type", "BaseAndStream",
                 "--output", str(output), "--progress-interval", "0.2", "--checkpoint-interval", "0.5",
                 env=env) as consume:
            consume.wait_for_line(r"records=60 .*phase=(full data|stream)")
            done = run("emulator", "put-rows", "orders", '{"region": "ap", "order_id": 1000, "amount": 9.5}',
                       '{"region": "zz", "order_id": 1001, "amount": 1}', env=env)
            assert done.returncode == 0, done.stderr
            consume.wait_for_line(r"records=62 .*phase=stream lag=\d+\.\ds channels=3")
            consume.signal(signal.SIGINT)
            assert consume.wait(timeout=60) == 0
        lines = [json.loads(line) for line in output.read_text().splitlines()]
        assert [line["is_full_data"] for line in lines].count(True) == 60
        changes = [line for line in lines if not line["is_full_data"]]
        assert sorted(line["primary_key"]["order_id"] for line in changes) == [1000, 1001]
        assert "phase=full data" in consume.stderr or "phase=stream" in consume.stderr
    finally:
        _stop(emulator)


def test_the_banner_never_prints_a_secret_given_on_the_command_line(tmp_path):
    emulator, banner = _start_emulator("--data-dir", str(tmp_path), "--access-key-id", "my-id",
                                       "--access-key-secret", "my-very-secret")
    try:
        text = "\n".join(banner)
        assert "my-very-secret" not in text
        assert "access key id:     my-id" in text
        assert "(given with --access-key-secret; not shown)" in text
        endpoint = next(line.split()[-1] for line in banner if line.strip().startswith("endpoint:"))
        done = run("consume", "--endpoint", endpoint, "--instance", "beam-tunnel", "--access-key-id", "my-id",
                   "--table", "t", "--tunnel", "tun", env=cli_env(ALIBABA_CLOUD_ACCESS_KEY_SECRET="my-very-secret"))
        assert "AccessKey my-id (secret from $ALIBABA_CLOUD_ACCESS_KEY_SECRET)" in done.stderr
        assert "my-very-secret" not in done.stderr
    finally:
        _stop(emulator)


def test_a_busy_port_is_named(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run("emulator", "--port", str(port), "--data-dir", str(tmp_path))
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: the port is already in use" in done.stderr
    assert "Traceback" not in done.stderr


def test_consume_without_keys_says_which_flags_or_variables_give_them(server, tmp_path):
    done = run("consume", "--endpoint", server.endpoint, "--instance", server.instance_name,
               "--table", "t", "--tunnel", "tun", env=cli_env())
    assert done.returncode == 2
    assert "--access-key-id" in done.stderr and "$ALIBABA_CLOUD_ACCESS_KEY_SECRET" in done.stderr
    assert "access_key_id" not in done.stderr
    done = run("consume", "--table", "t", "--tunnel", "tun", env=cli_env())
    assert done.returncode == 2 and "no endpoint: pass --endpoint or set $TABLESTORE_ENDPOINT" in done.stderr


def test_consume_takes_the_keys_from_flags_with_the_secret_from_the_environment(server, tmp_path):
    server.backend.tables.create_table("t", [_pk("id")])
    env = cli_env(ALIBABA_CLOUD_ACCESS_KEY_SECRET=server.access_key_secret)
    done = run("consume", "--endpoint", server.endpoint, "--instance", server.instance_name,
               "--access-key-id", server.access_key_id, "--table", "t", "--tunnel", "tun", "--type", "BaseData",
               "--stop-when-finished", "--output", str(tmp_path / "o.jsonl"), env=env)
    assert done.returncode == 0, done.stderr


def _pk(name):
    from beam_tunnel.emulator.model.keys import PkColumn

    return PkColumn(name, "STRING")


@pytest.mark.parametrize("where", ["missing-folder/out.jsonl", "."])
def test_output_into_a_missing_folder_or_onto_a_folder_is_a_clear_error(server, tmp_path, where):
    path = str(tmp_path / where)
    done = run("consume", "--table", "t", "--tunnel", "tun", "--output", path, env=server_env(server))
    assert done.returncode == 2, done.stderr
    assert f"--output {path!r}" in done.stderr
    assert "Traceback" not in done.stderr


def test_log_level_is_accepted_after_the_subcommand(server, tmp_path):
    done = run("consume", "--table", "missing", "--tunnel", "tun", "--output", str(tmp_path / "o"),
               "--log-level", "debug", env=server_env(server))
    assert done.returncode == 1, done.stderr
    assert "DEBUG beam_tunnel.client.transport: [http] ListTunnel" in done.stderr
    done = run("emulator", "partitions", "t", "--log-level", "DEBUG", env=server_env(server))
    assert "unrecognized arguments" not in done.stderr
    assert "OTSObjectNotExist" in done.stderr or "does not exist" in done.stderr


def test_bad_worker_numbers_are_reported_by_their_flag(server):
    done = run("consume", "--table", "t", "--tunnel", "tun", "--heartbeat-interval", "-1", env=server_env(server))
    assert done.returncode == 2
    assert "argument --heartbeat-interval: must be > 0, got -1" in done.stderr
    done = run("consume", "--table", "t", "--tunnel", "tun", "--heartbeat-interval", "10",
               "--heartbeat-timeout", "5", env=server_env(server))
    assert done.returncode == 2
    assert re.search(r"--heartbeat-timeout", done.stderr) and "_s" not in done.stderr, done.stderr


def test_put_rows_rejects_a_row_without_its_key_naming_the_row(server):
    server.backend.tables.create_table("t", [_pk("id")])
    done = run("emulator", "put-rows", "t", '{"id": "a", "n": 1}', '{"n": 2}', env=server_env(server))
    assert done.returncode == 2
    assert "row 2 lacks primary-key column(s) id" in done.stderr
    done = run("emulator", "put-rows", "t", "-", stdin='{"id": "b"}\n{"id": "c", "n": 3}\n', env=server_env(server))
    assert done.returncode == 0 and "wrote 2 row(s)" in done.stdout, done.stderr


def test_progress_says_full_data_then_stream(server, tmp_path):
    from beam_tunnel.emulator.admin import AdminClient

    admin = AdminClient(server.endpoint)
    admin.create_table("t", [("id", "STRING")], split_points=["m"], stream=True)
    # 25 records per read (the fixture's limit): the full phase lasts many progress lines.
    admin.put_rows("t", [((("id", f"{'az'[i % 2]}{i:05d}"),), {"n": i}) for i in range(3000)])
    with Cli("consume", "--table", "t", "--tunnel", "tun", "--type", "BaseAndStream", "--output",
             str(tmp_path / "o.jsonl"), "--progress-interval", "0.1", "--checkpoint-interval", "0.5",
             env=server_env(server)) as cli:
        cli.wait_for_line(r"phase=full data lag=- channels=\d")
        cli.wait_for_line(r"records=3000 .*phase=stream")
        admin.put_rows("t", [((("id", "a-change"),), {"n": -1})])
        cli.wait_for_line(r"records=3001 .*phase=stream lag=\d+\.\ds")
        cli.signal(signal.SIGTERM)
        assert cli.wait(timeout=60) == 0
