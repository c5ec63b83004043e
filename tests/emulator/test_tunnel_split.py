"""Partition split and merge: parents finish before children open, parent
records come first, and the admin paths work over signed HTTP."""

import json

import pytest
from google.protobuf.wrappers_pb2 import StringValue

from beam_tunnel.client import ChannelStatus
from beam_tunnel.emulator import EmulatorServer, ManualClock
from beam_tunnel.protocol import table_pb2

from tunnel_kit import Worker, make_table, ots_client, put, status_of, tunnel_client
from wire_kit import RawClient


@pytest.fixture
def env():
    with EmulatorServer(clock=ManualClock()) as server:
        make_table(server, "t", stream_columns=())
        yield server, ots_client(server), tunnel_client(server)


def _statuses(client):
    return {c.channel_id: c.status for c in client.describe_tunnel("t", "tun").channels}


def test_split_children_open_only_after_parent_terminated(env):
    server, ots, client = env
    tunnel_id = client.create_tunnel("t", "tun", "Stream")
    (parent,) = [p.partition_id for p in server.backend.tables.list_partitions("t")]
    worker = Worker(client, tunnel_id)
    worker.heartbeat()
    put(ots, "t", "a1", v=1)
    put(ots, "t", "z1", v=1)
    low, high = server.admin.split_partition("t", parent, "m")
    put(ots, "t", "b2", v=2)
    put(ots, "t", "n2", v=2)

    assert worker.heartbeat() == {parent: ("OPEN", 1)}
    assert _statuses(client) == {parent: ChannelStatus.OPEN, low: ChannelStatus.WAIT, high: ChannelStatus.WAIT}
    # The sealed parent log is read to its end, then the token is "finished".
    worker.drain(parent)
    assert worker.tokens[parent] == "finished"
    assert [r.key["id"] for r in worker.records[parent]] == ["a1", "z1"]
    # The "finished" checkpoint ended the parent; the children open on the
    # next heartbeat (they were never opened yet, so they still show WAIT).
    assert _statuses(client)[low] == ChannelStatus.WAIT
    view = worker.heartbeat()
    assert view == {low: ("OPEN", 1), high: ("OPEN", 1)}
    assert _statuses(client)[parent] == ChannelStatus.TERMINATED
    worker.run_until_idle()
    assert [r.key["id"] for r in worker.records[low]] == ["b2"]
    assert [r.key["id"] for r in worker.records[high]] == ["n2"]
    parent_seq = [r.sequence for r in worker.records[parent]]
    child_seq = [r.sequence for r in worker.records[low] + worker.records[high]]
    assert {s.epoch for s in parent_seq} == {0} and {s.epoch for s in child_seq} == {1}
    assert max(parent_seq) < min(child_seq)


def test_merge_child_waits_for_both_parents(env):
    server, ots, client = env
    (root,) = [p.partition_id for p in server.backend.tables.list_partitions("t")]
    low, high = server.admin.split_partition("t", root, "m")
    tunnel_id = client.create_tunnel("t", "tun", "Stream")
    # The root was split before the tunnel: nothing to read, not listed.
    assert set(_statuses(client)) == {low, high}
    worker = Worker(client, tunnel_id)
    worker.heartbeat()
    put(ots, "t", "c", v=1)
    put(ots, "t", "x", v=1)
    merged = server.admin.merge_partitions("t", low, high)
    put(ots, "t", "d", v=2)
    worker.heartbeat()
    assert _statuses(client)[merged] == ChannelStatus.WAIT
    worker.drain(low)
    worker.heartbeat()  # low TERMINATED, high still open
    assert _statuses(client)[merged] == ChannelStatus.WAIT
    worker.run_until_idle()
    assert status_of(client.describe_tunnel("t", "tun"), merged) == ChannelStatus.OPEN
    assert [r.key["id"] for r in worker.records[merged]] == ["d"]
    assert [r.key["id"] for r in worker.records[low] + worker.records[high]] == ["c", "x"]


def _admin(raw, path, payload):
    body = StringValue(value=json.dumps(payload)).SerializeToString()
    status, _, data = raw.post(path, body, api_version="2018-04-01")
    if status == 200:
        return status, json.loads(StringValue.FromString(data).value)
    error = table_pb2.Error.FromString(data)
    return status, (error.code, error.message)


def test_admin_paths_over_signed_http(env):
    server, ots, client = env
    raw = RawClient(server)
    try:
        status, listed = _admin(raw, "/emulator/partitions", {"table": "t"})
        assert status == 200
        (root,) = listed["partitions"]
        assert root["start"] is None and root["end"] is None and root["epoch"] == 0
        status, split = _admin(raw, "/emulator/split", {"table": "t", "partition_id": root["partition_id"],
                                                        "split_key": "m"})
        assert status == 200 and len(split["children"]) == 2
        status, listed = _admin(raw, "/emulator/partitions", {"table": "t"})
        by_id = {p["partition_id"]: p for p in listed["partitions"]}
        low, high = (by_id[c] for c in split["children"])
        assert (low["start"], low["end"], high["start"], high["end"]) == (None, "m", "m", None)
        assert low["parents"] == [root["partition_id"]] and low["epoch"] == 1 and by_id[root["partition_id"]]["closed"]
        status, merged = _admin(raw, "/emulator/merge", {"table": "t", "left": low["partition_id"],
                                                         "right": high["partition_id"]})
        assert status == 200 and merged["child"] in {
            p.partition_id for p in server.backend.tables.list_partitions("t")}
        # Errors are clean service errors, and the server keeps serving.
        assert _admin(raw, "/emulator/split", {"table": "t"})[1][0] == "OTSParameterInvalid"
        assert _admin(raw, "/emulator/split", {"table": "t", "partition_id": root["partition_id"],
                                               "split_key": "q"}) == (
            400, ("OTSParameterInvalid", f"Partition {root['partition_id']!r} is closed (already split or merged)."))
        assert _admin(raw, "/emulator/split", {"table": "t", "partition_id": "nope", "split_key": 1})[0] == 404
        assert _admin(raw, "/emulator/split", {"table": "t", "partition_id": merged["child"],
                                               "split_key": [1]})[1][0] == "OTSParameterInvalid"
        status, _, data = raw.post("/emulator/split", b"\xff\xff", api_version="2018-04-01")
        assert status == 400 and table_pb2.Error.FromString(data).code == "OTSParameterInvalid"
        status, _, data = raw.post("/emulator/split", StringValue(value="{not json").SerializeToString())
        assert status == 400 and "not JSON" in table_pb2.Error.FromString(data).message
        deep = "[" * 100_000 + "]" * 100_000
        status, _, data = raw.post("/emulator/split", StringValue(value=deep).SerializeToString())
        assert status == 400 and "not JSON" in table_pb2.Error.FromString(data).message
        assert _admin(raw, "/emulator/partitions", {"table": "t"})[0] == 200
    finally:
        raw.close()


def test_admin_split_refuses_an_integer_beyond_int64(env):
    server, _, _ = env
    make_table(server, "n", schema=(("k", "INTEGER"),))
    (root,) = server.backend.tables.list_partitions("n")
    raw = RawClient(server)
    try:
        status, (code, message) = _admin(raw, "/emulator/split", {"table": "n", "partition_id": root.partition_id,
                                                                  "split_key": 2 ** 70})
        assert (status, code) == (400, "OTSParameterInvalid") and str(2 ** 70) in message
        assert [p.partition_id for p in server.backend.tables.list_partitions("n")] == [root.partition_id]
    finally:
        raw.close()


def test_admin_paths_need_a_valid_signature(env):
    server, _, _ = env
    raw = RawClient(server, secret="wrong-secret")
    try:
        status, _, data = raw.post("/emulator/partitions", StringValue(value='{"table": "t"}').SerializeToString())
        assert status == 403 and table_pb2.Error.FromString(data).code == "OTSAuthFailed"
    finally:
        raw.close()


def test_cli_and_admin_client_split_a_running_emulator(env, capsys):
    from beam_tunnel.cli import main
    from beam_tunnel.emulator.admin import AdminClient
    from beam_tunnel.errors import ObjectNotExistError

    server, _, _ = env
    (root,) = [p.partition_id for p in server.backend.tables.list_partitions("t")]
    assert main(["emulator", "split", "--endpoint", server.endpoint, "t", root, "m"]) == 0
    children = json.loads(capsys.readouterr().out)
    assert [p.partition_id for p in server.backend.tables.list_partitions("t") if not p.closed] == children
    assert main(["emulator", "merge", "--endpoint", server.endpoint, "t", *children]) == 0
    merged = json.loads(capsys.readouterr().out)
    assert main(["emulator", "partitions", "--endpoint", server.endpoint, "t"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [p["partition_id"] for p in listed if not p["closed"]] == [merged]
    assert main(["emulator", "split", "--endpoint", server.endpoint, "t", "nope", "x"]) == 1
    assert "OTSObjectNotExist" in capsys.readouterr().err
    admin = AdminClient(server.endpoint)
    assert admin.split("t", merged, "q")[0] in {p["partition_id"] for p in admin.partitions("t")}
    with pytest.raises(ObjectNotExistError, match="nope"):
        admin.merge("t", "nope", merged)
