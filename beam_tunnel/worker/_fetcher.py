"""The fetch loop of one channel: ReadRecords into a bounded queue.

It runs ahead of the channel's callback by at most the queue's capacity
and then waits (back-pressure). While the service says there is more it
reads again at once; on an idle stream channel it backs off (bounded) as the
SDKs do. Full-data channels are read back to back, also as the SDKs do.
"""

from __future__ import annotations

import logging
import random
import threading
from typing import TYPE_CHECKING, Optional

from beam_tunnel.protocol.tokens import is_stream_token
from beam_tunnel.worker._batch_queue import _BatchQueue
from beam_tunnel.worker.polling import PollBackoff, has_more

if TYPE_CHECKING:  # pragma: no cover
    from beam_tunnel.client.tunnel_client import TunnelClient

_LOGGER = logging.getLogger(__name__)


class _FetchFailed:
    """Queue item: ReadRecords raised ``error`` (after the client's retries)."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _RecordFetcher:
    """Reads one channel from ``token`` on a named daemon thread until the
    ``finished`` token, an error, or :meth:`stop`."""

    def __init__(
        self,
        client: "TunnelClient",
        tunnel_id: str,
        client_id: str,
        channel_id: str,
        queue: _BatchQueue,
        backoff: PollBackoff,
        rng: Optional[random.Random] = None,
    ) -> None:
        self._client = client
        self._tunnel_id = tunnel_id
        self._client_id = client_id
        self._channel_id = channel_id
        self._queue = queue
        self._backoff = backoff
        self._rng = rng or random.Random()
        self._operational_lock = threading.Lock()
        self._stop_event = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self, token: str) -> None:
        with self._operational_lock:
            if self._thread is not None:
                raise ValueError(f"fetcher of channel {self._channel_id} is already running")
            self._thread = threading.Thread(
                name=f"TunnelWorker-fetch-{self._channel_id}", target=self._run, args=(token,), daemon=True
            )
            self._thread.start()

    def signal_stop(self) -> None:
        """Ask the loop to end; returns at once."""
        self._stop_event.set()
        self._queue.close()

    def stop(self) -> None:
        """Ask the loop to end and wait for it. Idempotent."""
        self.signal_stop()
        with self._operational_lock:
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self, token: str) -> None:
        # A channel's tokens are all of one kind (full-data keys or stream
        # iterators), so it is classified once rather than parsed every read.
        stream = is_stream_token(token)
        idle_rounds = 0
        while not self._stop_event.is_set():
            try:
                result = self._client.read_records(self._tunnel_id, self._client_id, self._channel_id, token)
            except Exception as err:  # handed to the process loop, which decides
                self._queue.put(_FetchFailed(err))
                return
            if not self._queue.put((token, result)):
                return
            if result.finished:
                return
            more = has_more(len(result.records), result.size_bytes, result.may_more_record)
            # Full-data channels are read back to back, as the SDKs do, unless
            # an answer brings nothing new at all (never seen, but it must
            # not become a busy loop).
            stalled = not result.records and result.next_token == token
            if (stream and not more) or stalled:
                idle_rounds += 1
            else:
                idle_rounds = 0
            token = result.next_token
            delay = self._backoff.delay(idle_rounds, self._rng.random())
            if delay > 0:
                self._stop_event.wait(delay)
