"""One ``process()`` call of a reader slot: the lease, the channels, the reads.

:class:`SlotCall` takes the slot's restriction and a client, does the
service calls, and hands back new restriction values for the DoFn to claim
together with the records to emit. It never emits, never commits and never
sleeps: the DoFn does those, so this class reads like the protocol.

Order of a call (design.md §3):

1. Channels whose last batch reached ``finished`` in an earlier call are
   reported TERMINATED now: only now has the runner durably committed the
   records of that batch (a residual runs only after its bundle commits).
2. A lost lease (no heartbeat answered within the timeout, or the service
   says the client is gone) means a new ConnectTunnel and forgetting every
   channel: the service has given them to other clients.
3. CLOSING channels are answered CLOSE v+1 once their last emitted batch is
   committed, or after ``closing_grace_s``: the next owner resumes from the
   committed checkpoint, so waiting for the commit avoids duplicates.
4. A heartbeat when due (or when an answer is owed); its reply is merged by
   the pure state machine in ``beam_tunnel.worker.channels``; channels newly
   OPEN get their checkpoint (GetCheckpoint).
5. Reads, round robin over the readable channels, one batch at a time.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

from beam_tunnel.beam._commits import Commit, Straddle, commit_position, straddle_emitted
from beam_tunnel.beam._prefetch import Prefetcher
from beam_tunnel.beam._restriction import ChannelCursor, SlotRestriction
from beam_tunnel.beam._settings import ReadSettings
from beam_tunnel.client.models import FINISHED_TOKEN, ChannelStatus
from beam_tunnel.client.tunnel_client import TunnelClient
from beam_tunnel.errors import PlainBufferError, ResourceGoneError
from beam_tunnel.records import ChangeRecord
from beam_tunnel.worker import channels as state_machine
from beam_tunnel.worker.channels import ChannelState, Progress
from beam_tunnel.worker.polling import has_more

_LOGGER = logging.getLogger(__name__)


class Batch(NamedTuple):
    """One ReadRecords answer, ready to claim and emit.

    Attributes:
      state: the slot's restriction after the batch (claim it first).
      channel_id: the channel read.
      records: ``(record, event time µs)`` pairs to emit, in order.
      corrupt: undecodable records (dead-letter mode only).
      size_bytes: the answer's size.
      commit: the checkpoint owed once the batch is durable.
      straddle: set when ``stop_at`` cut the batch (see ``_commits.Straddle``).
    """

    state: SlotRestriction
    channel_id: str
    records: Tuple[Tuple[ChangeRecord, int], ...]
    corrupt: tuple
    size_bytes: int
    commit: Optional[Commit]
    straddle: Optional[Straddle] = None


class SlotCall:
    """The service side of one ``process()`` call of a slot."""

    def __init__(
        self,
        client: TunnelClient,
        settings: ReadSettings,
        restriction: SlotRestriction,
        snapshot_us: int,
        stop_us: Optional[int],
        is_stream: Callable[[str], bool],
        reader: Optional[Prefetcher] = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._reader = reader
        self._settings = settings
        self.state = restriction
        self._snapshot_us = snapshot_us
        self.stop_us = stop_us
        self._is_stream = is_stream
        self._clock = clock
        self._round: List[str] = []
        self.reconnected = False

    # ---- start of a call ------------------------------------------------------

    def start(self) -> SlotRestriction:
        """Steps 1-4: report finished channels, keep the lease, heartbeat."""
        now = self._clock()
        self._report_finished()
        state = self.state
        if not state.client_id or self._lease_expired(now):
            self._connect(now)
        self._answer_closing(now)
        if self._heartbeat_due(now):
            try:
                self._heartbeat(now)
            except ResourceGoneError as error:
                _LOGGER.warning("[slot %d] lease of client %s lost (%s); reconnecting", state.slot, state.client_id,
                                error.code)
                self._connect(self._clock())
                self._heartbeat(self._clock())
        return self.state

    def _lease_expired(self, now: float) -> bool:
        answered = self.state.last_answered
        return answered is not None and now - answered >= self._settings.heartbeat_timeout_s

    def _connect(self, now: float) -> None:
        settings = self._settings
        client_id = self._client.connect(
            self.state.tunnel_id,
            timeout_s=int(settings.heartbeat_timeout_s + 0.999),
            client_tag=f"{settings.client_tag}-slot{self.state.slot}",
        )
        if self.state.client_id:
            _LOGGER.warning("[slot %d] reconnected as %s; forgot %d channels of %s", self.state.slot, client_id,
                            len(self.state.channels), self.state.client_id)
        self.reconnected = True
        self.state = dataclasses.replace(
            self.state, client_id=client_id, last_heartbeat=None, last_answered=now, channels=()
        )

    def _report_finished(self) -> None:
        cursors = self.state.cursor_map()
        changed = False
        for cid, cursor in cursors.items():
            if cursor.token == FINISHED_TOKEN and cursor.state.progress is Progress.READING:
                cursors[cid] = self._set_state(cursor, state_machine.mark_finished({cid: cursor.state}, cid)[cid])
                changed = True
        if changed:
            self.state = self.state.with_cursors(cursors)

    @staticmethod
    def _set_state(cursor: ChannelCursor, new_state: ChannelState) -> ChannelCursor:
        owes = cursor.owes_answer or new_state.version != cursor.state.version
        return dataclasses.replace(cursor, state=new_state, owes_answer=owes)

    def _answer_closing(self, now: float) -> None:
        cursors = self.state.cursor_map()
        changed = False
        for cid, cursor in cursors.items():
            state = cursor.state
            if state.status is not ChannelStatus.CLOSING or state.progress is not Progress.READING:
                continue
            durable = (
                cursor.batches == 0
                or commit_position(self.state.tunnel_id, cid) >= cursor.position
                or (cursor.stopped and straddle_emitted(self.state.tunnel_id, cid, cursor.token) > 0)
            )
            waited = cursor.closing_since is not None and now - cursor.closing_since >= self._settings.closing_grace_s
            if durable or waited or cursor.token == FINISHED_TOKEN:
                if cursor.token == FINISHED_TOKEN:
                    new_state = state_machine.mark_finished({cid: state}, cid)[cid]
                else:
                    new_state = state_machine.mark_stopped({cid: state}, cid)[cid]
                cursors[cid] = self._set_state(cursor, new_state)
                changed = True
        if changed:
            self.state = self.state.with_cursors(cursors)

    def _heartbeat_due(self, now: float) -> bool:
        state = self.state
        if state.last_heartbeat is None or any(c.owes_answer for c in state.channels):
            return True
        return now - state.last_heartbeat >= self._settings.heartbeat_interval_s

    def _heartbeat(self, now: float) -> None:
        state = self.state
        cursors = state.cursor_map()
        table = {cid: c.state for cid, c in cursors.items()}
        reply = self._client.heartbeat(state.tunnel_id, state.client_id, state_machine.heartbeat_channels(table))
        plan = state_machine.merge_heartbeat(table, reply)
        merged: Dict[str, ChannelCursor] = {}
        for cid, channel_state in plan.channels.items():
            old = cursors.get(cid)
            if old is None or cid in plan.open:
                merged[cid] = ChannelCursor(state=channel_state)
            else:
                merged[cid] = dataclasses.replace(old, state=channel_state, owes_answer=False)
            if channel_state.status is ChannelStatus.CLOSING and merged[cid].closing_since is None:
                merged[cid] = dataclasses.replace(merged[cid], closing_since=now)
        self.state = dataclasses.replace(
            state.with_cursors(merged), last_heartbeat=now, last_answered=now
        )
        for cid in plan.open:
            self._open(cid, now)
        if plan.open or plan.drop or plan.close:
            _LOGGER.info("[slot %d] heartbeat: open %s, close %s, dropped %s; holding %d channels",
                         state.slot, list(plan.open), list(plan.close), list(plan.drop), len(self.state.channels))

    def _open(self, channel_id: str, now: float) -> None:
        state = self.state
        cursors = state.cursor_map()
        cursor = cursors[channel_id]
        try:
            stored = self._client.get_checkpoint(state.tunnel_id, state.client_id, channel_id)
        except ResourceGoneError:
            cursors[channel_id] = self._set_state(
                cursor, state_machine.mark_stopped({channel_id: cursor.state}, channel_id)[channel_id])
            self.state = state.with_cursors(cursors)
            return
        table, ok = state_machine.mark_reading({channel_id: cursor.state}, channel_id)
        if not ok:
            return
        cursor = dataclasses.replace(
            cursor, state=table[channel_id], token=stored.checkpoint, opened_ms=int(now * 1000), batches=0
        )
        cursors[channel_id] = cursor
        self.state = state.with_cursors(cursors)
        _LOGGER.debug("[slot %d] reading channel %s from its checkpoint (seq %d)", state.slot, channel_id,
                      stored.sequence_number)

    # ---- reads ------------------------------------------------------------------

    def next_batch(self) -> Optional[Batch]:
        """Read the next readable channel that has data; None after a round
        in which no channel had any."""
        if not self._round:
            self._round = [c.channel_id for c in self.state.channels if c.readable]
        while self._round:
            channel_id = self._round.pop(0)
            cursor = self.state.cursor_map().get(channel_id)
            if cursor is None or not cursor.readable:
                continue
            batch = self._read(cursor)
            if batch is not None:
                return batch
        return None

    def _read(self, cursor: ChannelCursor) -> Optional[Batch]:
        state = self.state
        channel_id = cursor.channel_id
        keep_corrupt = self._settings.dead_letter
        try:
            if self._reader is not None:
                result = self._reader.read(state.tunnel_id, state.client_id, channel_id, cursor.token, keep_corrupt)
            elif keep_corrupt:
                result = self._client.read_records(state.tunnel_id, state.client_id, channel_id, cursor.token,
                                                   keep_corrupt=True)
            else:
                result = self._client.read_records(state.tunnel_id, state.client_id, channel_id, cursor.token)
        except ResourceGoneError:
            # Taken away (or the lease is gone): stop, let the heartbeat tell.
            self._replace(dataclasses.replace(
                cursor, state=state_machine.mark_stopped({channel_id: cursor.state}, channel_id)[channel_id],
                owes_answer=True))
            return None
        except PlainBufferError as error:
            raise PlainBufferError(
                f"tunnel {state.tunnel_id}, channel {channel_id}, token {cursor.token!r}: {error} "
                "(pass dead_letter=True to ReadFromTunnel to route corrupt records to a tagged output)",
                offset=error.offset, cell=error.cell,
            ) from error
        already = straddle_emitted(state.tunnel_id, channel_id, cursor.token)
        batch_records = result.records[already:] if already else result.records
        records, stopped = self._event_times(batch_records)
        corrupt = tuple(getattr(result, "corrupt", ()))
        caught_up = not has_more(len(result.records) + len(corrupt), result.size_bytes, result.may_more_record)
        if self.stop_us is not None and not stopped and self._is_stream(channel_id):
            # A stream channel is done once everything written before the stop
            # time is behind its token: it caught up at a time past the stop,
            # or it delivered a record written at or after it. Full-data
            # channels are done only when finished.
            passed = bool(records) and records[-1][1] >= self.stop_us
            stopped = passed or (caught_up and self._clock() * 1e6 >= self.stop_us)
        truncated = len(records) < len(batch_records)
        if not records and not corrupt and result.next_token == cursor.token and not stopped:
            return None  # nothing new
        new_token = cursor.token if truncated else result.next_token
        new_cursor = dataclasses.replace(
            cursor, token=new_token, batches=cursor.batches + 1,
            stopped=cursor.stopped or stopped,
        )
        self._replace(new_cursor)
        if self._reader is not None and not caught_up and new_cursor.readable and new_token != FINISHED_TOKEN:
            self._reader.start(state.tunnel_id, state.client_id, channel_id, new_token, keep_corrupt)
        commit = None if truncated else Commit(channel_id, new_token, new_cursor.position)
        straddle = Straddle(channel_id, cursor.token, already + len(records)) if truncated and records else None
        return Batch(self.state, channel_id, tuple(records), corrupt, result.size_bytes, commit, straddle)

    def _event_times(self, batch) -> Tuple[List[Tuple[ChangeRecord, int]], bool]:
        """(record, event µs) pairs; with ``stop_at``, stops before the first
        stream record written at or after it (returning True as the second
        value). ``stop_when_caught_up`` emits whole batches: records past the
        start of the read may come too, and the checkpoint after the batch
        then covers the channel."""
        stop_at = self._settings.stop_at_us
        out = []
        snapshot = self._snapshot_us
        for record in batch:
            sequence = record.sequence
            if sequence is None:
                out.append((record, snapshot))
                continue
            if stop_at is not None and sequence.timestamp >= stop_at:
                return out, True
            out.append((record, sequence.timestamp))
        return out, False

    def _replace(self, cursor: ChannelCursor) -> None:
        cursors = self.state.cursor_map()
        cursors[cursor.channel_id] = cursor
        self.state = self.state.with_cursors(cursors)

    # ---- bounded reads ------------------------------------------------------------

    def own_work_left(self) -> bool:
        """True while a channel this slot holds still has something to read."""
        for cursor in self.state.channels:
            status, progress = cursor.state.status, cursor.state.progress
            if progress is Progress.FINISHED or cursor.stopped:
                continue
            if progress in (Progress.NEW, Progress.READING) and status in (ChannelStatus.OPEN, ChannelStatus.CLOSING):
                return True
        return False
