"""The channel state machine of a Tunnel client: pure, no I/O, no threads.

The service decides which client reads which channel. Every heartbeat the
client sends the channels it knows as ``{id, version, status}`` and the
service answers with the set it assigns; this module merges that answer into
the client's local table and says what the caller must do about it. The same
functions drive the threaded :class:`beam_tunnel.worker.TunnelWorker` and the
Beam source, whose restriction carries the table as plain data.

Rules (tunnel-protocol.md §4.2, matching the Go and Java SDKs):

* The higher version wins; on a tie the service wins. A reply entry with a
  lower version than the local one is stale and ignored.
* A local channel missing from the reply has been revoked: stop reading it
  and forget it (no answer is owed).
* OPEN from the service starts a read (GetCheckpoint, then read from the
  stored token); a channel this client already stopped or finished is opened
  afresh when the service hands it out again.
* CLOSING asks the client to stop and hand the channel back: once its reader
  has stopped (and flushed its checkpoint) the client answers CLOSE v+1, or
  TERMINATED v+1 if the reader reached the end.
* CLOSE and TERMINATED from the service stop any reader and are echoed back.
* Local events change the report at once: a reader that reaches the
  ``finished`` token reports TERMINATED v+1, one that fails (or could not
  open) reports CLOSE v+1.

Everything here is an immutable value; each function returns a new table.
A table is a ``Mapping[str, ChannelState]`` keyed by channel id.

Usage::

    table = {}
    plan = merge_heartbeat(table, reply_channels)
    table = plan.channels
    for channel_id in plan.open:
        ...  # GetCheckpoint, then table, ok = mark_reading(table, channel_id)
    for channel_id in plan.close + plan.drop:
        ...  # stop that channel's reader, then table = mark_stopped(table, id)
    next_request = heartbeat_channels(table)
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Dict, Iterable, List, Mapping, Tuple

from beam_tunnel.client.models import Channel, ChannelStatus
from beam_tunnel.errors import ConfigError
from beam_tunnel.worker._checks import int_at_least

__all__ = [
    "Progress",
    "ChannelState",
    "MergePlan",
    "merge_heartbeat",
    "mark_reading",
    "mark_finished",
    "mark_stopped",
    "heartbeat_channels",
]


class Progress(str, enum.Enum):
    """How far this client got with a channel, independent of the service.

    NEW: assigned OPEN, not read yet (the checkpoint is still to be fetched).
    READING: a reader is reading it.
    FINISHED: its reader reached the ``finished`` token.
    STOPPED: not being read: the reader stopped, failed or never started.
    """

    NEW = "new"
    READING = "reading"
    FINISHED = "finished"
    STOPPED = "stopped"


_ACTIVE = (Progress.NEW, Progress.READING)


@dataclasses.dataclass(frozen=True)
class ChannelState:
    """One channel as this client knows it.

    Attributes:
      channel_id: the channel's id.
      version: the version the next heartbeat reports.
      status: the status the next heartbeat reports.
      progress: this client's own progress with the channel.
    """

    channel_id: str
    version: int
    status: ChannelStatus
    progress: Progress = Progress.NEW

    def __post_init__(self) -> None:
        int_at_least("ChannelState.version", self.version, 0)
        object.__setattr__(self, "status", ChannelStatus.parse(self.status, "ChannelState.status"))
        object.__setattr__(self, "progress", Progress(self.progress))

    @property
    def active(self) -> bool:
        """True while this client reads (or is about to read) the channel."""
        return self.progress in _ACTIVE

    def as_channel(self) -> Channel:
        """The entry a heartbeat request carries for this channel."""
        return Channel(self.channel_id, self.version, self.status)

    def _replace(self, **changes) -> "ChannelState":
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class MergePlan:
    """What one heartbeat reply means for this client.

    Attributes:
      channels: the new local table; the next heartbeat reports it.
      open: ids to start reading: fetch the checkpoint, then
        :func:`mark_reading` (or :func:`mark_stopped` if that fails).
      keep: ids whose reading goes on unchanged.
      close: ids whose reader must stop. For a CLOSING channel the answer
        (CLOSE v+1) is owed once the reader has stopped: call
        :func:`mark_stopped` (or :func:`mark_finished`) then.
      answer: the entries this client answers with a new version (CLOSE v+1
        or TERMINATED v+1) in the next heartbeat, already in ``channels``.
      drop: ids the service no longer lists: stop their reader if any; they
        are gone from ``channels``.
    """

    channels: Mapping[str, ChannelState]
    open: Tuple[str, ...] = ()
    keep: Tuple[str, ...] = ()
    close: Tuple[str, ...] = ()
    answer: Tuple[Channel, ...] = ()
    drop: Tuple[str, ...] = ()


def merge_heartbeat(local: Mapping[str, ChannelState], reply: Iterable[Channel]) -> MergePlan:
    """Merge a heartbeat reply into the local table.

    Args:
      local: the table before the reply (not modified).
      reply: the channels of the HeartbeatResponse.

    Returns:
      A :class:`MergePlan`; its ``channels`` replaces ``local``.

    Raises:
      ConfigError: if the reply lists a channel id twice.
    """
    merged: Dict[str, ChannelState] = {}
    opened: List[str] = []
    kept: List[str] = []
    closed: List[str] = []
    answers: List[Channel] = []
    for entry in reply:
        if entry.channel_id in merged:
            raise ConfigError(f"heartbeat reply lists channel {entry.channel_id!r} twice")
        mine = local.get(entry.channel_id)
        if mine is not None and entry.version < mine.version:
            # Stale: the service has not seen our newer report yet.
            state, action = mine, ("keep" if mine.active else None)
        else:
            state, action = _apply(mine, entry)
            if state.version > entry.version:
                answers.append(state.as_channel())
        merged[entry.channel_id] = state
        if action == "open":
            opened.append(entry.channel_id)
        elif action == "keep":
            kept.append(entry.channel_id)
        elif action == "close":
            closed.append(entry.channel_id)
    dropped = tuple(cid for cid in local if cid not in merged)
    return MergePlan(
        channels=merged,
        open=tuple(opened),
        keep=tuple(kept),
        close=tuple(closed),
        answer=tuple(answers),
        drop=dropped,
    )


def _apply(mine, entry: Channel):
    """(new state, action) for a reply entry that is not stale."""
    cid, version, status = entry.channel_id, entry.version, entry.status
    progress = mine.progress if mine is not None else None
    if status is ChannelStatus.OPEN:
        if progress in _ACTIVE:
            return mine._replace(version=version, status=status), "keep"
        # New to us, or handed out again after we stopped or finished it.
        return ChannelState(cid, version, status, Progress.NEW), "open"
    if status is ChannelStatus.CLOSING:
        if progress is Progress.READING:
            # Answer only once the reader has stopped and flushed its
            # checkpoint, so the next owner resumes from our last record.
            return mine._replace(version=version, status=status), "close"
        if progress is Progress.FINISHED:
            return ChannelState(cid, version + 1, ChannelStatus.TERMINATED, progress), None
        # Never read (or reader already gone): nothing to flush.
        action = "close" if progress is Progress.NEW else None
        return ChannelState(cid, version + 1, ChannelStatus.CLOSE, Progress.STOPPED), action
    # CLOSE or TERMINATED: the service has taken the channel back.
    if progress in _ACTIVE:
        return ChannelState(cid, version, status, Progress.STOPPED), "close"
    if progress is None:
        progress = Progress.FINISHED if status is ChannelStatus.TERMINATED else Progress.STOPPED
    return ChannelState(cid, version, status, progress), None


def mark_reading(local: Mapping[str, ChannelState], channel_id: str) -> Tuple[Dict[str, ChannelState], bool]:
    """Record that the checkpoint of a NEW channel was fetched and reading starts.

    Returns:
      ``(table, ok)``. ``ok`` is False when the channel is no longer NEW and
      OPEN (closed, revoked or dropped meanwhile): the caller must not read it.
    """
    mine = local.get(channel_id)
    if mine is None or mine.progress is not Progress.NEW or mine.status is not ChannelStatus.OPEN:
        return dict(local), False
    table = dict(local)
    table[channel_id] = mine._replace(progress=Progress.READING)
    return table, True


def mark_finished(local: Mapping[str, ChannelState], channel_id: str) -> Dict[str, ChannelState]:
    """Record that a channel's reader reached the ``finished`` token.

    The next heartbeat reports TERMINATED v+1. A channel that is unknown or
    no longer being read is left as it is (the event is late).
    """
    return _end(local, channel_id, ChannelStatus.TERMINATED, Progress.FINISHED)


def mark_stopped(local: Mapping[str, ChannelState], channel_id: str) -> Dict[str, ChannelState]:
    """Record that a channel's reader stopped, failed or could not open.

    The next heartbeat reports CLOSE v+1. A channel that is unknown or no
    longer being read is left as it is (the event is late).
    """
    return _end(local, channel_id, ChannelStatus.CLOSE, Progress.STOPPED)


def _end(local, channel_id, status, progress) -> Dict[str, ChannelState]:
    table = dict(local)
    mine = local.get(channel_id)
    if mine is not None and mine.active:
        table[channel_id] = ChannelState(channel_id, mine.version + 1, status, progress)
    return table


def heartbeat_channels(local: Mapping[str, ChannelState]) -> List[Channel]:
    """The channel list of the next HeartbeatRequest, sorted by id."""
    return [local[cid].as_channel() for cid in sorted(local)]
