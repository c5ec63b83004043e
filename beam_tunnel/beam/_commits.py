"""Checkpoint commits made from bundle-finalization callbacks.

A slot never checkpoints inside ``process()``: the bundle may still fail and
be retried from the previous restriction. Each call instead registers one
callback with the bundle finalizer; the runner calls it after it has durably
committed the bundle's output (and the residual restriction). The callback
then stores, per channel, the token after the last batch the bundle emitted.

Callbacks may run late, more than once, or never (best effort on Dataflow,
only after a checkpoint on Flink), so every commit is:

* by absolute position: each commit carries the slot's position of its token
  (it grows with every batch, across owners); a commit at or behind the last
  one this process stored for the channel is dropped as stale;
* fenced by sequence number: the service takes ``stored + 1``; on
  OTSSequenceNumberNotMatch the stored value is re-read and the commit tried
  once more with it (the SDKs' rule); a channel that moved to another client
  refuses the commit, which is then dropped (the new owner re-reads from the
  last stored checkpoint: duplicates, never loss).

The ledger is per worker process (callbacks of one slot run where its
bundles ran); after a move to another process the first commit re-reads the
stored sequence number.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Dict, NamedTuple, Sequence, Tuple

from apache_beam.metrics import Metrics

from beam_tunnel.client.tunnel_client import TunnelClient
from beam_tunnel.errors import ResourceGoneError, SequenceNumberMismatchError, TunnelError
from beam_tunnel.worker.checkpoints import CheckpointLedger, CheckpointRequest

_LOGGER = logging.getLogger(__name__)

_METRICS_NAMESPACE = "ReadFromTunnel"


class Commit(NamedTuple):
    """One channel's checkpoint to store after a bundle.

    Attributes:
      channel_id: the channel.
      token: the token after the bundle's last batch of the channel.
      position: the slot's position of that token.
    """

    channel_id: str
    token: str
    position: int


class _CommitBook:
    """Per-process ledgers: what was stored for each channel, and its sequence."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ledgers: Dict[Tuple[str, str], CheckpointLedger] = {}
        self._channel_locks: Dict[Tuple[str, str], threading.Lock] = {}
        self._unreported: Dict[str, int] = {}

    def _count(self, name: str) -> None:
        with self._lock:
            self._unreported[name] = self._unreported.get(name, 0) + 1

    def drain_counts(self) -> Dict[str, int]:
        """Commit outcomes since the last call. Finalization callbacks run
        outside any bundle, where Beam metrics are not collected, so the next
        ``process()`` call reports them."""
        with self._lock:
            counts, self._unreported = self._unreported, {}
        return counts

    def committed_position(self, tunnel_id: str, channel_id: str) -> int:
        """The highest position stored for the channel by this process (0 if none)."""
        with self._lock:
            ledger = self._ledgers.get((tunnel_id, channel_id))
        return 0 if ledger is None else ledger.position

    def _channel_lock(self, key: Tuple[str, str]) -> threading.Lock:
        with self._lock:
            return self._channel_locks.setdefault(key, threading.Lock())

    def commit(self, client: TunnelClient, tunnel_id: str, client_id: str, commit: Commit) -> bool:
        """Store one checkpoint; True when the service accepted it.

        Raises nothing the caller must handle: failures are logged, counted
        and dropped (the next commit carries a newer token anyway).
        """
        key = (tunnel_id, commit.channel_id)
        with self._channel_lock(key):
            with self._lock:
                ledger = self._ledgers.get(key)
            if ledger is not None and commit.position <= ledger.position:
                return False  # stale: a newer commit was already stored
            try:
                if ledger is None:
                    ledger = self._stored(client, tunnel_id, client_id, commit.channel_id, position=0)
                request = ledger.request(commit.token, commit.position)
                if request is None:
                    return False
                try:
                    self._send(client, tunnel_id, client_id, commit.channel_id, request)
                except SequenceNumberMismatchError:
                    ledger = self._stored(client, tunnel_id, client_id, commit.channel_id, ledger.position)
                    request = ledger.request(commit.token, commit.position)
                    if request is None:
                        return False
                    self._send(client, tunnel_id, client_id, commit.channel_id, request)
            except ResourceGoneError as error:
                _LOGGER.info(
                    "[commit] channel %s of tunnel %s is no longer held by client %s; commit at position %d "
                    "dropped (%s)", commit.channel_id, tunnel_id, client_id, commit.position, error.code
                )
                self._count("commits_dropped")
                return False
            except TunnelError as error:
                _LOGGER.warning(
                    "[commit] checkpoint of channel %s of tunnel %s failed: %s", commit.channel_id, tunnel_id, error
                )
                self._count("commits_failed")
                return False
            with self._lock:
                self._ledgers[key] = ledger.committed(request)
            self._count("commits")
            return True

    @staticmethod
    def _stored(client, tunnel_id, client_id, channel_id, position: int) -> CheckpointLedger:
        stored = client.get_checkpoint(tunnel_id, client_id, channel_id)
        ledger = CheckpointLedger.from_stored(stored.checkpoint, stored.sequence_number)
        return CheckpointLedger(ledger.token, ledger.next_sequence, position)

    @staticmethod
    def _send(client, tunnel_id, client_id, channel_id, request: CheckpointRequest) -> None:
        client.checkpoint(tunnel_id, client_id, channel_id, request.token, request.sequence_number)


class Straddle(NamedTuple):
    """A batch that ``stop_at`` cut: its first ``emitted`` records were output.

    The channel's checkpoint stays *before* the batch (a token cannot point
    inside one), so a slot of this process that takes the channel over reads
    the same batch again; it skips the records already emitted instead of
    repeating them. Recorded only once the bundle that emitted them is
    committed.
    """

    channel_id: str
    token: str
    emitted: int


_STRADDLES: Dict[Tuple[str, str, str], int] = {}
_STRADDLES_LOCK = threading.Lock()


def straddle_emitted(tunnel_id: str, channel_id: str, token: str) -> int:
    """How many records of the batch read from ``token`` were already emitted."""
    with _STRADDLES_LOCK:
        return _STRADDLES.get((tunnel_id, channel_id, token), 0)


def _record_straddle(tunnel_id: str, straddle: Straddle) -> None:
    key = (tunnel_id, straddle.channel_id, straddle.token)
    with _STRADDLES_LOCK:
        _STRADDLES[key] = max(_STRADDLES.get(key, 0), straddle.emitted)


COMMIT_BOOK = _CommitBook()
"""The process's ledger; module level because finalization callbacks of one
slot must see what earlier callbacks in the process stored."""


def report_commit_metrics() -> None:
    """Move the commit outcomes counted in finalization into Beam counters."""
    for name, count in COMMIT_BOOK.drain_counts().items():
        Metrics.counter(_METRICS_NAMESPACE, name).inc(count)


class CommitOnFinalize:
    """The callable registered with the bundle finalizer of one ``process()`` call.

    Runs at most once (a runner may call it again after a retry). When the
    slot ended (``shutdown`` True) it leaves the tunnel after committing, so
    the service does not wait for the lease to time out.
    """

    def __init__(
        self,
        client_factory: Callable[[], TunnelClient],
        tunnel_id: str,
        client_id: str,
        commits: Sequence[Commit],
        shutdown: bool = False,
        straddles: Sequence[Straddle] = (),
    ) -> None:
        self._client_factory = client_factory
        self._tunnel_id = tunnel_id
        self._client_id = client_id
        self._commits = tuple(commits)
        self._shutdown = shutdown
        self._straddles = tuple(straddles)
        self._lock = threading.Lock()
        self._ran = False

    def __call__(self) -> None:
        with self._lock:
            if self._ran:
                return
            self._ran = True
        for straddle in self._straddles:
            _record_straddle(self._tunnel_id, straddle)
        if not self._commits and not self._shutdown:
            return
        try:
            client = self._client_factory()
            for commit in self._commits:
                COMMIT_BOOK.commit(client, self._tunnel_id, self._client_id, commit)
            if self._shutdown:
                client.shutdown(self._tunnel_id, self._client_id)
        except Exception:  # pylint: disable=broad-except
            # Finalization is best effort; a failure costs duplicates after a
            # restart, never data, and must not fail the (committed) bundle.
            _LOGGER.warning("[commit] finalization of client %s failed", self._client_id, exc_info=True)

    def __repr__(self) -> str:
        return f"CommitOnFinalize({self._client_id}, {len(self._commits)} channels, shutdown={self._shutdown})"


def commit_position(tunnel_id: str, channel_id: str) -> int:
    """Shortcut for the slot: the last position this process stored."""
    return COMMIT_BOOK.committed_position(tunnel_id, channel_id)

