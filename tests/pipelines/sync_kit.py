"""Helpers for the pipelines tests: an orders table and writers that change
it the way applications do (puts, updates, column deletes of one and of all
versions, row deletes), several at once, on overlapping rows.

Rows are written through the emulator's table backend in process (setup, not
the code under test); the pipelines reach the emulator over loopback HTTP.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Dict, List, Optional, Tuple

from beam_tunnel.emulator.model.keys import PkColumn
from beam_tunnel.emulator.model.tables import DELETE, PUT, UPDATE, RowChange, StreamSpec
from beam_tunnel.protocol.rows import Cell, CellOp, Row

REGIONS = ("ap", "eu", "us")
_COLUMNS = ("status", "amount", "qty", "paid", "blob", "note")


def make_orders(server, name: str = "orders") -> None:
    """``name`` keyed by (region STRING, order_id INTEGER), three partitions,
    stream on."""
    server.backend.tables.create_table(
        name, [PkColumn("region", "STRING"), PkColumn("order_id", "INTEGER")],
        split_points=["eu", "us"], stream=StreamSpec(True, 24),
    )


def _value(column: str, rng: random.Random):
    return {
        "status": lambda: rng.choice(("new", "paid", "shipped", "delivered")),
        "amount": lambda: round(rng.uniform(1, 999), 2),
        "qty": lambda: rng.randrange(1, 100),
        "paid": lambda: rng.random() < 0.5,
        "blob": lambda: rng.randbytes(rng.randrange(1, 12)),
        "note": lambda: f"note {rng.randrange(10**6)} ✓",
    }[column]()


class Writer(threading.Thread):
    """Writes ``changes`` random changes to ``table`` in batches over the
    key space ``orders`` (shared with other writers)."""

    def __init__(self, server, table: str, orders: int, changes: int, seed: int, pause_s: float = 0.01) -> None:
        super().__init__(name=f"writer-{seed}", daemon=True)
        self._server, self._table, self._orders = server, table, orders
        self._changes, self._pause_s = changes, pause_s
        self._rng = random.Random(seed)
        # (key, column) -> the timestamp this writer last put, for
        # one-version deletes (another writer may have put a newer one since).
        self._versions: Dict[Tuple, int] = {}
        self.written = 0
        self.kinds: Dict[str, int] = {}  # what the changes did, column by column
        self.actions: Dict[str, int] = {}  # changes per action (one stream record each)
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        try:
            while self.written < self._changes:
                batch: Dict[Tuple, RowChange] = {}
                for _ in range(min(50, self._changes - self.written)):
                    key = ((("region", self._rng.choice(REGIONS)), ("order_id", self._rng.randrange(self._orders))))
                    if key not in batch:
                        batch[key] = self._change(key)
                for outcome in self._server.backend.tables.batch_write(list(batch.values())):
                    if isinstance(outcome, Exception):
                        raise outcome
                for change in batch.values():
                    action = {PUT: "put", UPDATE: "update", DELETE: "delete"}[change.action]
                    self.actions[action] = self.actions.get(action, 0) + 1
                self.written += len(batch)
                time.sleep(self._pause_s)
        except BaseException as err:  # reported by the test
            self.error = err

    def _count(self, kind: str) -> None:
        self.kinds[kind] = self.kinds.get(kind, 0) + 1

    def _change(self, key) -> RowChange:
        rng = self._rng
        roll = rng.random()
        now_ms = int(time.time() * 1000)
        if roll < 0.3:
            self._count("put")
            cells = []
            for column in rng.sample(_COLUMNS, rng.randrange(0, len(_COLUMNS) + 1)):
                ts = now_ms - rng.randrange(0, 5)
                self._versions[(key, column)] = ts
                cells.append(Cell(column, _value(column, rng), ts))
            return RowChange(PUT, self._table, Row(key, tuple(cells)))
        if roll < 0.85:
            cells = []
            for column in rng.sample(_COLUMNS, rng.randrange(1, 4)):
                op = rng.random()
                if op < 0.6:
                    self._count("update column")
                    ts = now_ms - rng.randrange(0, 5)
                    self._versions[(key, column)] = ts
                    cells.append(Cell(column, _value(column, rng), ts))
                elif op < 0.8 and (key, column) in self._versions:
                    self._count("delete one version")
                    cells.append(Cell(column, None, self._versions[(key, column)], CellOp.DELETE_ONE_VERSION))
                else:
                    self._count("delete all versions")
                    cells.append(Cell(column, None, None, CellOp.DELETE_ALL_VERSIONS))
            return RowChange(UPDATE, self._table, Row(key, tuple(cells)))
        self._count("delete row")
        return RowChange(DELETE, self._table, Row(key, ()))


def write_all(server, table: str, writers: int, orders: int, changes: int, seed: int) -> List[Writer]:
    """Run ``writers`` writers at once until each wrote ``changes``."""
    running = [Writer(server, table, orders, changes, seed + i, pause_s=0) for i in range(writers)]
    for writer in running:
        writer.start()
    for writer in running:
        writer.join(120)
        assert not writer.is_alive(), f"{writer.name} still writing after 120 s"
        assert writer.error is None, writer.error
    return running
