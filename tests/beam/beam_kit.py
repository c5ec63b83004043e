"""Helpers for the ReadFromTunnel tests.

Tables are created and written in process through the emulator's table
backend (setup, not the code under test); the pipeline reaches the emulator
over loopback HTTP like a user's pipeline reaches the service.

Records leave a pipeline through :class:`RecordLog`, a DoFn fused right
behind the source that appends one JSON line per record to a file, in
emission order, so tests can check order per channel and count duplicates
on every runner (the SDK harness of FnApiRunner, Prism and Flink in LOOPBACK
mode runs in the test process; a file also survives a killed pipeline).
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import threading
from typing import Dict, List, Sequence, Tuple

import apache_beam as beam

from beam_tunnel import ReadFromTunnel
from beam_tunnel.client import TunnelClient
from beam_tunnel.emulator.model.keys import PkColumn
from beam_tunnel.emulator.model.tables import DELETE, PUT, RowChange, StreamSpec
from beam_tunnel.protocol.rows import Cell, Row

_SPLIT_LETTERS = "bcdefghijklmnopqrstuvwxy"

FAST_LEASE = dict(heartbeat_interval_s=0.5, heartbeat_timeout_s=20.0, closing_grace_s=2.0,
                  watermark_refresh_s=0.5, idle_wait_s=0.2)
"""Frequent heartbeats; a lease long enough that a loaded 2-core machine,
where FnApiRunner runs the slots one after the other, never loses one."""


def client_of(server) -> TunnelClient:
    return TunnelClient(server.endpoint, server.instance_name, server.access_key_id, server.access_key_secret)


def read(server, table: str, tunnel: str, **kwargs) -> ReadFromTunnel:
    """ReadFromTunnel pointed at the emulator, with fast leases by default."""
    options = dict(FAST_LEASE)
    options.update(kwargs)
    return ReadFromTunnel(
        endpoint=server.endpoint,
        instance=server.instance_name,
        access_key_id=server.access_key_id,
        access_key_secret=server.access_key_secret,
        table=table,
        tunnel=tunnel,
        **options,
    )


def make_table(server, name: str, partitions: int = 3) -> List[str]:
    """A stream-enabled table keyed by one STRING column ``id``, split into
    ``partitions`` key ranges at single letters; returns partition ids."""
    points = tuple(_SPLIT_LETTERS[i * len(_SPLIT_LETTERS) // partitions] for i in range(1, partitions))
    server.backend.tables.create_table(name, [PkColumn("id", "STRING")], split_points=points,
                                       stream=StreamSpec(True, 24))
    return [p.partition_id for p in server.backend.tables.list_partitions(name)]


_serial = itertools.count(1)
_letters = itertools.count()


def keys(count: int, prefix: str = "") -> List[str]:
    """``count`` new keys spread over every partition."""
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    return [f"{alphabet[next(_letters) % 26]}{prefix}{i:06d}" for i in range(count)]


def write(server, table: str, row_keys: Sequence[str]) -> List[Tuple[str, int]]:
    """Put one row per key with a unique ``n``; returns the (key, n) pairs."""
    written = [(key, next(_serial)) for key in row_keys]
    for start in range(0, len(written), 200):
        chunk = written[start:start + 200]
        changes = [RowChange(PUT, table, Row((("id", key),), (Cell("n", n),))) for key, n in chunk]
        for result in server.backend.tables.batch_write(changes):
            assert not isinstance(result, Exception), result
    return written


def delete(server, table: str, row_keys: Sequence[str]) -> None:
    changes = [RowChange(DELETE, table, Row((("id", key),), ())) for key in row_keys]
    for result in server.backend.tables.batch_write(changes):
        assert not isinstance(result, Exception), result


class RecordLog(beam.DoFn):
    """Appends each record as a JSON line: channel, key, n, full-data flag,
    sequence, event time (µs) and the record's window end."""

    _locks: Dict[str, threading.Lock] = {}

    def __init__(self, path: str) -> None:
        self._path = path

    def process(self, record, timestamp=beam.DoFn.TimestampParam):
        columns = {c.name: c.value for c in record.columns}
        seq = None if record.sequence is None else [record.sequence.epoch, record.sequence.timestamp,
                                                    record.sequence.row_index]
        line = json.dumps([record.channel_id, record.key["id"], columns.get("n"), record.is_full_data, seq,
                           timestamp.micros, record.action.value])
        lock = RecordLog._locks.setdefault(self._path, threading.Lock())
        with lock, open(self._path, "a", encoding="utf-8") as out:
            out.write(line + "\n")
            out.flush()
            os.fsync(out.fileno())
        yield record


def read_log(path: str) -> List[list]:
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def fnapi_options(*extra: str):
    from apache_beam.options.pipeline_options import PipelineOptions

    return PipelineOptions(["--runner=FnApiRunner", *extra])


def python() -> str:
    return sys.executable
