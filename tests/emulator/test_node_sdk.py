"""The official Node tablestore SDK works against the emulator unchanged
(tests/node/compat.js drives it and prints what it read back)."""

import json
import os
import shutil
import subprocess

import pytest

from beam_tunnel.protocol.plainbuffer import decode_row

_NODE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "node")


def _node():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the Node SDK compatibility test needs it")
    if not os.path.isdir(os.path.join(_NODE_DIR, "node_modules", "tablestore")):
        pytest.skip("tests/node/node_modules is missing: run `cd tests/node && npm ci` (make test does)")
    return node


def test_node_sdk_creates_writes_and_reads(server):
    node = _node()
    result = subprocess.run(
        [node, "compat.js", server.endpoint, server.access_key_id, server.access_key_secret, server.instance_name],
        cwd=_NODE_DIR, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["tables"] == ["node_compat"]
    assert out["stream"] == {"enabled": True, "expiration": 24, "hasId": True}
    assert out["maxVersions"] == 2
    assert out["row"] == {
        "key": {"id": 1, "name": "a"},
        "attributes": {"b": True, "bin": {"hex": "0001ff"}, "i": -42, "s": "changed"},
    }
    assert out["conditionError"]["status"] == 403
    assert "OTSConditionCheckFail" in out["conditionError"]["message"]
    assert out["batchOk"] == [True, True, True, True]
    rows = [row for page in out["pages"] for row in page]
    assert [(r["key"]["id"], r["key"]["name"]) for r in rows] == [(1, "a"), (2, "b"), (3, "b"), (4, "b")]
    assert [len(page) for page in out["pages"]][:2] == [2, 2]
    assert rows[3]["attributes"] == {"n": 40}

    # Writes through Node landed in the stream log too, in order.
    part = server.backend.tables.list_partitions("node_compat")[0]
    actions = [(e.action, decode_row(e.record).primary_key[0][1]) for e in
               server.backend.streams.read("node_compat", part.partition_id)]
    assert actions == [(1, 1), (2, 1), (1, 2), (1, 3), (1, 4), (1, 5), (3, 5)]
