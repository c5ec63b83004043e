"""The TunnelWorker demo behind ``beam-tunnel demo-worker`` / ``make
demo-worker``: a full-then-incremental tunnel read end to end on the embedded
emulator, with no cloud account. (The main job, ``beam-tunnel demo``, is the
Beam pipeline of :mod:`beam_tunnel.pipeline_demo`.)

What it does:

1. starts an :class:`~beam_tunnel.emulator.EmulatorServer` on a free port with
   a temporary data directory;
2. creates an ``orders`` table split into three partitions, with a stream that
   keeps the before-image of ``status``, and fills it with orders;
3. creates a BaseAndStream tunnel with :class:`~beam_tunnel.TunnelClient` and
   reads it with a :class:`~beam_tunnel.TunnelWorker`; once the full data is
   read, a writer thread keeps updating, adding and deleting orders, which
   arrive as stream records;
4. prints progress (records, records/s, tunnel lag from DescribeTunnel) and a
   summary that checks every write arrived exactly once, in order per channel.

Rows are written through the emulator's in-process table model (the library
has no table-writing client; the official SDKs work against the emulator's
wire API too).
"""

from __future__ import annotations

import collections
import json
import random
import threading
import time
from typing import Callable, Dict, List, Optional, TextIO, Tuple

from beam_tunnel.client import TunnelClient, TunnelType
from beam_tunnel.emulator import EmulatorServer
from beam_tunnel.emulator.model.keys import PkColumn
from beam_tunnel.emulator.model.schema import StreamSpec
from beam_tunnel.emulator.model.tables import DELETE, PUT, UPDATE, RowChange
from beam_tunnel.protocol.rows import Cell, Row
from beam_tunnel.records import ChangeRecord
from beam_tunnel.worker import TunnelWorker, WorkerConfig

__all__ = ["run_demo"]

_TABLE = "orders"
_TUNNEL = "orders-demo"
_REGIONS = ("ap", "eu", "us")
_STATUSES = ("new", "paid", "shipped", "delivered")
_BATCH = 100
"""Rows per BatchWriteRow (the service's limit is 200)."""


class _Tally:
    """What the demo's processor saw, checked against what the writer wrote."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.full: Dict[Tuple, int] = collections.Counter()
        self.stream: List[ChangeRecord] = []
        self.per_channel: Dict[str, int] = collections.Counter()
        self.out_of_order = 0
        self._last_sequence: Dict[str, Tuple] = {}
        self.samples: List[ChangeRecord] = []

    def __call__(self, records: List[ChangeRecord], context) -> None:
        with self.lock:
            for record in records:
                self.per_channel[context.channel_id] += 1
                if record.is_full_data:
                    self.full[record.primary_key] += 1
                else:
                    last = self._last_sequence.get(context.channel_id)
                    if last is not None and tuple(record.sequence) <= last:
                        self.out_of_order += 1
                    self._last_sequence[context.channel_id] = tuple(record.sequence)
                    self.stream.append(record)
                if len(self.samples) < 3 and (not record.is_full_data or not self.samples):
                    self.samples.append(record)

    def counts(self) -> Tuple[int, int]:
        with self.lock:
            return sum(self.full.values()), len(self.stream)


def _order_key(region: str, order_id: int):
    return (("region", region), ("order_id", order_id))


def _create_table(server: EmulatorServer) -> None:
    server.backend.tables.create_table(
        _TABLE,
        [PkColumn("region", "STRING"), PkColumn("order_id", "INTEGER")],
        split_points=["eu", "us"],
        stream=StreamSpec(True, 24, ("status",)),
    )


def _write(server: EmulatorServer, changes: List[RowChange]) -> None:
    for start in range(0, len(changes), _BATCH):
        for outcome in server.backend.tables.batch_write(changes[start:start + _BATCH]):
            if isinstance(outcome, Exception):
                raise outcome


def _put(region: str, order_id: int, rng: random.Random) -> RowChange:
    cells = (
        Cell("customer", f"customer-{rng.randrange(1000):04d}"),
        Cell("amount", round(rng.uniform(5, 500), 2)),
        Cell("status", "new"),
    )
    return RowChange(PUT, _TABLE, Row(_order_key(region, order_id), cells))


class _Writer(threading.Thread):
    """Changes orders while the tunnel is read, like an application would."""

    def __init__(self, server: EmulatorServer, orders: List[Tuple[str, int]], changes: int, seed: int) -> None:
        super().__init__(name="demo-writer", daemon=True)
        self._server = server
        self._orders = list(orders)
        self._changes = changes
        self._rng = random.Random(seed)
        self.written = 0
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        try:
            next_id = max(order_id for _, order_id in self._orders) + 1
            while self.written < self._changes:
                batch: Dict[Tuple, RowChange] = {}
                while len(batch) < min(_BATCH, self._changes - self.written):
                    change, next_id = self._next_change(next_id, batch)
                    if change is not None:
                        batch[change.row.primary_key] = change
                _write(self._server, list(batch.values()))
                self.written += len(batch)
                time.sleep(0.05)
        except BaseException as err:  # reported by run_demo
            self.error = err

    def _next_change(self, next_id: int, batch: Dict) -> Tuple[Optional[RowChange], int]:
        """An update (70%), insert (20%) or delete (10%); None when the key is
        already in ``batch`` (the service refuses one key twice in a batch)."""
        roll = self._rng.random()
        if 0.7 <= roll < 0.9:
            region = self._rng.choice(_REGIONS)
            self._orders.append((region, next_id))
            return _put(region, next_id, self._rng), next_id + 1
        index = self._rng.randrange(len(self._orders))
        region, order_id = self._orders[index]
        key = _order_key(region, order_id)
        if key in batch:
            return None, next_id
        if roll < 0.7:
            status = self._rng.choice(_STATUSES[1:])
            return RowChange(UPDATE, _TABLE, Row(key, (Cell("status", status),))), next_id
        self._orders.pop(index)
        return RowChange(DELETE, _TABLE, Row(key)), next_id


def run_demo(
    *,
    orders: int = 3000,
    changes: int = 1500,
    seed: int = 7,
    timeout_s: float = 120.0,
    out: Optional[TextIO] = None,
    say: Optional[Callable[[str], None]] = None,
) -> bool:
    """Run the demo; return True when every write arrived exactly once, in order.

    Args:
      orders: rows in the table before the tunnel is created (full data).
      changes: updates, inserts and deletes written while the tunnel is read.
      seed: seed of the random orders and changes.
      timeout_s: give up (and return False) after this many seconds.
      out: where to print (default: standard output).
      say: alternative to ``out``: a function called with each line.
    """
    if say is None:
        import sys

        stream = out or sys.stdout
        say = lambda line: print(line, file=stream, flush=True)  # noqa: E731
    rng = random.Random(seed)
    with EmulatorServer() as server:
        say(f"emulator: {server.endpoint} instance={server.instance_name} (temporary data dir)")
        _create_table(server)
        keys = [(rng.choice(_REGIONS), order_id) for order_id in range(1, orders + 1)]
        _write(server, [_put(region, order_id, rng) for region, order_id in keys])
        say(f"table {_TABLE!r}: {orders} orders in 3 partitions, stream on (before-image: status)")

        client = TunnelClient(server.endpoint, server.instance_name, server.access_key_id, server.access_key_secret)
        tunnel_id = client.create_tunnel(_TABLE, _TUNNEL, TunnelType.BASE_AND_STREAM)
        say(f"tunnel {_TUNNEL!r} ({tunnel_id}): BaseAndStream, full data then incremental")

        tally = _Tally()
        # Short heartbeats so the full -> incremental switch (which happens
        # on a heartbeat) takes a second, not the SDK default of 30 s.
        config = WorkerConfig(heartbeat_interval_s=0.5, heartbeat_timeout_s=10, checkpoint_interval_s=1)
        writer = _Writer(server, keys, changes, seed + 1)
        started = time.monotonic()
        with TunnelWorker(client, tunnel_id, tally, config):
            ok = _wait(client, tally, writer, orders, changes, started, timeout_s, say)
        writer.join(timeout=5)
        if writer.error is not None:
            raise writer.error
        return _summary(tally, orders, writer.written, time.monotonic() - started, say) and ok


def _wait(client, tally, writer, orders, changes, started, timeout_s, say) -> bool:
    last_report = 0.0
    while True:
        full, stream = tally.counts()
        # Writing only after the full phase keeps the checks exact: a row
        # changed during the scan may be read both as full data and as a
        # stream record (at-least-once), which the real service does too.
        if full >= orders and writer.ident is None:
            say("full data read; now changing orders while the stream is read")
            writer.start()
        done = full >= orders and writer.written >= changes and stream >= writer.written
        now = time.monotonic()
        if done or now - last_report >= 1.0 or now - started > timeout_s:
            last_report = now
            rpo_ns = client.describe_tunnel(_TABLE, _TUNNEL).tunnel_rpo_ns
            lag = f"{max(0.0, time.time() - rpo_ns / 1e9):.2f}s" if rpo_ns else "n/a (full phase)"
            rate = (full + stream) / max(now - started, 1e-9)
            say(f"  read {full:5d} full + {stream:5d} stream records, {rate:8.0f} records/s, tunnel lag {lag}")
        if done:
            return True
        if now - started > timeout_s or writer.error is not None:
            return False
        time.sleep(0.1)


def _summary(tally: _Tally, orders: int, written: int, elapsed: float, say) -> bool:
    full, stream = tally.counts()
    say("")
    say(f"done in {elapsed:.1f}s: {full} full-data records, {stream} stream records")
    for channel, count in sorted(tally.per_channel.items()):
        say(f"  channel {channel}: {count} records")
    actions = collections.Counter(record.action.value for record in tally.stream)
    say("  stream actions: " + ", ".join(f"{name}={count}" for name, count in sorted(actions.items())))
    for record in tally.samples:
        say(f"  sample: {json.dumps(record.to_dict())}")
    duplicates = sum(count - 1 for count in tally.full.values() if count > 1)
    checks = [
        (f"every one of {orders} orders read once in the full phase", full == orders and duplicates == 0),
        (f"every one of {written} changes read once in the stream", stream == written),
        ("stream records in write order within each channel", tally.out_of_order == 0),
    ]
    for text, passed in checks:
        say(f"  [{'ok' if passed else 'FAILED'}] {text}")
    return all(passed for _, passed in checks)


def main_exit_code(**kwargs) -> int:
    """Run the demo and turn its verdict into a process exit code."""
    return 0 if run_demo(**kwargs) else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main_exit_code())
