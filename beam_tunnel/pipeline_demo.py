"""The main job behind ``beam-tunnel demo`` / ``make demo``: a Beam pipeline
syncs a changing Tablestore table into SQLite, then proves the copy is exact.

What it does, on one machine with no cloud account:

1. starts an :class:`~beam_tunnel.emulator.EmulatorServer` on a free port
   (temporary data directory) and creates an ``orders`` table in three
   partitions with a stream, filled with orders;
2. creates a BaseAndStream tunnel and runs ``ReadFromTunnel ->
   SyncTable`` (``pipelines/sync_table.py``) on FnApiRunner, the engine of
   DirectRunner without Prism, bounded with ``stop_at`` so it ends;
3. meanwhile a writer changes orders for a few seconds (new orders, status
   and amount updates, column deletes of one and of all versions, deletes),
   stopping before ``stop_at``, so the table holds still once the pipeline
   ends; a progress bar on standard error follows the sync;
4. prints the tunnel's lag summary, then compares the SQLite table with the
   source (GetRange) column by column: ``target equals source: N rows``.

The earlier TunnelWorker demo is :mod:`beam_tunnel.demo` (``beam-tunnel
demo-worker``).
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional, TextIO, Tuple

from beam_tunnel.client import TunnelClient, TunnelType
from beam_tunnel.emulator import EmulatorServer
from beam_tunnel.emulator.model.keys import PkColumn
from beam_tunnel.emulator.model.schema import StreamSpec
from beam_tunnel.emulator.model.tables import DELETE, PUT, UPDATE, RowChange
from beam_tunnel.protocol.rows import Cell, CellOp, Row

__all__ = ["run_pipeline_demo"]

_TABLE = "orders"
_TUNNEL = "orders-sync"
_REGIONS = ("ap", "eu", "us")
_STATUSES = ("paid", "shipped", "delivered")
_BATCH = 100
_STOP_MARGIN_S = 1.0
"""Between the writer's last batch and ``stop_at``: a batch in flight when
the writer's time is up is stamped before the pipeline's stop."""


def _key(region: str, order_id: int):
    return (("region", region), ("order_id", order_id))


class _Writer(threading.Thread):
    """Changes orders like an application would, until its deadline."""

    def __init__(self, server: EmulatorServer, orders: List[Tuple[str, int]], deadline: float, seed: int) -> None:
        super().__init__(name="demo-writer", daemon=True)
        self._server, self._orders, self._deadline = server, list(orders), deadline
        self._rng = random.Random(seed)
        self._notes: Dict[Tuple, int] = {}  # key -> timestamp of its note version
        self.kinds: Dict[str, int] = {}
        self.error: Optional[BaseException] = None

    @property
    def written(self) -> int:
        return sum(self.kinds.values())

    def run(self) -> None:
        try:
            next_id = max(order_id for _, order_id in self._orders) + 1
            while time.time() < self._deadline:
                batch: Dict[Tuple, Tuple[RowChange, str]] = {}
                while len(batch) < _BATCH:
                    picked, next_id = self._change(next_id, batch)
                    if picked is not None:
                        batch[picked[0].row.primary_key] = picked
                for outcome in self._server.backend.tables.batch_write([change for change, _ in batch.values()]):
                    if isinstance(outcome, Exception):
                        raise outcome
                for _, kind in batch.values():
                    self.kinds[kind] = self.kinds.get(kind, 0) + 1
                time.sleep(0.05)
        except BaseException as err:  # reported by run_pipeline_demo
            self.error = err

    def _change(self, next_id: int, batch: Dict) -> Tuple[Optional[Tuple[RowChange, str]], int]:
        """A change and its kind; None when its order already changes in
        ``batch`` (the service refuses one row twice in a batch)."""
        rng = self._rng
        roll = rng.random()
        if roll < 0.15:
            region = rng.choice(_REGIONS)
            self._orders.append((region, next_id))
            return (_order(region, next_id, rng), "new orders"), next_id + 1
        index = rng.randrange(len(self._orders))
        key = _key(*self._orders[index])
        if key in batch:
            return None, next_id
        ms = int(time.time() * 1000)
        if roll < 0.55:
            kind, cells = "status updates", (Cell("status", rng.choice(_STATUSES)),)
        elif roll < 0.7:
            self._notes[key] = ms
            kind = "amount + note updates"
            cells = (Cell("amount", round(rng.uniform(5, 500), 2)), Cell("note", f"changed at {ms}", ms))
        elif roll < 0.8 and key in self._notes:
            kind = "note deletes (one version)"
            cells = (Cell("note", None, self._notes.pop(key), CellOp.DELETE_ONE_VERSION),)
        elif roll < 0.9:
            kind, cells = "coupon deletes (all versions)", (Cell("coupon", None, None, CellOp.DELETE_ALL_VERSIONS),)
        else:
            self._orders.pop(index)
            self._notes.pop(key, None)
            return (RowChange(DELETE, _TABLE, Row(key)), "order deletes"), next_id
        return (RowChange(UPDATE, _TABLE, Row(key, cells)), kind), next_id


def _order(region: str, order_id: int, rng: random.Random) -> RowChange:
    cells = [Cell("customer", f"customer-{rng.randrange(1000):04d}"),
             Cell("amount", round(rng.uniform(5, 500), 2)), Cell("status", "new"),
             Cell("paid", False), Cell("items", rng.randrange(1, 9))]
    if rng.random() < 0.3:
        cells.append(Cell("coupon", f"SAVE{rng.randrange(5, 30)}"))
    return RowChange(PUT, _TABLE, Row(_key(region, order_id), tuple(cells)))


class _Progress(threading.Thread):
    """A text progress bar on standard error, read from the target itself:
    the full data copied, then how far the newest change applied is toward
    the stop time."""

    def __init__(self, url: str, orders: int, start: float, stop_at: float, writer: _Writer,
                 stream: TextIO) -> None:
        super().__init__(name="demo-progress", daemon=True)
        self._url, self._orders = url, orders
        self._start, self._stop_at, self._writer, self._stream = start, stop_at, writer, stream
        self._done = threading.Event()
        self._tty = stream.isatty()
        self._engine = None

    def stop(self) -> None:
        self._done.set()
        self.join(10)
        self._draw(final=True)
        if self._engine is not None:
            self._engine.dispose()

    def run(self) -> None:
        while not self._done.wait(0.5 if self._tty else 1.0):
            self._draw()

    def _read_target(self) -> Tuple[int, Optional[int]]:
        """(rows in the target, write time µs of the newest change applied)."""
        import sqlalchemy as sa

        try:
            if self._engine is None:
                self._engine = sa.create_engine(self._url)
            with self._engine.connect() as conn:
                rows = conn.execute(sa.text(f"SELECT COUNT(*) FROM {_TABLE}")).scalar_one()
                newest = conn.execute(sa.text(f"SELECT MAX(sync_timestamp_us) FROM {_TABLE}__sync_state")).scalar()
            return rows, newest if newest is not None and newest > 0 else None
        except sa.exc.SQLAlchemyError:
            return 0, None  # not created yet, or busy for a moment: a progress bar never stops the demo

    def _draw(self, final: bool = False) -> None:
        rows, newest_us = self._read_target()
        if newest_us is None:
            fraction, phase, lag = 0.5 * min(1.0, rows / self._orders), "full data", "  -  "
        else:
            done = (newest_us / 1e6 - self._start) / (self._stop_at - _STOP_MARGIN_S - self._start)
            fraction = 0.5 + 0.5 * min(1.0, max(0.0, done))
            phase, lag = "changes", f"{max(0.0, time.time() - newest_us / 1e6):5.1f}s"
        if final:
            fraction, phase, lag = 1.0, "done", "  -  "
        bar = "#" * int(fraction * 30)
        line = (f"[{bar:<30}] {fraction * 100:3.0f}%  {phase:9}  target {rows:5d} rows  "
                f"writer {self._writer.written:5d} changes  behind by {lag}")
        if self._tty:
            print("\r" + line, end="\n" if final else "", file=self._stream, flush=True)
        else:
            print(line, file=self._stream, flush=True)


def run_pipeline_demo(
    *,
    orders: int = 3000,
    seconds: float = 4.0,
    seed: int = 7,
    target: Optional[str] = None,
    out: Optional[TextIO] = None,
    progress: Optional[TextIO] = None,
) -> bool:
    """Run the demo; return True when the target equals the source.

    Args:
      orders: rows in the table before the pipeline starts (full data).
      seconds: how long the writer changes orders while the pipeline runs.
      seed: seed of the generated orders and changes.
      target: a SQLAlchemy URL to sync into; default a SQLite file in a
        temporary directory, removed at the end.
      out: where the story goes (default standard output).
      progress: where the progress bar goes (default standard error).
    """
    try:
        import apache_beam as beam
        from apache_beam.options.pipeline_options import PipelineOptions

        from pipelines.sync_table import SyncTable, verify
    except ImportError as err:
        raise SystemExit(f"the demo needs the pipelines extra: pip install 'beam_tunnel[pipelines]' ({err})")
    from beam_tunnel import ReadFromTunnel
    from beam_tunnel.beam.rows import describe_table_schema
    from beam_tunnel.client.config import TunnelConfig
    from beam_tunnel.monitoring import LagReader, Thresholds, evaluate
    from beam_tunnel.monitoring.render import render_text

    out = out or sys.stdout
    progress = progress or sys.stderr

    def say(line: str = "") -> None:
        print(line, file=out, flush=True)

    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="beam-tunnel-demo-") as scratch, \
            EmulatorServer(data_dir=os.path.join(scratch, "emulator")) as server:
        db_path = os.path.join(scratch, "orders.db")
        url = target or f"sqlite:///{db_path}"
        say(f"emulator: {server.endpoint} instance={server.instance_name}")
        server.backend.tables.create_table(
            _TABLE, [PkColumn("region", "STRING"), PkColumn("order_id", "INTEGER")],
            split_points=["eu", "us"], stream=StreamSpec(True, 24),
        )
        keys = [(rng.choice(_REGIONS), order_id) for order_id in range(1, orders + 1)]
        changes = [_order(region, order_id, rng) for region, order_id in keys]
        for start in range(0, len(changes), _BATCH):
            for outcome in server.backend.tables.batch_write(changes[start:start + _BATCH]):
                if isinstance(outcome, Exception):
                    raise outcome
        say(f"table {_TABLE!r}: {orders} orders in 3 partitions, stream on")
        config = TunnelConfig.resolve(server.endpoint, server.instance_name, server.access_key_id,
                                      server.access_key_secret)
        client = TunnelClient.from_config(config)
        tunnel_id = client.create_tunnel(_TABLE, _TUNNEL, TunnelType.BASE_AND_STREAM)
        say(f"tunnel {_TUNNEL!r} ({tunnel_id}): BaseAndStream, full data then changes")

        started = time.time()
        writer = _Writer(server, keys, started + seconds, seed + 1)
        stop_at = started + seconds + _STOP_MARGIN_S
        say(f"pipeline: ReadFromTunnel -> SyncTable into {url if target else 'SQLite (' + db_path + ')'} "
            f"on FnApiRunner, until the changes of the next {seconds + _STOP_MARGIN_S:.0f} s are in")
        say(f"writer: changing orders for {seconds:.0f} s while the pipeline runs")
        key_schema = describe_table_schema(config, _TABLE).key_schema
        read = ReadFromTunnel(
            endpoint=server.endpoint, instance=server.instance_name, access_key_id=server.access_key_id,
            access_key_secret=server.access_key_secret, table=_TABLE, tunnel=_TUNNEL, stop_at=stop_at,
            # Short heartbeats: the full -> stream switch happens on one.
            heartbeat_interval_s=0.5, heartbeat_timeout_s=10.0, idle_wait_s=0.2, watermark_refresh_s=0.5,
        )
        bar = _Progress(url, orders, started, stop_at, writer, progress)
        writer.start()
        bar.start()
        try:
            with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as pipeline:
                _ = pipeline | read | SyncTable(url, _TABLE, key_schema)
        finally:
            bar.stop()
            writer.join(seconds + 30)
        if writer.error is not None:
            raise writer.error
        elapsed = time.time() - started
        say(f"pipeline done in {elapsed:.1f}s; the writer made {writer.written} changes: "
            + ", ".join(f"{count} {kind}" for kind, count in sorted(writer.kinds.items())))
        say()
        with LagReader(config) as reader:
            snapshot = reader.snapshot(_TABLE, _TUNNEL)
        say(render_text(snapshot, evaluate(snapshot, Thresholds())))
        client.close()
        say()
        # The proof comes last: the target, read back, against the source
        # read with GetRange, column by column.
        comparison = verify(config, _TABLE, url, _TABLE)
        for line in comparison.lines(["region", "order_id"]):
            say(line)
        return comparison.equal


def main_exit_code(**kwargs) -> int:
    """Run the demo and turn its verdict into a process exit code."""
    return 0 if run_pipeline_demo(**kwargs) else 1
