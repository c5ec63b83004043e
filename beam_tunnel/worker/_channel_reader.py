"""One owned channel: GetCheckpoint, then a process loop fed by a fetch loop.

The process loop hands each batch to the user's processor, tracks the last
acknowledged position and commits it with the checkpoint sequence rule
(:mod:`beam_tunnel.worker.checkpoints`): every ``checkpoint_interval_s``,
when the channel finishes (the ``finished`` token, before TERMINATED is
reported) and when the reader is stopped gracefully. It tells its owner (the
worker's current ``_Session``) two things through narrow methods: that the
channel is ready to read (``_reader_ready``, which may refuse), and how it ended
(``_reader_exited``).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Callable, Optional, Sequence, Tuple

from beam_tunnel.client.models import FINISHED_TOKEN
from beam_tunnel.errors import (
    AuthFailedError,
    PermissionDeniedError,
    ResourceGoneError,
    SequenceNumberMismatchError,
    ServerUnavailableError,
    TransportError,
    TunnelError,
    TunnelExpiredError,
)
from beam_tunnel.worker._batch_queue import CLOSED, EMPTY, _BatchQueue
from beam_tunnel.worker._fetcher import _FetchFailed, _RecordFetcher
from beam_tunnel.worker._limit import _ParallelismLimit
from beam_tunnel.worker.checkpoints import CheckpointLedger, CheckpointRequest
from beam_tunnel.worker.config import WorkerConfig
from beam_tunnel.worker.processor import ChannelContext, ChannelProcessor

if TYPE_CHECKING:  # pragma: no cover
    from beam_tunnel.client.tunnel_client import TunnelClient
    from beam_tunnel.worker._session import _Session

_LOGGER = logging.getLogger(__name__)

_CHANNEL_FATAL_ERRORS = (TunnelExpiredError, PermissionDeniedError, AuthFailedError)
"""Errors that no other owner of the channel could get past either: the
worker stops. Every other error hands the channel back (CLOSE v+1)."""

_NO_FLUSH_ERRORS = (ResourceGoneError,) + _CHANNEL_FATAL_ERRORS
"""After these a final checkpoint cannot succeed, so none is tried."""


class _ChannelReader:
    """Reads one channel on a named daemon thread (plus its fetch thread)."""

    def __init__(
        self,
        owner: "_Session",
        client: "TunnelClient",
        tunnel_id: str,
        client_id: str,
        channel_id: str,
        processor: ChannelProcessor,
        config: WorkerConfig,
        limit: _ParallelismLimit,
        predecessors: Sequence["_ChannelReader"] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.channel_id = channel_id
        self._owner = owner
        self._client = client
        self._tunnel_id = tunnel_id
        self._client_id = client_id
        self._processor = processor
        self._interval_s = config.checkpoint_interval_s
        self._limit = limit
        self._predecessors = list(predecessors)
        self._clock = clock
        self._queue = _BatchQueue(config.max_queued_batches)
        self._fetcher = _RecordFetcher(
            client, tunnel_id, client_id, channel_id, self._queue, config.poll_backoff()
        )
        self._operational_lock = threading.Lock()
        self._stop_event = threading.Event()
        self._flush_on_stop = True
        self._thread: Optional[threading.Thread] = None
        self._ledger: Optional[CheckpointLedger] = None
        self._acked: Optional[Tuple[str, int]] = None  # (token, position) after the last acknowledged batch

    def __repr__(self) -> str:
        return f"_ChannelReader({self.channel_id!r}, client_id={self._client_id!r})"

    # ---- lifecycle (pubsub template) ----------------------------------------

    def start(self) -> None:
        with self._operational_lock:
            if self._thread is not None:
                raise ValueError(f"reader of channel {self.channel_id} is already running")
            self._thread = threading.Thread(
                name=f"TunnelWorker-read-{self.channel_id}", target=self._run, daemon=True
            )
            self._thread.start()

    def signal_stop(self, checkpoint: bool = True) -> None:
        """Ask the reader to stop after the batch in hand; returns at once.

        Args:
          checkpoint: commit the last acknowledged position before exiting.
            False (a simulated crash) wins over an earlier True.
        """
        with self._operational_lock:
            if not checkpoint:
                self._flush_on_stop = False
        self._stop_event.set()
        self._fetcher.signal_stop()
        self._limit.wake()

    def join(self) -> None:
        """Wait for the reader to exit (at once on its own thread)."""
        with self._operational_lock:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def owns_current_thread(self) -> bool:
        """True when called from this reader's own thread (a callback)."""
        return self._thread is threading.current_thread()

    # ---- the process loop -----------------------------------------------------

    def _run(self) -> None:
        finished, error, opened = False, None, False
        try:
            opened = self._open()
            if opened:
                finished = self._process_until_done()
        except Exception as err:  # reported to the owner, which decides
            error = err
        # The read-ahead is thrown away: stop it now, but join it only after
        # the final checkpoint, so a ReadRecords in flight (up to the read
        # timeout and retries) does not hold that up.
        self._fetcher.signal_stop()
        try:
            if opened and not finished and self._flush_on_stop and not isinstance(error, _NO_FLUSH_ERRORS):
                self._final_checkpoint()
            if opened:
                self._call_shutdown_hook()
        finally:
            self._fetcher.stop()
            self._owner._reader_exited(self, finished, error)

    def _open(self) -> bool:
        # An earlier reader of this channel may still be inside a callback;
        # per-channel order needs it gone first.
        for predecessor in self._predecessors:
            predecessor.join()
        self._predecessors = []
        if self._stop_event.is_set():
            return False
        stored = self._client.get_checkpoint(self._tunnel_id, self._client_id, self.channel_id)
        self._ledger = CheckpointLedger.from_stored(stored.checkpoint, stored.sequence_number)
        if self._stop_event.is_set() or not self._owner._reader_ready(self):
            return False
        _LOGGER.info(
            "[read] channel %s opened at sequence %d%s",
            self.channel_id,
            stored.sequence_number,
            " (already finished)" if stored.checkpoint == FINISHED_TOKEN else "",
        )
        return True

    def _process_until_done(self) -> bool:
        """True when the channel finished; False when asked to stop."""
        if self._ledger.token == FINISHED_TOKEN:
            return True
        self._fetcher.start(self._ledger.token)
        position = 0
        next_commit = self._clock() + self._interval_s
        while True:
            timeout = max(0.0, next_commit - self._clock()) if self._acked else None
            item = self._queue.get(timeout)
            if item is CLOSED:
                return False
            if item is EMPTY:
                self._periodic_checkpoint()
                next_commit = self._clock() + self._interval_s
                continue
            if isinstance(item, _FetchFailed):
                raise item.error
            token, result = item
            if result.records:
                if not self._limit.acquire(self._stop_event):
                    return False
                try:
                    context = ChannelContext(self._tunnel_id, self._client_id, self.channel_id, token, result.next_token)
                    self._processor.process(list(result.records), context)
                finally:
                    self._limit.release()
            position += 1
            self._acked = (result.next_token, position)
            if result.finished:
                self._commit(required=True)
                _LOGGER.info("[read] channel %s finished", self.channel_id)
                return True
            if self._clock() >= next_commit:
                self._periodic_checkpoint()
                next_commit = self._clock() + self._interval_s

    # ---- checkpoints ------------------------------------------------------------

    def _commit(self, required: bool) -> None:
        """Commit the last acknowledged position, if it is new.

        Args:
          required: try up to three times and raise if it still fails (the
            ``finished`` and final checkpoints); otherwise one try, a
            sequence conflict is only logged and the next periodic commit
            uses the new sequence.
        """
        if self._acked is None:
            return
        # The SDKs never retry a refused checkpoint at once: the next periodic
        # one carries a newer token anyway. The finished and final checkpoints
        # have no next one, so they retry with the service's sequence. That
        # cannot overwrite a newer owner's progress as long as the service
        # refuses checkpoints from a client that no longer owns the channel
        # (OTSResourceGone, raised at once), as the emulator does.
        attempts = 3 if required else 1
        for attempt in range(1, attempts + 1):
            request = self._ledger.request(*self._acked)
            if request is None:
                return
            failure = self._try_commit(request)
            if failure is None:
                return
            if attempt == attempts and (required or not isinstance(failure, SequenceNumberMismatchError)):
                raise failure

    def _try_commit(self, request: CheckpointRequest) -> Optional[TunnelError]:
        """One Checkpoint call. None once ``request`` is known to be stored;
        otherwise the error that left it refused or unknown."""
        try:
            self._client.checkpoint(
                self._tunnel_id, self._client_id, self.channel_id, request.token, request.sequence_number
            )
        except (SequenceNumberMismatchError, ServerUnavailableError, TransportError) as err:
            try:
                return None if self._landed_or_resync(request) else err
            except (ServerUnavailableError, TransportError) as lookup_err:
                # Still unknown; a retry of the same request is safe: if
                # the first landed, the retry's mismatch reveals it.
                return lookup_err
        self._ledger = self._ledger.committed(request)
        _LOGGER.debug("[checkpoint] channel %s seq=%d", self.channel_id, request.sequence_number)
        return None

    def _landed_or_resync(self, request: CheckpointRequest) -> bool:
        """After a refused, failed or unanswered Checkpoint, read what is stored.

        Checkpoint is not idempotent, so a lost answer leaves it unknown
        whether the commit landed; the stored checkpoint says. True if it
        did; otherwise the ledger takes the service's sequence number.
        """
        stored = self._client.get_checkpoint(self._tunnel_id, self._client_id, self.channel_id)
        if (stored.checkpoint, stored.sequence_number) == (request.token, request.sequence_number):
            self._ledger = self._ledger.committed(request)
            return True
        _LOGGER.info(
            "[checkpoint] channel %s: sequence %d not stored, service has %d; resynced",
            self.channel_id,
            request.sequence_number,
            stored.sequence_number,
        )
        self._ledger = self._ledger.resynced(stored.checkpoint, stored.sequence_number)
        return False

    def _periodic_checkpoint(self) -> None:
        # A failure here costs nothing but duplicates if we crash before the
        # next attempt, so only errors that end the channel are raised.
        try:
            self._commit(required=False)
        except _NO_FLUSH_ERRORS:
            raise
        except TunnelError as err:
            _LOGGER.warning("[checkpoint] channel %s: %s; retrying in %s s", self.channel_id, err, self._interval_s)

    def _final_checkpoint(self) -> None:
        try:
            self._commit(required=True)
        except TunnelError as err:
            _LOGGER.warning(
                "[checkpoint] channel %s: final checkpoint failed (%s); records after the "
                "previous checkpoint will be delivered again",
                self.channel_id,
                err,
            )

    def _call_shutdown_hook(self) -> None:
        shutdown = getattr(self._processor, "shutdown", None)
        if shutdown is None:
            return
        try:
            shutdown(ChannelContext(self._tunnel_id, self._client_id, self.channel_id))
        except Exception:  # user code: log, never let it break the worker
            _LOGGER.exception("[read] channel %s: processor shutdown() raised", self.channel_id)
