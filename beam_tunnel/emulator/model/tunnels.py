"""TunnelBackend: the Tunnel Service model, one method per API call.

Takes plain Python values, returns plain values (the wire layer converts to
and from protobuf). State lives in SQLite (``tunnel_store``); the channel
rules are in ``channels``, reading in ``reads``, consume points in ``rpo``.

Every call that may change state runs in one write transaction: load the
tunnel, refresh it (end lapsed leases, add channels for new partitions, move
the stage), apply the call, save what changed. Errors found after the
refresh still commit the refresh, so an expired lease stays expired.
DescribeTunnel and GetRpo refresh a snapshot in memory and save nothing, so
they never wait for a writer. A heartbeat's (and shutdown's) lease is judged
when it arrived, and while it waits it keeps the lease alive for everyone
else's refresh too (``arrivals.py``): the emulator's own slowness never ends
a lease.

Choices where the real service is undocumented (tunnel-protocol.md §7):

* Unknown tunnel id, or unknown table / tunnel name -> OTSParameterInvalid
  (what the SDK workers treat as "tunnel invalid" and stop on).
* Unknown, expired or shut-down client id -> OTSResourceGone.
* Data-plane ownership and permissive mode: see ``dataplane.py``.
* The stage is InitBaseDataAndStreamShard until the first heartbeat. A
  BaseData tunnel whose channels are all finished moves on to
  ProcessStream (there is no later stage), with nothing to read there.
* A BaseAndStream tunnel whose stream data since its creation has expired
  by the time its full phase ends is marked expired; worker calls then get
  OTSTunnelExpired. So does a tunnel whose table's stream was re-enabled
  (a new stream id).
"""

from __future__ import annotations

import logging
import uuid
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple, TypeVar

from beam_tunnel.errors import ObjectNotExistError, ServiceError
from beam_tunnel.protocol import tunnel_pb2

from .. import errors
from . import channels as rules
from . import layout, rpo, tunnel_errors
from . import tunnel_store as store
from .arrivals import Arrivals
from .dataplane import DataPlane
from .reads import Reader, ReadResult
from .tables import StreamSpec
from .tunnel_store import (
    BASE,
    BASE_AND_STREAM,
    CLOSING,
    OPEN,
    STAGE_BASE,
    STAGE_INIT,
    STAGE_STREAM,
    STREAM,
    TERMINATED,
    ClientRecord,
    TunnelRecord,
    TunnelState,
)

__all__ = ["TunnelBackend", "TunnelView", "ChannelView", "TunnelDescription", "DEFAULT_CLIENT_TIMEOUT_S"]

_LOGGER = logging.getLogger(__name__)

DEFAULT_CLIENT_TIMEOUT_S = 300
"""Lease timeout for a ConnectTunnel without ClientConfig.timeout (SDK default)."""
_STREAM_RETENTION_HOURS = 168  # CreateTunnel turns a table's stream on with 7 days
# Storage holds int64; larger wire values (uint64 offsets, int64 seconds
# stored as µs) are refused up front rather than failing on save.
_INT64_MAX = (1 << 63) - 1
_MAX_CLIENT_TIMEOUT_S = _INT64_MAX // 1_000_000
# A channel's version grows by one per transition, so a report this far
# ahead is garbage, and taking it would overflow the server's next bump.
_MAX_REPORTED_VERSION = 1 << 62
_TYPE_NAMES = {tunnel_pb2.BaseData: BASE, tunnel_pb2.Stream: STREAM, tunnel_pb2.BaseAndStream: BASE_AND_STREAM}
_STATUS_NUMBERS = {OPEN: tunnel_pb2.OPEN, CLOSING: tunnel_pb2.CLOSING, store.CLOSE: tunnel_pb2.CLOSE,
                   TERMINATED: tunnel_pb2.TERMINATED}

T = TypeVar("T")


class TunnelView(NamedTuple):
    """A tunnel as ListTunnel / DescribeTunnel show it (times in ns)."""

    tunnel_id: str
    tunnel_name: str
    table_name: str
    tunnel_type: str
    stage: str
    stream_id: str
    expired: bool
    create_time_ns: int
    start_flag: Optional[int]
    start_ns: int
    end_ns: int


class ChannelView(NamedTuple):
    """A channel as DescribeTunnel shows it."""

    channel_id: str
    channel_type: str
    status: str
    client_id: str
    rpo_ns: int
    count: int


class TunnelDescription(NamedTuple):
    """A DescribeTunnel answer: the tunnel, its channels (base first, then
    stream, each by id) and the tunnel's consume point in ns."""

    tunnel: TunnelView
    channels: List[ChannelView]
    tunnel_rpo_ns: int


def _view(tunnel: TunnelRecord) -> TunnelView:
    return TunnelView(
        tunnel.tunnel_id, tunnel.tunnel_name, tunnel.table_name, tunnel.tunnel_type, tunnel.stage,
        tunnel.stream_id, tunnel.expired, tunnel.create_us * 1000, tunnel.start_flag, tunnel.start_ns, tunnel.end_ns,
    )


class TunnelBackend:
    """Tunnels, channels, client leases and checkpoints of one emulator.

    Args:
      storage: the :class:`~beam_tunnel.emulator.storage.Storage` of the
        tunnel state (its own file, so control calls never wait for a table
        commit).
      clock: the emulator clock.
      tables: the :class:`~.tables.TableBackend`.
      streams: the :class:`~.streamlog.StreamLog`.
      config: the :class:`~beam_tunnel.emulator.config.EmulatorConfig`
        (instance name, ReadRecords limits, ``tunnel_permissive``).
      data_storage: the Storage of the table data (default: ``storage``).
    """

    def __init__(self, storage, clock, tables, streams, config, *, data_storage=None) -> None:
        self._storage = storage
        self._clock = clock
        self._tables = tables
        self._streams = streams
        self._arrivals = Arrivals(clock.now_us)
        data_storage = data_storage or storage
        reader = Reader(tables, streams, data_storage, clock.now_us, config.read_max_records, config.read_max_bytes)
        self._data = DataPlane(storage, clock.now_us, reader, config.tunnel_permissive, self._arrivals.since)
        storage.ensure_schema(store.TUNNEL_DDL)
        if data_storage is not storage:
            with storage.exclusive() as conn:
                store.upgrade(conn, data_storage.path)
        tables.on_table_deleted(self._on_table_deleted)

    # ------------------------------------------------------------------
    # Plumbing

    def pending_since(self, client_id: str) -> Optional[int]:
        """Arrival µs of the oldest heartbeat or shutdown of ``client_id``
        still waiting for an answer, or None (its lease counts from there)."""
        return self._arrivals.since(client_id)

    def _on_table_deleted(self, table_conn, table_name: str) -> None:
        # Inside the DeleteTable transaction, before it commits: a crash in
        # between leaves the table without its tunnels, never tunnels of a
        # table that is gone.
        with self._storage.transaction() as conn:
            count = store.delete_table_tunnels(conn, table_name)
        if count:
            _LOGGER.info("[tunnel] table %s deleted with %d tunnel(s)", table_name, count)

    def _mutate(self, tunnel_id: str, action: Callable[[TunnelState, int], T]) -> T:
        """Load, refresh, apply ``action``, save - in one write transaction."""
        error: Optional[ServiceError] = None
        with self._storage.transaction() as conn:
            tunnel = store.load_tunnel(conn, tunnel_id)
            if tunnel is None:
                raise tunnel_errors.tunnel_missing(tunnel_id)
            state = store.load_state(conn, tunnel)
            now_us = self._clock.now_us()
            self._refresh(state, now_us)
            try:
                result = action(state, now_us)
            except ServiceError as err:
                error = err
            state.save(conn)
        if error is not None:
            raise error
        return result

    def _peek(self, tunnel_id: str, action: Callable[[TunnelState, int], T]) -> T:
        """Load and refresh a snapshot, apply a read-only ``action``; saves
        nothing (the next write call refreshes the same way), so it never
        waits for a writer."""
        with self._storage.read() as conn:
            tunnel = store.load_tunnel(conn, tunnel_id)
            if tunnel is None:
                raise tunnel_errors.tunnel_missing(tunnel_id)
            state = store.load_state(conn, tunnel)
        now_us = self._clock.now_us()
        self._refresh(state, now_us)
        return action(state, now_us)

    def _refresh(self, state: TunnelState, now_us: int) -> None:
        rules.expire_leases(state, now_us, self._arrivals.snapshot())
        tunnel = state.tunnel
        if tunnel.has_stream and not tunnel.expired:
            try:
                info = self._tables.describe_table(tunnel.table_name)
            except ObjectNotExistError:
                return
            if info.stream.stream_id != tunnel.stream_id:
                _LOGGER.warning("[tunnel] %s: the stream of %s changed; tunnel expired", tunnel.tunnel_id,
                                tunnel.table_name)
                tunnel.expired = True
                return
            layout.add_stream_channels(state, self._tables, self._streams)
        self._advance_stage(state)

    def _advance_stage(self, state: TunnelState) -> None:
        tunnel = state.tunnel
        if tunnel.stage != STAGE_BASE or tunnel.expired:
            return
        if not rules.base_phase_done(state):
            return
        if tunnel.tunnel_type == BASE:
            # Only three stages exist (the Java SDK parses them with
            # valueOf): a finished full-data tunnel is past ProcessBaseData.
            tunnel.stage = STAGE_STREAM
            _LOGGER.info("[tunnel] %s: full data done, now %s", tunnel.tunnel_id, STAGE_STREAM)
            return
        if self._streams.expired_before(tunnel.table_name) > tunnel.create_us:
            _LOGGER.warning("[tunnel] %s: full phase outlived stream retention; tunnel expired", tunnel.tunnel_id)
            tunnel.expired = True
            return
        tunnel.stage = STAGE_STREAM
        _LOGGER.info("[tunnel] %s: full phase done, now %s", tunnel.tunnel_id, STAGE_STREAM)

    # ------------------------------------------------------------------
    # Management

    def create_tunnel(
        self,
        table_name: str,
        tunnel_name: str,
        tunnel_type: int,
        start_flag: Optional[int] = None,
        start_ns: int = 0,
        end_ns: int = 0,
    ) -> str:
        """CreateTunnel. Returns the new tunnel id.

        Stream and BaseAndStream tunnels turn the table's stream on (7 days)
        when it is off. startOffset/flag apply to Stream tunnels (a
        BaseAndStream tunnel's stream part starts at its creation); endOffset
        to stream channels of both.

        Raises:
          ServiceError: OTSParameterInvalid (unknown table, bad type, name or
            offsets), OTSTunnelExist.
        """
        type_name = _TYPE_NAMES.get(tunnel_type)
        if type_name is None:
            raise errors.parameter_invalid(f"tunnel_type must be BaseData, Stream or BaseAndStream, got {tunnel_type!r}")
        if not isinstance(tunnel_name, str) or not tunnel_name.strip():
            raise errors.parameter_invalid(f"tunnel_name must be a non-empty string, got {tunnel_name!r}")
        if start_flag not in (None, tunnel_pb2.LATEST, tunnel_pb2.EARLIEST):
            raise errors.parameter_invalid(f"stream start flag must be LATEST or EARLIEST, got {start_flag!r}")
        now_us = self._clock.now_us()
        if start_ns and start_ns > now_us * 1000:
            raise errors.parameter_invalid(f"startOffset {start_ns} ns is in the future (now {now_us * 1000} ns)")
        if end_ns > _INT64_MAX:
            raise errors.parameter_invalid(f"endOffset {end_ns} ns is beyond the largest time, {_INT64_MAX} ns")
        if end_ns and end_ns <= start_ns:
            raise errors.parameter_invalid(f"endOffset {end_ns} ns must be after startOffset {start_ns} ns")
        try:
            info = self._tables.describe_table(table_name)
        except ObjectNotExistError:
            raise errors.parameter_invalid(f"table {table_name!r} does not exist") from None
        with self._storage.read() as conn:
            if store.find_tunnel(conn, table_name, tunnel_name) is not None:
                raise tunnel_errors.tunnel_exist(table_name, tunnel_name)
        if type_name != BASE and not info.stream.enabled:
            # Before the tunnel transaction: the table lock is always taken
            # before the tunnel lock, never inside it.
            self._tables.update_table(table_name, stream=StreamSpec(True, _STREAM_RETENTION_HOURS))
            _LOGGER.info("[tunnel] enabled the stream of %s for a %s tunnel", table_name, type_name)
        tunnel_id = str(uuid.uuid4())
        snapshot_last = None
        if type_name != STREAM:
            # The full phase reads the rows as of now; the snapshot's time is
            # the tunnel's creation time and its log positions are where the
            # stream part starts, so every change is in exactly one phase.
            now_us, snapshot_last = self._tables.take_snapshot(table_name, tunnel_id)
        try:
            with self._storage.transaction() as conn:
                try:
                    info = self._tables.describe_table(table_name)
                except ObjectNotExistError:
                    raise errors.parameter_invalid(f"table {table_name!r} does not exist") from None
                if store.find_tunnel(conn, table_name, tunnel_name) is not None:
                    raise tunnel_errors.tunnel_exist(table_name, tunnel_name)
                if type_name != BASE and not info.stream.enabled:
                    raise errors.parameter_invalid(f"the stream of table {table_name!r} was turned off meanwhile")
                tunnel = TunnelRecord(
                    tunnel_id, table_name, tunnel_name, type_name, STAGE_INIT, now_us,
                    (info.stream.stream_id or "") if type_name != BASE else "",
                    start_flag, start_ns or 0, end_ns or 0, False,
                )
                state = TunnelState(tunnel)
                if tunnel.has_base:
                    layout.add_base_channels(state, self._tables, info)
                if tunnel.has_stream:
                    layout.add_stream_channels(state, self._tables, self._streams, at_creation=True,
                                               creation_last=snapshot_last)
                state.save(conn)
        except BaseException:
            if snapshot_last is not None:
                self._tables.drop_snapshot(table_name, tunnel_id)
            raise
        _LOGGER.info("[tunnel] created %s %r (%s) on %s with %d channel(s)", tunnel.tunnel_id, tunnel_name,
                     type_name, table_name, len(state.channels))
        return tunnel.tunnel_id

    def delete_tunnel(self, table_name: str, tunnel_name: str, tunnel_id: Optional[str] = None) -> None:
        """DeleteTunnel: the tunnel, its channels, checkpoints and leases.

        Raises:
          ServiceError: OTSParameterInvalid when no such tunnel exists.
        """
        with self._storage.transaction() as conn:
            tunnel = self._find(conn, table_name, tunnel_name, tunnel_id)
            store.delete_tunnel(conn, tunnel.tunnel_id)
        self._data.forget(tunnel.tunnel_id)
        # After the tunnel is gone (a crash in between leaves only unused rows).
        self._tables.drop_snapshot(table_name, tunnel.tunnel_id)
        _LOGGER.info("[tunnel] deleted %s %r", tunnel.tunnel_id, tunnel_name)

    @staticmethod
    def _find(conn, table_name: str, tunnel_name: str, tunnel_id: Optional[str]) -> TunnelRecord:
        tunnel = store.find_tunnel(conn, table_name, tunnel_name)
        if tunnel is None or (tunnel_id and tunnel.tunnel_id != tunnel_id):
            raise errors.parameter_invalid(f"tunnel {tunnel_name!r} does not exist on table {table_name!r}")
        return tunnel

    def list_tunnels(self, table_name: Optional[str] = None) -> List[TunnelView]:
        """ListTunnel: tunnels of one table, or of every table for None/""."""
        if table_name and table_name not in self._tables.list_tables():
            raise errors.parameter_invalid(f"table {table_name!r} does not exist")
        with self._storage.read() as conn:
            states = [store.load_state(conn, t) for t in store.list_tunnels(conn, table_name or None)]
        now_us = self._clock.now_us()
        views = []
        for state in states:
            # Refreshed like DescribeTunnel, so both show the same stage.
            self._refresh(state, now_us)
            views.append(_view(state.tunnel))
        return views

    def describe_tunnel(self, table_name: str, tunnel_name: str, tunnel_id: Optional[str] = None) -> TunnelDescription:
        """DescribeTunnel: the tunnel, its channels and consume points."""
        with self._storage.read() as conn:
            found = self._find(conn, table_name, tunnel_name, tunnel_id)

        def describe(state: TunnelState, now_us: int) -> TunnelDescription:
            # Before reading the log (see Timeline).
            now_ns = self._tables.timeline.complete_through_us() * 1000
            first_after = self._first_after(state.tunnel)
            created_ns = state.tunnel.create_us * 1000
            channels = state.sorted_channels()
            tokens = {c.channel_id: c.checkpoint for c in channels}
            points = {
                c.channel_id: rpo.consume_point_ns(c, c.checkpoint, first_after, now_ns, created_ns) for c in channels
            }
            views = [
                ChannelView(c.channel_id, c.kind, rules.display_status(state, c), c.owner or "",
                            points[c.channel_id], c.count)
                for c in channels
            ]
            return TunnelDescription(_view(state.tunnel), views, rpo.tunnel_point_ns(points, state, tokens, now_ns))

        return self._peek(found.tunnel_id, describe)

    def _first_after(self, tunnel: TunnelRecord) -> rpo.FirstAfter:
        def first_after(partition_id: str, position):
            try:
                return self._streams.first_after(tunnel.table_name, partition_id, position)
            except ObjectNotExistError:
                return None

        return first_after

    def get_rpo(self, tunnel_id: str, limit: int = 0, by_offset: bool = False) -> Tuple[bytes, bytes]:
        """GetRpo (checkpoints) or GetRpoByOffset (last reads): JSON blobs,
        schema in :mod:`.rpo`."""
        if limit < 0:
            raise errors.parameter_invalid(f"limit must be >= 0, got {limit}")
        progress = self._data.progress(tunnel_id)

        def blobs(state: TunnelState, now_us: int) -> Tuple[bytes, bytes]:
            now_ns = self._tables.timeline.complete_through_us() * 1000
            tokens = {c.channel_id: c.checkpoint for c in state.channels.values()}
            if by_offset:
                tokens.update({cid: token for cid, (_, token) in progress.items() if cid in tokens})
            access = {cid: at_us * 1000 for cid, (at_us, _) in progress.items()}
            return rpo.rpo_blobs(state, tokens, access, self._first_after(state.tunnel), now_ns, limit)

        return self._peek(tunnel_id, blobs)

    def schedule(self, tunnel_id: str, requests: Sequence[Tuple[str, int]]) -> None:
        """Schedule: set channel statuses (see ``channels.schedule``)."""
        self._mutate(tunnel_id, lambda state, now_us: rules.schedule(state, requests))

    # ------------------------------------------------------------------
    # Workers

    def connect(self, tunnel_id: str, timeout_s: Optional[int] = None, client_tag: Optional[str] = None) -> str:
        """ConnectTunnel: a new client lease. Returns the client id
        (``<tag>_<random>``).

        Args:
          timeout_s: lease timeout in seconds; None or 0 means 300.

        Raises:
          ServiceError: OTSParameterInvalid (unknown tunnel, negative or
            out-of-range timeout), OTSTunnelExpired.
        """
        if timeout_s is not None and not 0 <= timeout_s <= _MAX_CLIENT_TIMEOUT_S:
            raise errors.parameter_invalid(
                f"ClientConfig.timeout must be 0..{_MAX_CLIENT_TIMEOUT_S} seconds, got {timeout_s}"
            )
        timeout_us = (timeout_s or DEFAULT_CLIENT_TIMEOUT_S) * 1_000_000
        tag = (client_tag or "").strip() or "client"
        client_id = f"{tag}_{uuid.uuid4().hex[:16]}"

        def connect(state: TunnelState, now_us: int) -> str:
            if state.tunnel.expired:
                raise tunnel_errors.tunnel_expired(state.tunnel.tunnel_id)
            state.clients[client_id] = ClientRecord(client_id, tunnel_id, tag, timeout_us, now_us, now_us)
            return client_id

        self._mutate(tunnel_id, connect)
        _LOGGER.info("[tunnel] %s: client %s connected (timeout %d s)", tunnel_id, client_id, timeout_us // 1_000_000)
        return client_id

    def heartbeat(
        self, tunnel_id: str, client_id: str, reports: Sequence[Tuple[str, int, int]]
    ) -> List[Tuple[str, int, int]]:
        """Heartbeat: renew the lease, merge the reports ``(channel_id,
        version, status number)``, rebalance, and return the channels assigned
        to this client as ``(channel_id, version, status number)``.

        Raises:
          ServiceError: OTSParameterInvalid (also for a version above
            2**62), OTSResourceGone, OTSTunnelExpired.
        """
        for channel_id, version, _ in reports:
            if version > _MAX_REPORTED_VERSION:
                raise errors.parameter_invalid(
                    f"channel {channel_id!r} is reported with version {version}; "
                    f"versions above {_MAX_REPORTED_VERSION} are never issued"
                )

        def heartbeat(state: TunnelState, now_us: int) -> List[Tuple[str, int, int]]:
            client = state.clients.get(client_id)
            tunnel_errors.require_live_client(tunnel_id, client_id, client, now_us, arrived_us)
            if state.tunnel.expired:
                raise tunnel_errors.tunnel_expired(state.tunnel.tunnel_id)
            client.last_seen_us = now_us
            if state.tunnel.stage == STAGE_INIT:
                state.tunnel.stage = STAGE_STREAM if state.tunnel.tunnel_type == STREAM else STAGE_BASE
            rules.merge_reports(state, client_id, reports)
            self._advance_stage(state)
            if state.tunnel.expired:
                raise tunnel_errors.tunnel_expired(state.tunnel.tunnel_id)
            rules.balance(state)
            return [(c.channel_id, c.version, _STATUS_NUMBERS[c.status]) for c in rules.assigned_to(state, client_id)]

        # The lease is judged when the heartbeat arrived and renewed when it
        # is answered: time spent waiting for the emulator is not the client's.
        with self._arrivals.arriving(client_id) as arrived_us:
            return self._mutate(tunnel_id, heartbeat)

    def shutdown(self, tunnel_id: str, client_id: str) -> None:
        """ShutdownTunnel: end the lease now and release its channels.

        Raises:
          ServiceError: OTSParameterInvalid, OTSResourceGone.
        """

        def shutdown(state: TunnelState, now_us: int) -> None:
            tunnel_errors.require_live_client(tunnel_id, client_id, state.clients.get(client_id), now_us, arrived_us)
            rules.end_lease(state, client_id, now_us, rules.SHUTDOWN)

        with self._arrivals.arriving(client_id) as arrived_us:
            self._mutate(tunnel_id, shutdown)

    def get_checkpoint(self, tunnel_id: str, client_id: str, channel_id: str) -> Tuple[str, int]:
        """GetCheckpoint: ``(checkpoint, sequence_number)``; a never
        checkpointed channel gives its initial token and 0."""
        return self._data.get_checkpoint(tunnel_id, client_id, channel_id)

    def checkpoint(self, tunnel_id: str, client_id: str, channel_id: str, token: str, sequence: int) -> None:
        """Checkpoint: store ``token`` when ``sequence`` is stored + 1.

        Raises:
          ServiceError: OTSSequenceNumberNotMatch, OTSResourceGone (not the
            owner), OTSParameterInvalid (token not for this channel).
        """
        self._data.checkpoint(tunnel_id, client_id, channel_id, token, sequence)

    def read_records(self, tunnel_id: str, client_id: str, channel_id: str, token: str) -> ReadResult:
        """ReadRecords: the records after ``token`` (see :mod:`.reads`)."""
        return self._data.read_records(tunnel_id, client_id, channel_id, token)

    # ------------------------------------------------------------------
    # Admin

    def split_partition(self, table_name: str, partition_id: str, split_key) -> List[str]:
        """Split a partition (admin). Stream channels of the children appear
        on the next heartbeat or describe, in WAIT until the parent ends.

        Returns:
          The two child partition ids, lower range first.
        """
        children = self._tables.split_partition(table_name, partition_id, split_key)
        return [child.partition_id for child in children]

    def merge_partitions(self, table_name: str, left_id: str, right_id: str) -> str:
        """Merge two adjacent partitions (admin). Returns the child's id."""
        return self._tables.merge_partitions(table_name, left_id, right_id).partition_id
