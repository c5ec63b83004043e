"""Helpers for the Tunnel Service tests: a TunnelClient and the official SDK
pointed at an EmulatorServer, tables set up in process, and a minimal
worker that follows the official SDKs' channel rules (tunnel-protocol.md
§4.2) over TunnelClient - so the tests drive the emulator like a user."""

from __future__ import annotations

import collections
from typing import Dict, List, Optional

import tablestore

from beam_tunnel.client import Channel, ChannelStatus, TunnelClient
from beam_tunnel.emulator.model.keys import PkColumn
from beam_tunnel.emulator.model.tables import PUT, RowChange, StreamSpec
from beam_tunnel.protocol.rows import Cell, Row

THROUGHPUT = tablestore.ReservedThroughput(tablestore.CapacityUnit(0, 0))


def tunnel_client(server) -> TunnelClient:
    """A TunnelClient for ``server`` that does not retry (errors surface at once)."""
    return TunnelClient(
        server.endpoint, server.instance_name, server.access_key_id, server.access_key_secret, retry_deadline=0
    )


def ots_client(server) -> tablestore.OTSClient:
    """The official SDK, without retries."""
    return tablestore.OTSClient(
        server.endpoint, server.access_key_id, server.access_key_secret, server.instance_name,
        retry_policy=tablestore.NoRetryPolicy(),
    )


def make_table(server, name="t", split_points=(), stream_columns=None, schema=(("id", "STRING"),)):
    """Create a table in process (the Python SDK cannot send split points or
    stream settings). ``stream_columns`` not None turns the stream on with
    those before-image columns."""
    stream = None if stream_columns is None else StreamSpec(True, 24, tuple(stream_columns))
    server.backend.tables.create_table(
        name, [PkColumn(n, t) for n, t in schema], split_points=split_points, stream=stream
    )


def put(ots, table, key, **columns):
    ots.put_row(table, tablestore.Row([("id", key)], list(columns.items())))


def put_direct(server, table, key, **columns):
    """PutRow through the model, for tests whose clock is so far from the
    wall clock that the official SDK refuses the answers' dates."""
    cells = tuple(Cell(name, value) for name, value in columns.items())
    server.backend.tables.write_row(RowChange(PUT, table, Row((("id", key),), cells)))


def status_of(description, channel_id):
    return next(c.status for c in description.channels if c.channel_id == channel_id)


class Worker:
    """One tunnel client following the SDK rules, step by step.

    ``heartbeat()`` reports every known channel and merges the answer
    (higher version wins, absent = revoked), answering CLOSING with CLOSE
    v+1. ``drain(channel)`` reads an OPEN channel until it is caught up or
    finished, checkpointing every batch; a finished channel checkpoints
    ``finished`` and reports TERMINATED v+1 on the next heartbeat.
    """

    def __init__(self, client: TunnelClient, tunnel_id: str, timeout_s: int = 60, tag: str = "w"):
        self.client = client
        self.tunnel_id = tunnel_id
        self.client_id = client.connect(tunnel_id, timeout_s, tag)
        self.channels: Dict[str, Channel] = {}
        self.tokens: Dict[str, str] = {}
        self.sequences: Dict[str, int] = {}
        self.records: Dict[str, list] = collections.defaultdict(list)
        self.history: List[Dict[str, tuple]] = []

    def heartbeat(self) -> Dict[str, tuple]:
        answer = self.client.heartbeat(self.tunnel_id, self.client_id, list(self.channels.values()))
        merged: Dict[str, Channel] = {}
        for channel in answer:
            local = self.channels.get(channel.channel_id)
            merged[channel.channel_id] = local if local and local.version > channel.version else channel
        for channel_id in set(self.channels) - set(merged):
            self.tokens.pop(channel_id, None)
        self.channels = merged
        for channel_id, channel in list(self.channels.items()):
            if channel.status == ChannelStatus.CLOSING:
                self.channels[channel_id] = Channel(channel_id, channel.version + 1, ChannelStatus.CLOSE)
        view = {c.channel_id: (str(c.status), c.version) for c in answer}
        self.history.append(view)
        return view

    def open_channels(self) -> List[str]:
        return sorted(c.channel_id for c in self.channels.values() if c.status == ChannelStatus.OPEN)

    def drain(self, channel_id: str, max_batches: int = 1000) -> int:
        """Read until caught up or finished; return how many records came."""
        if channel_id not in self.tokens:
            info = self.client.get_checkpoint(self.tunnel_id, self.client_id, channel_id)
            self.tokens[channel_id] = info.checkpoint
            self.sequences[channel_id] = info.sequence_number
        got = 0
        for _ in range(max_batches):
            token = self.tokens[channel_id]
            if token == "finished":
                break
            result = self.client.read_records(self.tunnel_id, self.client_id, channel_id, token)
            self.records[channel_id].extend(result.records)
            got += len(result.records)
            if result.next_token != token:
                self.commit(channel_id, result.next_token)
            if result.finished:
                current = self.channels[channel_id]
                self.channels[channel_id] = Channel(channel_id, current.version + 1, ChannelStatus.TERMINATED)
                break
            if not result.records:
                break
        return got

    def commit(self, channel_id: str, token: str) -> None:
        sequence = self.sequences[channel_id] + 1
        self.client.checkpoint(self.tunnel_id, self.client_id, channel_id, token, sequence)
        self.sequences[channel_id] = sequence
        self.tokens[channel_id] = token

    def step(self) -> int:
        """One heartbeat, then drain every OPEN channel."""
        self.heartbeat()
        return sum(self.drain(channel_id) for channel_id in self.open_channels())

    def run_until_idle(self, max_rounds: int = 50) -> int:
        """Step until a round reads nothing and changes no channel."""
        total = 0
        for _ in range(max_rounds):
            before = dict(self.channels)
            got = self.step()
            total += got
            if not got and self.channels == before:
                return total
        raise AssertionError(f"worker {self.client_id} still busy after {max_rounds} rounds")

    def all_records(self) -> list:
        return [record for records in self.records.values() for record in records]


def run_workers(workers, max_rounds: int = 50) -> None:
    """Step every worker in turn until none reads or changes anything."""
    for _ in range(max_rounds):
        before = [dict(w.channels) for w in workers]
        got = sum(w.step() for w in workers)
        if not got and [w.channels for w in workers] == before:
            return
    raise AssertionError(f"workers still busy after {max_rounds} rounds")


def find(records, key) -> Optional[object]:
    return next((r for r in records if r.key["id"] == key), None)
