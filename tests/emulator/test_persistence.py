"""Durability: the emulator as a separate process (the CLI), killed with
SIGKILL right after acknowledging writes or a checkpoint, loses none of them."""

import os
import signal
import subprocess
import sys

import pytest

tablestore = pytest.importorskip("tablestore")

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _start(data_dir):
    env = dict(os.environ, PYTHONPATH=_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-m", "beam_tunnel.cli", "emulator", "--port", "0", "--data-dir", str(data_dir),
         "--instance", "durable", "--access-key-id", "ak", "--access-key-secret", "sk"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=_ROOT,
    )
    lines = []
    endpoint = None
    for line in proc.stdout:
        lines.append(line)
        if line.strip().startswith("endpoint:"):
            endpoint = line.split(":", 1)[1].strip()
        if line.startswith("Stop with"):
            break
    if endpoint is None:
        proc.wait(10)
        pytest.fail(f"emulator did not start: {''.join(lines)}")
    client = tablestore.OTSClient(endpoint, "ak", "sk", "durable", retry_policy=tablestore.NoRetryPolicy())
    return proc, client, lines


def test_kill_9_loses_nothing_acknowledged(tmp_path):
    proc, ots, lines = _start(tmp_path)
    try:
        assert any("access key id:     ak" in line for line in lines)
        ots.create_table(tablestore.TableMeta("t", [("id", "INTEGER")]), tablestore.TableOptions(),
                         tablestore.ReservedThroughput(tablestore.CapacityUnit(0, 0)))
        for i in range(30):
            ots.put_row("t", tablestore.Row([("id", i)], [("v", f"value-{i}")]))
        ots.update_row("t", tablestore.Row([("id", 0)], {"put": [("w", 1)]}),
                       tablestore.Condition(tablestore.RowExistenceExpectation.EXPECT_EXIST))
        ots.delete_row("t", tablestore.Row([("id", 29)]), tablestore.Condition(tablestore.RowExistenceExpectation.IGNORE))
    finally:
        proc.kill()  # SIGKILL: no shutdown code runs
        proc.wait(10)

    proc, ots, _ = _start(tmp_path)
    try:
        _, _, rows, _ = ots.get_range("t", tablestore.Direction.FORWARD, [("id", tablestore.INF_MIN)],
                                      [("id", tablestore.INF_MAX)], max_version=1)
        got = {row.primary_key[0][1]: {c[0]: c[1] for c in row.attribute_columns} for row in rows}
        expected = {i: {"v": f"value-{i}"} for i in range(29)}
        expected[0]["w"] = 1
        assert got == expected
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0 and "stopped" in out


def test_kill_9_keeps_tunnels_checkpoints_and_leases(tmp_path):
    from beam_tunnel.client import ChannelStatus, TunnelClient

    def tunnel_client(endpoint):
        return TunnelClient(endpoint, "durable", "ak", "sk", retry_deadline=0)

    proc, ots, lines = _start(tmp_path)
    endpoint = next(line.split(":", 1)[1].strip() for line in lines if line.strip().startswith("endpoint:"))
    try:
        ots.create_table(tablestore.TableMeta("t", [("id", "INTEGER")]), tablestore.TableOptions(),
                         tablestore.ReservedThroughput(tablestore.CapacityUnit(0, 0)))
        client = tunnel_client(endpoint)
        tunnel_id = client.create_tunnel("t", "durable-tunnel", "Stream")  # turns the stream on
        client_id = client.connect(tunnel_id, timeout_s=600)
        [channel] = client.heartbeat(tunnel_id, client_id, [])
        assert channel.status is ChannelStatus.OPEN
        for i in range(5):
            ots.put_row("t", tablestore.Row([("id", i)], [("v", i)]))
        token, sequence = client.get_checkpoint(tunnel_id, client_id, channel.channel_id)
        first = client.read_records(tunnel_id, client_id, channel.channel_id, token)
        assert [r.key["id"] for r in first.records] == [0, 1, 2, 3, 4]
        client.checkpoint(tunnel_id, client_id, channel.channel_id, first.next_token, sequence + 1)
    finally:
        proc.kill()  # SIGKILL right after the checkpoint was acknowledged
        proc.wait(10)

    proc, ots, lines = _start(tmp_path)
    endpoint = next(line.split(":", 1)[1].strip() for line in lines if line.strip().startswith("endpoint:"))
    try:
        client = tunnel_client(endpoint)
        assert [t.tunnel_id for t in client.list_tunnels("t")] == [tunnel_id]
        assert tuple(client.get_checkpoint(tunnel_id, client_id, channel.channel_id)) == (
            first.next_token, sequence + 1)
        # The lease survived the crash: the same client still owns the channel.
        [again] = client.heartbeat(tunnel_id, client_id, [channel])
        assert (again.channel_id, again.status) == (channel.channel_id, ChannelStatus.OPEN)
        ots.put_row("t", tablestore.Row([("id", 5)], [("v", 5)]))
        resumed = client.read_records(tunnel_id, client_id, channel.channel_id, first.next_token)
        assert [r.key["id"] for r in resumed.records] == [5]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
