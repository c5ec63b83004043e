"""What the SDK tests write and how they check what the SDKs read.

Every put row carries columns derived from its number ``n`` (see the Go and
Java programs' rowColumns/putColumns); a record is identified by its key,
action and ``n``."""

from __future__ import annotations

import base64
import collections
import itertools
import time
from typing import Dict, List, Sequence, Tuple

from beam_tunnel.client import ChannelStatus, TunnelClient
from beam_tunnel.emulator.model.keys import PkColumn
from beam_tunnel.emulator.model.tables import PUT, RowChange, StreamSpec
from beam_tunnel.protocol.rows import Cell, Row

_serial = itertools.count(1)


def make_table(server, name: str, split_points: Sequence[str] = ()) -> List[str]:
    """A stream-enabled table in len(split_points)+1 partitions, created in
    process (no official SDK sends split points); returns partition ids."""
    server.backend.tables.create_table(
        name, [PkColumn("id", "STRING")], split_points=tuple(split_points), stream=StreamSpec(True, 24)
    )
    return [p.partition_id for p in server.backend.tables.list_partitions(name)]


def put_direct(server, table: str, changes: Sequence[list]) -> None:
    """Apply ``puts(...)`` changes in process (setup for tests that exercise
    only an SDK's worker), with the same columns the SDK programs write."""
    for _, key, n in changes:
        cells = []
        for name, value in expected_columns(n).items():
            cells.append(Cell(name, base64.b64decode(value["base64"]) if name == "raw" else value))
        server.backend.tables.write_row(RowChange(PUT, table, Row((("id", key),), tuple(cells))))


def puts(keys: Sequence[str]) -> List[list]:
    return [["put", key, next(_serial)] for key in keys]


def updates(keys: Sequence[str]) -> List[list]:
    return [["update", key, next(_serial)] for key in keys]


def deletes(keys: Sequence[str]) -> List[list]:
    return [["delete", key] for key in keys]


def keys(prefixes: str, count: int, tag: str = "") -> List[str]:
    """``count`` keys per first letter in ``prefixes`` (one per partition range)."""
    return [f"{letter}{tag}{i:04d}" for i in range(count) for letter in prefixes]


def expected_columns(n: int) -> Dict[str, object]:
    raw = bytes([n & 0xFF, (n >> 8) & 0xFF, 0xFF])
    return {"n": n, "s": f"row-{n}", "f": n / 2, "b": n % 2 == 0, "raw": {"base64": base64.b64encode(raw).decode()}}


def change_of(record: dict) -> tuple:
    """The written change a record stands for: (action, key[, n])."""
    key = record["pk"]["id"]
    if record["action"] == "delete":
        return ("delete", key)
    values = {c["name"]: c.get("value") for c in record["columns"]}
    return (record["action"], key, values["n"])


def written_change(change: list) -> tuple:
    return tuple(change)


def check_put_values(record: dict) -> None:
    columns = {c["name"]: c.get("value") for c in record["columns"]}
    assert columns == expected_columns(columns["n"]), record
    assert all(c["op"] == "put" and c["ts"] > 0 for c in record["columns"]), record


def is_full_data(record: dict) -> bool:
    # Go leaves the sequence out of full-data records; Java gives (0, 0, 0).
    return record["seq"] is None or record["seq"] == [0, 0, 0]


def check_stream_order(records: Sequence[dict], changes: Sequence[list]) -> None:
    """Every change read exactly once; within a channel, sequence numbers
    rise; for each key, its changes arrive in write order."""
    assert sorted(map(change_of, records)) == sorted(map(written_change, changes))
    by_channel: Dict[str, List[dict]] = collections.defaultdict(list)
    for record in records:
        assert record["seq"] is not None and record["seq"][1] > 0, record
        by_channel[record["channel"]].append(record)
    for channel, channel_records in by_channel.items():
        sequence = [tuple(r["seq"][1:]) for r in channel_records]
        assert sequence == sorted(sequence) and len(set(sequence)) == len(sequence), channel
    read_per_key: Dict[str, list] = collections.defaultdict(list)
    for record in records:
        read_per_key[record["pk"]["id"]].append(change_of(record))
    written_per_key: Dict[str, list] = collections.defaultdict(list)
    for change in changes:
        written_per_key[change[1]].append(written_change(change))
    assert read_per_key == written_per_key


def wait_for(predicate, what: str, timeout_s: float = 60.0, step_s: float = 0.1):
    """Poll ``predicate`` until it returns something true; the timeout only bounds a hung test."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(step_s)


def owners(client: TunnelClient, table: str, tunnel: str) -> Dict[str, List[str]]:
    """OPEN channels per owning client id, from DescribeTunnel."""
    out: Dict[str, List[str]] = collections.defaultdict(list)
    for channel in client.describe_tunnel(table, tunnel).channels:
        if channel.status == ChannelStatus.OPEN and channel.client_id:
            out[channel.client_id].append(channel.channel_id)
    return dict(out)


def tunnel_client(server) -> TunnelClient:
    return TunnelClient(server.endpoint, server.instance_name, server.access_key_id, server.access_key_secret)


def consume_fields(language: str, tunnel_id: str, **extra) -> dict:
    """Consume options: fast heartbeats (Java's minimum is 5 s) and
    checkpoints, so handovers and shutdowns repeat little."""
    fields = {"tunnel_id": tunnel_id, "heartbeat_s": 0.5 if language == "go" else 5, "checkpoint_s": 0.3}
    fields.update(extra)
    return fields


def idents(records) -> List[Tuple]:
    return [change_of(r) for r in records]


def record_fields(record, channel_id: str) -> dict:
    """A beam_tunnel ChangeRecord in the shape the SDK programs print."""
    columns = []
    for column in record.columns:
        value = column.value
        if isinstance(value, bytes):
            value = {"base64": base64.b64encode(value).decode()}
        columns.append({"name": column.name, "value": value, "op": column.op.value, "ts": column.timestamp_ms})
    sequence = record.sequence
    return {
        "channel": channel_id,
        "action": record.action.value,
        "pk": record.key,
        "columns": columns,
        "seq": None if sequence is None else [sequence.epoch, sequence.timestamp, sequence.row_index],
    }
