"""The data-plane calls: GetCheckpoint, Checkpoint and ReadRecords.

They touch one channel each and never rebalance, so they read a snapshot
instead of taking the write lock (ReadRecords must serve tens of thousands
of records a second); only a checkpoint, and the read that finishes a
channel, write.

Rules (strict mode):

* the client must hold a live lease on the tunnel (else OTSResourceGone);
* ReadRecords and Checkpoint need the client to own the channel, OPEN or
  CLOSING (a CLOSING owner may still flush its checkpoint) - else
  OTSResourceGone: the channel moved, which the SDKs handle by closing it;
* GetCheckpoint is open to any live client of the tunnel;
* a checkpoint's sequence number must be stored + 1 (stored starts at 0),
  else OTSSequenceNumberNotMatch; its token must parse and belong to the
  channel (or be ``finished``), else OTSParameterInvalid;
* checkpointing ``finished`` ends the channel's data: it becomes TERMINATED
  (version + 1) at once, so its successors may open; the owner hears
  TERMINATED v+1 and acknowledges it. A TERMINATED channel accepts only
  ``finished`` again (late commits of the same end), from any live client.
* shutdown grace: the official Go worker flushes its last checkpoints
  while (not before) it calls ShutdownTunnel. So a client that shut down
  may still Checkpoint the channels it held at shutdown - fenced by
  sequence number as usual - for :data:`SHUTDOWN_GRACE_S` seconds after
  its shutdown, and only while the channel has not been assigned to
  another client (``released_by`` is cleared on assignment; the new owner
  reads the checkpoint with GetCheckpoint after that, so it never misses
  a late one). Everything else from a shut-down client is OTSResourceGone.

``permissive`` mode (EMR's Spark source, tunnel-protocol.md §4.4) skips the
lease and ownership checks and accepts any sequence number up to stored + 1
(the stored one never goes down).
"""

from __future__ import annotations

import threading
from typing import Callable, Dict, Optional, Tuple

from beam_tunnel.protocol.tokens import FINISHED, TokenError

from .. import errors
from . import tunnel_errors
from . import tunnel_store as store
from .channels import SHUTDOWN
from .reads import Reader, ReadResult, parse_channel_token
from .tunnel_store import BASE, CLOSING, OPEN, TERMINATED, ChannelRecord, ClientRecord, TunnelRecord

__all__ = ["DataPlane", "SHUTDOWN_GRACE_S"]

SHUTDOWN_GRACE_S = 60
"""How long after ShutdownTunnel a client's final checkpoints are accepted."""


class DataPlane:
    """Serves the per-channel calls of one emulator.

    Args:
      storage: the shared Storage.
      now_us: the clock.
      reader: the :class:`~.reads.Reader`.
      permissive: see the module doc.
      pending_since: ``pending_since(client_id)`` -> arrival µs of a
        heartbeat of that client still waiting for an answer, or None.
    """

    def __init__(self, storage, now_us, reader: Reader, permissive: bool,
                 pending_since: Callable[[str], Optional[int]] = lambda client_id: None) -> None:
        self._storage = storage
        self._now_us = now_us
        self._reader = reader
        self._permissive = permissive
        self._pending_since = pending_since
        # Last ReadRecords per (tunnel, channel): (time µs, next token). In
        # memory only: it feeds AccessTime and GetRpoByOffset.
        self._progress: Dict[Tuple[str, str], Tuple[int, str]] = {}
        self._progress_lock = threading.Lock()

    def progress(self, tunnel_id: str) -> Dict[str, Tuple[int, str]]:
        """channel id -> (last read µs, next token) for one tunnel."""
        with self._progress_lock:
            return {key[1]: value for key, value in self._progress.items() if key[0] == tunnel_id}

    def forget(self, tunnel_id: str) -> None:
        """Drop the read progress of a deleted tunnel."""
        with self._progress_lock:
            for key in [k for k in self._progress if k[0] == tunnel_id]:
                del self._progress[key]

    def _load(self, tunnel_id: str, client_id: str, channel_id: str,
              shut_down_ok: bool = False) -> Tuple[TunnelRecord, ChannelRecord]:
        """The tunnel and channel, after the lease check; ``shut_down_ok``
        lets a client within its shutdown grace through (checkpoints)."""
        with self._storage.read() as conn:
            tunnel = store.load_tunnel(conn, tunnel_id)
            if tunnel is None:
                raise tunnel_errors.tunnel_missing(tunnel_id)
            channel = store.load_channel(conn, tunnel_id, channel_id)
            client = store.load_client(conn, client_id)
        if tunnel.expired:
            raise tunnel_errors.tunnel_expired(tunnel_id)
        now_us = self._now_us()
        if not self._permissive and not (shut_down_ok and self._in_shutdown_grace(tunnel_id, client, now_us)):
            tunnel_errors.require_live_client(tunnel_id, client_id, client, now_us, self._pending_since(client_id))
        if channel is None:
            raise tunnel_errors.channel_missing(tunnel_id, channel_id)
        return tunnel, channel

    @staticmethod
    def _in_shutdown_grace(tunnel_id: str, client: Optional[ClientRecord], now_us: int) -> bool:
        return (
            client is not None and client.tunnel_id == tunnel_id and client.gone_reason == SHUTDOWN
            and client.gone_us is not None and now_us - client.gone_us <= SHUTDOWN_GRACE_S * 1_000_000
        )

    def _require_owner(self, channel: ChannelRecord, client_id: str, released_ok: bool = False) -> None:
        if self._permissive:
            return
        if released_ok and channel.owner is None and channel.released_by == client_id:
            return  # its final checkpoint after shutdown (the grace was checked by _load)
        if channel.owner != client_id or channel.status not in (OPEN, CLOSING):
            raise tunnel_errors.resource_gone(
                f"channel {channel.channel_id!r} is not held by client {client_id!r} "
                f"(status {channel.status}, version {channel.version})"
            )

    def get_checkpoint(self, tunnel_id: str, client_id: str, channel_id: str) -> Tuple[str, int]:
        """``(checkpoint, sequence_number)``; a never checkpointed channel
        gives its initial token and 0."""
        _, channel = self._load(tunnel_id, client_id, channel_id)
        return channel.checkpoint, channel.sequence

    def checkpoint(self, tunnel_id: str, client_id: str, channel_id: str, token: str, sequence: int) -> None:
        """Store ``token`` as the channel's checkpoint (rules in the module doc)."""
        # Lease and token are checked on a snapshot, so a bad checkpoint never
        # takes the write lock; the channel is read again under the lock
        # because a heartbeat may have moved or finished it meanwhile.
        tunnel, channel = self._load(tunnel_id, client_id, channel_id, shut_down_ok=True)
        count = _token_count(tunnel, channel, token)
        with self._storage.transaction() as conn:
            channel = store.load_channel(conn, tunnel_id, channel_id)
            if channel is None:  # deleted meanwhile
                raise tunnel_errors.channel_missing(tunnel_id, channel_id)
            finishing = token == FINISHED
            if channel.status != TERMINATED:
                self._require_owner(channel, client_id, released_ok=True)
            elif not finishing:
                raise tunnel_errors.resource_gone(
                    f"channel {channel_id!r} is TERMINATED; only {FINISHED!r} may still be checkpointed"
                )
            expected = channel.sequence + 1
            if sequence != expected and not (self._permissive and 0 <= sequence < expected):
                raise tunnel_errors.sequence_mismatch(channel_id, expected, sequence)
            status, version = channel.status, channel.version
            if finishing and status != TERMINATED:
                # The data is done: successors may open. The owner still
                # hears TERMINATED v+1, which is what it reports anyway.
                status, version = TERMINATED, version + 1
            conn.execute(
                "UPDATE tunnel_channels SET checkpoint = ?, sequence = ?, count = ?, status = ?, version = ? "
                "WHERE tunnel_id = ? AND channel_id = ?",
                (token, max(sequence, channel.sequence), channel.count if count is None else count,
                 status, version, tunnel_id, channel_id),
            )
        if finishing and channel.kind == BASE:
            # After the commit, outside the tunnel lock (table lock first, always).
            self._reader.forget_base_range(tunnel, channel)

    def read_records(self, tunnel_id: str, client_id: str, channel_id: str, token: str) -> ReadResult:
        """The records after ``token`` (see :mod:`.reads`)."""
        tunnel, channel = self._load(tunnel_id, client_id, channel_id)
        self._require_owner(channel, client_id)
        result = self._reader.read(tunnel, channel, token)
        with self._progress_lock:
            self._progress[(tunnel_id, channel_id)] = (self._now_us(), result.next_token)
        if result.next_token == FINISHED and token != FINISHED and result.total_count > channel.count:
            # The count would be lost with the "finished" checkpoint that
            # follows; this happens once per channel.
            with self._storage.transaction() as conn:
                conn.execute(
                    "UPDATE tunnel_channels SET count = MAX(count, ?) WHERE tunnel_id = ? AND channel_id = ?",
                    (result.total_count, tunnel_id, channel_id),
                )
        return result


def _token_count(tunnel: TunnelRecord, channel: ChannelRecord, token: str) -> Optional[int]:
    """The record count a checkpoint token carries, after checking that it
    fits the channel; None for ``finished``.

    Raises:
      ServiceError: OTSParameterInvalid naming the channel and the problem.
    """
    if token == FINISHED:
        return None
    try:
        return parse_channel_token(tunnel, channel, token).total_count
    except TokenError as err:
        raise errors.parameter_invalid(
            f"checkpoint for channel {channel.channel_id!r} is not a valid token: {err.message}"
        ) from None
