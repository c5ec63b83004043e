"""A reader slot as an SDF restriction: one tunnel client and its channels.

A restriction is not a range of a channel but a *reader slot*: the state of
one tunnel client (ConnectTunnel) together with the channels the service has
assigned to it. The service, not the runner, decides which client reads which
channel (design.md §3), so the slot carries everything a later ``process()``
call on any worker needs to carry on: the client id, the heartbeat times, and
for each owned channel its status as the service knows it plus the token to
read next.

Everything here is an immutable value with a small deterministic coder
(compact JSON, fields in a fixed order), so a residual can be persisted by
the runner and resumed anywhere. The tracker accepts only checkpoints
(``try_split(0)``): a token cursor cannot be split by fraction, and two
readers of one channel would race on its checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Dict, Mapping, Optional, Tuple

from apache_beam.coders import Coder
from apache_beam.io.iobase import RestrictionProgress, RestrictionTracker

from beam_tunnel.client.models import ChannelStatus
from beam_tunnel.worker.channels import ChannelState, Progress

_POSITION_BATCH_BITS = 24
"""Low bits of a commit position that count batches within one ownership;
the high bits are the ownership's start in ms, so a channel that moves
between slots of one process keeps strictly growing positions."""


@dataclasses.dataclass(frozen=True)
class ChannelCursor:
    """One channel the slot owns (or owes an answer for).

    Attributes:
      state: the channel as the next heartbeat reports it (id, version,
        status) and this slot's progress with it.
      token: the token to read next; None until GetCheckpoint was called.
      opened_ms: when this slot took the channel (wall clock, ms); the high
        part of every commit position of this ownership.
      batches: batches claimed since the channel was opened.
      stopped: a bounded read reached its stop condition on this channel; it
        is not read any more but kept (answering the service) until the slot
        ends.
      closing_since: wall-clock seconds when the service asked for the channel
        back (CLOSING), or None; the answer waits for the last emitted batch
        to be committed, for a bounded time.
      owes_answer: the state changed locally (CLOSE or TERMINATED v+1) and
        the next heartbeat, due at once, reports it.
    """

    state: ChannelState
    token: Optional[str] = None
    opened_ms: int = 0
    batches: int = 0
    stopped: bool = False
    closing_since: Optional[float] = None
    owes_answer: bool = False

    @property
    def channel_id(self) -> str:
        return self.state.channel_id

    @property
    def position(self) -> int:
        """A number that grows with every claimed batch of this channel."""
        return (self.opened_ms << _POSITION_BATCH_BITS) + min(self.batches, (1 << _POSITION_BATCH_BITS) - 1)

    @property
    def readable(self) -> bool:
        """True when the next call should read this channel."""
        state = self.state
        return (
            self.token is not None
            and not self.stopped
            and state.progress is Progress.READING
            and state.status is ChannelStatus.OPEN
        )


@dataclasses.dataclass(frozen=True)
class SlotRestriction:
    """One reader slot: a tunnel client and the channels it holds.

    Attributes:
      tunnel_id: the tunnel.
      slot: this slot's index (0..K-1); names the client in logs and tags.
      client_id: the tunnel client id, or "" before the slot connected (or
        after it lost its lease and must connect again).
      last_heartbeat: wall-clock seconds of the last heartbeat sent, or None.
      last_answered: wall-clock seconds of the last heartbeat that was
        answered (or of the connect); the lease is lost when this is older
        than the heartbeat timeout.
      channels: the owned channels, sorted by id.
      waiting_since: wall-clock seconds since when a bounded read has
        nothing left of its own and waits for other clients' channels.
      done: a bounded read finished; nothing is left to do.
    """

    tunnel_id: str
    slot: int
    client_id: str = ""
    last_heartbeat: Optional[float] = None
    last_answered: Optional[float] = None
    channels: Tuple[ChannelCursor, ...] = ()
    waiting_since: Optional[float] = None
    done: bool = False

    def cursor_map(self) -> Dict[str, ChannelCursor]:
        return {cursor.channel_id: cursor for cursor in self.channels}

    def with_cursors(self, cursors: Mapping[str, ChannelCursor]) -> "SlotRestriction":
        return dataclasses.replace(self, channels=tuple(cursors[cid] for cid in sorted(cursors)))

    def __str__(self) -> str:
        return f"slot {self.slot} (client {self.client_id or '-'}, {len(self.channels)} channels)"


class SlotRestrictionCoder(Coder):
    """Compact JSON: one array per slot, one array per channel, fixed order.

    Deterministic: the same restriction always encodes to the same bytes
    (channels are kept sorted; floats are written by ``repr``).
    """

    def encode(self, value: SlotRestriction) -> bytes:
        channels = [
            [
                c.state.channel_id,
                c.state.version,
                c.state.status.value,
                c.state.progress.value,
                c.token,
                c.opened_ms,
                c.batches,
                c.stopped,
                c.closing_since,
                c.owes_answer,
            ]
            for c in value.channels
        ]
        body = [
            1,  # format version
            value.tunnel_id,
            value.slot,
            value.client_id,
            value.last_heartbeat,
            value.last_answered,
            value.waiting_since,
            value.done,
            channels,
        ]
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def decode(self, encoded: bytes) -> SlotRestriction:
        try:
            body = json.loads(encoded.decode("utf-8"))
            (version, tunnel_id, slot, client_id, last_heartbeat, last_answered, waiting_since, done,
             channels) = body
            if version != 1:
                raise ValueError(f"unknown format version {version!r}")
            cursors = tuple(
                ChannelCursor(
                    state=ChannelState(cid, cversion, ChannelStatus(status), Progress(progress)),
                    token=token,
                    opened_ms=opened_ms,
                    batches=batches,
                    stopped=stopped,
                    closing_since=closing_since,
                    owes_answer=owes_answer,
                )
                for (cid, cversion, status, progress, token, opened_ms, batches, stopped, closing_since,
                     owes_answer) in channels
            )
        except (ValueError, TypeError, UnicodeDecodeError) as error:
            raise ValueError(
                f"not an encoded reader-slot restriction ({len(encoded)} bytes: {encoded[:80]!r}): {error}"
            ) from None
        return SlotRestriction(tunnel_id, slot, client_id, last_heartbeat, last_answered, cursors, waiting_since, done)

    def is_deterministic(self) -> bool:
        return True

    def __eq__(self, other) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))


class SlotTracker(RestrictionTracker):
    """Claims whole new slot states; splits only at the current state.

    ``try_claim(state)`` replaces the current state (the caller computed it
    from the previous one), unless a checkpoint was taken, after which it
    returns False and ``process()`` must return without emitting more.
    ``try_split(0)`` gives a done primary and the current state as residual;
    any other fraction is refused.
    """

    def __init__(self, restriction: SlotRestriction, bounded: bool) -> None:
        self._restriction = restriction
        self._bounded = bounded
        self._checkpointed = False

    def current_restriction(self) -> SlotRestriction:
        return self._restriction

    def try_claim(self, state: SlotRestriction) -> bool:
        if self._checkpointed or self._restriction.done:
            return False
        if state.tunnel_id != self._restriction.tunnel_id or state.slot != self._restriction.slot:
            raise ValueError(f"cannot claim {state} in the restriction of {self._restriction}")
        self._restriction = state
        return True

    def try_split(self, fraction_of_remainder):
        if fraction_of_remainder != 0 or self._checkpointed or self._restriction.done:
            return None
        self._checkpointed = True
        residual = self._restriction
        primary = dataclasses.replace(residual, done=True)
        self._restriction = primary
        return primary, residual

    def check_done(self) -> None:
        if not (self._checkpointed or self._restriction.done):
            raise ValueError(
                f"{self._restriction} of tunnel {self._restriction.tunnel_id} returned from process() "
                "without finishing or checkpointing"
            )

    def current_progress(self) -> RestrictionProgress:
        # A slot's remaining work is unknown (the stream may go on): report a
        # fixed fraction. Beam combines completed/remaining work with the
        # bytes output so far when the runner asks for a split, and Prism
        # does ask (when a progress tick shows no output); a fixed fraction
        # keeps that arithmetic finite.
        return RestrictionProgress(fraction=0.0)

    def is_bounded(self) -> bool:
        return self._bounded
