"""What ``beam-tunnel consume`` shows while it runs.

* :class:`JsonLinesSink`: the processor; writes records and remembers,
  per channel, the write time of the newest change delivered.
* :class:`TunnelWatch`: DescribeTunnel in the background (one attempt,
  short timeouts, so an outage never holds up the progress line), for who
  holds which channel and the service's consume points.
* :class:`Progress`: the line ``records=N rate=R/s phase=P lag=L
  channels=C``, plus what the client waits for when it reads nothing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import IO, Dict, NamedTuple, Optional

from beam_tunnel.client.models import ChannelStatus, ChannelType, TunnelDescription, TunnelStage, TunnelType
from beam_tunnel.errors import TunnelError
from beam_tunnel.worker.config import WorkerConfig
from beam_tunnel.worker.processor import ChannelProcessor

__all__ = ["JsonLinesSink", "TunnelWatch", "Progress"]

_LOGGER = logging.getLogger(__name__)

_DEFAULT_HEARTBEAT_TIMEOUT_S = WorkerConfig().heartbeat_timeout_s

_HELD = (ChannelStatus.OPEN, ChannelStatus.CLOSING)
_PHASES = {
    frozenset({ChannelType.BASE_DATA}): "full data",
    frozenset({ChannelType.STREAM}): "stream",
    frozenset({ChannelType.BASE_DATA, ChannelType.STREAM}): "both",
}


class JsonLinesSink(ChannelProcessor):
    """Writes each batch as JSON lines and flushes before acknowledging it."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self.records = 0
        # channel id -> write time (s since the epoch) of the newest change
        # delivered from it.
        self._newest: Dict[str, float] = {}

    def process(self, records, context) -> None:
        text = "".join(json.dumps(record.to_dict(), separators=(",", ":")) + "\n" for record in records)
        with self._lock:
            self._stream.write(text)
            self._stream.flush()
            self.records += len(records)
            write_us = records[-1].write_time_us
            if write_us is not None and not records[-1].is_full_data:
                self._newest[context.channel_id] = write_us / 1e6

    def newest_change(self, channel_id: str) -> Optional[float]:
        with self._lock:
            return self._newest.get(channel_id)


class TunnelWatch:
    """The latest DescribeTunnel answer and consume points, refreshed on a
    daemon thread.

    Consume points come from GetRpoByOffset (the position of the last token
    each reader was given, "now" for a caught-up channel), falling back to
    DescribeTunnel's (the last checkpoint's) where it has none.

    Args:
      client: a TunnelClient of its own (one attempt per call, short
        timeouts: see ``consume.py``); closed by :meth:`stop`.
      table, tunnel, tunnel_id: what to describe.
      interval_s: seconds between refreshes.
    """

    def __init__(self, client, table: str, tunnel: str, tunnel_id: str, interval_s: float) -> None:
        self._client = client
        self._table, self._tunnel, self._tunnel_id = table, tunnel, tunnel_id
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._snapshot = Snapshot(None, {}, 0.0, None, None)
        self._thread = threading.Thread(target=self._run, name="consume-describe", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop refreshing; waits at most a second (a call in flight against
        a dead service may take its timeouts, and exiting must not)."""
        self._stop.set()
        self._thread.join(timeout=1.0)
        if not self._thread.is_alive():
            self._client.close()

    def refresh(self) -> None:
        """One refresh now (also what the thread does)."""
        try:
            description = self._client.describe_tunnel(self._table, self._tunnel)
        except TunnelError as err:
            with self._lock:
                first = self._snapshot.failing_since is None
                since = self._snapshot.failing_since or time.monotonic()
                self._snapshot = self._snapshot._replace(failing_since=since, error=str(err)[:300])
            if first:
                _LOGGER.warning("[consume] DescribeTunnel failed (%s); the progress line counts the seconds "
                                "without an answer", str(err)[:300])
            return
        points = {c.channel_id: c.rpo_ns for c in description.channels if c.rpo_ns}
        points.update(self._offset_points())
        described_at = time.time()
        with self._lock:
            self._snapshot = Snapshot(description, points, described_at, None, None)

    def _offset_points(self) -> Dict[str, int]:
        try:
            infos = self._client.get_rpo_by_offset(self._tunnel_id).rpo_infos.get(self._tunnel_id) or {}
        except TunnelError:
            return {}
        points = {}
        for channel_id, info in infos.items() if isinstance(infos, dict) else ():
            point = info.get("RpoTime") if isinstance(info, dict) else None
            if isinstance(point, int) and not isinstance(point, bool) and point > 0:
                points[channel_id] = point
        return points

    def snapshot(self) -> "Snapshot":
        with self._lock:
            return self._snapshot

    def all_finished(self) -> bool:
        snap = self.snapshot()
        channels = () if snap.description is None else snap.description.channels
        return snap.failing_since is None and bool(channels) and all(
            c.status is ChannelStatus.TERMINATED for c in channels
        )

    def _run(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self._interval_s)


class Snapshot(NamedTuple):
    """What :class:`TunnelWatch` knows.

    Attributes:
      description: the last DescribeTunnel answer, or None before the first.
      points: channel id -> consume point (ns since the epoch), as of
        ``described_at`` (s since the epoch).
      failing_since: ``time.monotonic()`` of the first failure in a row, or None.
      error: the last failure's message.
    """

    description: Optional[TunnelDescription]
    points: Dict[str, int]
    described_at: float
    failing_since: Optional[float]
    error: Optional[str]


class Progress:
    """Builds the progress line.

    ``records``: written so far. ``rate``: per second since the previous
    line. ``phase``: what this client reads now: ``full data``, ``stream``
    or ``both`` (from the channels it holds open; from the tunnel's stage
    while it holds none). ``lag``: for its stream channels, the slowest
    channel's age of the data, now: the smaller of the time since the
    newest change delivered and the service's consume point (which is
    "now" for a caught-up channel); ``-`` when it reads no stream channel.
    ``channels``: how many channels this client holds.
    """

    def __init__(self, sink: JsonLinesSink, worker, watch: TunnelWatch, clock=time.time) -> None:
        self._sink = sink
        self._worker = worker
        self._watch = watch
        self._clock = clock
        self._last_time = time.monotonic()
        self._last_records = 0

    def line(self, final: bool = False) -> str:
        """The progress line; ``final`` (after the worker stopped) leaves out
        what it waits for."""
        records = self._sink.records
        rate = self._rate(time.monotonic(), records)
        held = self._worker.channels()
        client_id = self._worker.client_id
        snap = self._watch.snapshot()
        description = snap.description
        described = {} if description is None else {c.channel_id: c for c in description.channels}
        # What this client reads, by its own channel table (always current);
        # the channel types come from DescribeTunnel.
        reading = [cid for cid, state in held.items() if state.status is ChannelStatus.OPEN and state.active]
        phase = _PHASES.get(frozenset(_channel_type(described[cid]) for cid in reading if cid in described))
        if phase is None and description is not None:
            phase = _tunnel_phase(description.tunnel)
        # After the stop the service no longer lists this client's channels.
        fresh = snap.failing_since is None and description is not None and not final
        lag = self._lag(list(held) if final else reading, snap if fresh else None)
        text = (f"records={records} rate={rate:.1f}/s phase={phase or '-'} "
                f"lag={'-' if lag is None else f'{lag:.1f}s'} channels={len(held)}")
        failing_s = None if snap.failing_since is None else time.monotonic() - snap.failing_since
        if failing_s is not None and failing_s >= 1.0:
            # The error itself was said once, when the wait began.
            text += f" service: no answer for {failing_s:.0f} s"
        if not reading and not final:
            mine = [c for c in described.values() if c.client_id == client_id]
            text += " " + self._waiting(description, mine, client_id)
        return text

    def _rate(self, now: float, records: int) -> float:
        """Records per second since the previous line."""
        rate = (records - self._last_records) / max(now - self._last_time, 1e-9)
        self._last_time, self._last_records = now, records
        return rate

    def _lag(self, channel_ids, snap: Optional[Snapshot]) -> Optional[float]:
        """The slowest stream channel's lag: the smaller of the time
        since its newest change delivered (which grows while nothing
        arrives, so it stays true when the service is gone) and the
        service's consume point, counted only from a fresh snapshot."""
        now = self._clock()
        described = {} if snap is None else {c.channel_id: c for c in snap.description.channels}
        lags = []
        for channel_id in channel_ids:
            info = described.get(channel_id)
            if info is not None and _channel_type(info) is not ChannelType.STREAM:
                continue
            candidates = []
            newest = self._sink.newest_change(channel_id)
            if newest is not None:
                candidates.append(max(0.0, now - newest))
            point = None if snap is None else snap.points.get(channel_id)
            if point:
                candidates.append(max(0.0, snap.described_at - point / 1e9))
            if candidates:
                lags.append(min(candidates))
        return max(lags) if lags else None

    def _waiting(self, description: Optional[TunnelDescription], mine, client_id) -> str:
        if client_id is None:
            return "waiting: connecting to the tunnel"
        if description is None:
            return "waiting: the service has assigned no channels to this client yet"
        channels = description.channels
        if channels and all(c.status is ChannelStatus.TERMINATED for c in channels):
            return "waiting: every channel of the tunnel is finished, nothing is left to read (--stop-when-finished stops here)"
        if mine and all(c.status is ChannelStatus.WAIT for c in mine):
            return "waiting: this client's stream channels open once the tunnel's full data is read"
        others = [c for c in channels if c.client_id and c.client_id != client_id and c.status in _HELD]
        if not others:
            return "waiting: the service has assigned no channels to this client yet"
        clients = len({c.client_id for c in others})
        return (
            f"waiting: the service has assigned no channels to this client yet (channels held by other "
            f"clients: {len(others)}, by {clients} client(s); a dead client's lease expires after its heartbeat "
            f"timeout, up to {_DEFAULT_HEARTBEAT_TIMEOUT_S:g} s with the default)"
        )


def _channel_type(channel) -> Optional[ChannelType]:
    try:
        return ChannelType(channel.channel_type)
    except ValueError:
        return None


def _tunnel_phase(tunnel) -> Optional[str]:
    """The phase by the tunnel's type and stage (before the channel types
    of this client's channels are known)."""
    try:
        kind, stage = TunnelType(tunnel.tunnel_type), TunnelStage(tunnel.stage)
    except ValueError:
        return None
    if kind is TunnelType.STREAM or (kind is TunnelType.BASE_AND_STREAM and stage is TunnelStage.PROCESS_STREAM):
        return "stream"
    return "full data"
