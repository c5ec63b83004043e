"""Helpers for the TunnelWorker tests.

Tables are created and written in process through the emulator's own table
backend (setup, not the code under test); everything the worker does goes
over loopback HTTP through TunnelClient, as a user's would.

A *killed* worker is simulated with :meth:`TunnelWorker.abort`: its
threads stop without a final checkpoint and without ShutdownTunnel, so the
service sees a client that went silent and moves its channels only after
the heartbeat timeout (the CLI test also kills a real process with SIGKILL).
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
from typing import Dict, List, Optional, Sequence, Tuple

from beam_tunnel.client import TunnelClient
from beam_tunnel.emulator.model.keys import PkColumn
from beam_tunnel.emulator.model.tables import PUT, RowChange, StreamSpec
from beam_tunnel.protocol.rows import Cell, Row
from beam_tunnel.worker import ChannelProcessor, TunnelWorker, WorkerConfig

# Heartbeats five times a second with a 2 s lease: ten chances to renew, so a
# loaded test machine does not lose leases, and a killed worker's channels
# move within about two seconds.
FAST = WorkerConfig(
    heartbeat_interval_s=0.2,
    heartbeat_timeout_s=2,
    checkpoint_interval_s=0.2,
    max_poll_interval_s=0.1,
    reconnect_max_delay_s=0.2,
)

_SPLIT_LETTERS = "bcdefghijklmnopqrstuvwxy"


def tunnel_client(server, **kwargs) -> TunnelClient:
    return TunnelClient(server.endpoint, server.instance_name, server.access_key_id, server.access_key_secret, **kwargs)


def make_table(server, name: str, partitions: int = 1, stream: bool = True) -> List[str]:
    """A table keyed by one STRING column ``id``, in ``partitions`` key
    ranges split at single letters; returns the partition ids."""
    points = tuple(_SPLIT_LETTERS[i * len(_SPLIT_LETTERS) // partitions] for i in range(1, partitions))
    server.backend.tables.create_table(
        name,
        [PkColumn("id", "STRING")],
        split_points=points,
        stream=StreamSpec(True, 24) if stream else None,
    )
    return [p.partition_id for p in server.backend.tables.list_partitions(name)]


_serial = itertools.count(1)


def write_rows(server, table: str, keys: Sequence[str]) -> List[Tuple[str, int]]:
    """Put one row per key, each with a unique ``n``; returns (key, n) pairs."""
    written = [(key, next(_serial)) for key in keys]
    for start in range(0, len(written), 200):
        chunk = written[start : start + 200]
        changes = [RowChange(PUT, table, Row((("id", key),), (Cell("n", n),))) for key, n in chunk]
        for result in server.backend.tables.batch_write(changes):
            assert not isinstance(result, Exception), result
    return written


_letters = itertools.count()


def spread_keys(count: int, prefix: str = "") -> List[str]:
    """``count`` new keys whose first letters cycle through a..z across
    calls, so writes reach every partition."""
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    return [f"{alphabet[next(_letters) % 26]}{prefix}{i:05d}" for i in range(count)]


def ident(record) -> Tuple[str, int]:
    """What identifies a written row version: its key and ``n``."""
    columns = {c.name: c.value for c in record.columns}
    return record.key["id"], columns["n"]


class Delivery(collections.namedtuple("Delivery", "worker channel_id ident sequence")):
    """One record handed to user code, in global delivery order."""


class Ledger(ChannelProcessor):
    """Collects every delivery of every worker that shares it, in order.

    ``processor(name)`` gives each worker a processor tagged with its name.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.deliveries: List[Delivery] = []

    def processor(self, name: str, delay_s: float = 0.0) -> ChannelProcessor:
        ledger = self

        class _Tagged(ChannelProcessor):
            def process(self, records, context):
                if delay_s:
                    time.sleep(delay_s)
                with ledger._lock:
                    ledger.deliveries.extend(
                        Delivery(name, context.channel_id, ident(r), r.sequence) for r in records
                    )

        return _Tagged()

    def idents(self) -> List[Tuple[str, int]]:
        with self._lock:
            return [d.ident for d in self.deliveries]

    def by_channel(self) -> Dict[str, List[Delivery]]:
        out: Dict[str, List[Delivery]] = collections.defaultdict(list)
        with self._lock:
            for delivery in self.deliveries:
                out[delivery.channel_id].append(delivery)
        return out

    def has_all(self, written) -> bool:
        return set(written) <= set(self.idents())


def wait_for(predicate, what: str, timeout_s: float = 60.0, step_s: float = 0.02):
    """Poll ``predicate`` until true. The timeout only bounds a hung test."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(step_s)


def active_channels(worker: TunnelWorker) -> List[str]:
    return sorted(cid for cid, state in worker.channels().items() if state.active)


def check_channel_runs(deliveries: Sequence[Delivery]) -> int:
    """Check one channel's deliveries; return how many were repeats.

    Each delivery must be the record right after the previous delivery, or
    go back to one delivered before (a new owner resuming from the last
    checkpoint). It may never skip ahead, so nothing is lost.
    """
    first_seen: Dict[Tuple[str, int], int] = {}
    previous: Optional[int] = None
    for index, delivery in enumerate(deliveries):
        position = first_seen.setdefault(delivery.ident, len(first_seen))
        if previous is not None:
            assert position == previous + 1 or position <= previous, (
                f"delivery {index} of channel {delivery.channel_id} jumps from record "
                f"#{previous} to #{position}: {delivery}"
            )
        previous = position
    return len(deliveries) - len(first_seen)
