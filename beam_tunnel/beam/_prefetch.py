"""Read-ahead: fetch a busy channel's next batch while this one is emitted.

A slot reads its channels one batch at a time from inside ``process()``;
without read-ahead the runner's per-element work and the service's answer
time add up. After a batch that says more is waiting, the next ReadRecords
of that channel (same token, so the same answer: ReadRecords is idempotent
for a token) is started on a small thread pool, and the next read of that
channel takes its result. A result nobody asks for (the channel moved, the
bundle was retried from an older token) is dropped once more than
``max_pending`` are waiting.

One per DoFn instance (made in ``setup()``), never pickled.
"""

from __future__ import annotations

import collections
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Deque, Dict, Tuple

from beam_tunnel.client.models import ReadResult
from beam_tunnel.client.tunnel_client import TunnelClient

_Key = Tuple[str, str, str, str, bool]


class Prefetcher:
    """ReadRecords with read-ahead, keyed by (tunnel, client, channel, token)."""

    def __init__(self, client: TunnelClient, workers: int = 2, max_pending: int = 16) -> None:
        self._client = client
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ReadFromTunnel-readahead")
        self._max_pending = max_pending
        self._lock = threading.Lock()
        self._pending: Dict[_Key, Future] = {}
        self._order: Deque[_Key] = collections.deque()

    def read(self, tunnel_id: str, client_id: str, channel_id: str, token: str, keep_corrupt: bool) -> ReadResult:
        """The batch after ``token``: the read-ahead's if one was started,
        else read now. Errors are raised here either way."""
        key = (tunnel_id, client_id, channel_id, token, keep_corrupt)
        with self._lock:
            future = self._pending.pop(key, None)
        if future is not None:
            return future.result()
        return self._read(key)

    def start(self, tunnel_id: str, client_id: str, channel_id: str, token: str, keep_corrupt: bool) -> None:
        """Begin reading the batch after ``token`` in the background."""
        key = (tunnel_id, client_id, channel_id, token, keep_corrupt)
        with self._lock:
            if key in self._pending:
                return
            self._pending[key] = self._pool.submit(self._read, key)
            self._order.append(key)
            while len(self._pending) > self._max_pending and self._order:
                stale = self._pending.pop(self._order.popleft(), None)
                if stale is not None:
                    stale.cancel()

    def _read(self, key: _Key) -> ReadResult:
        tunnel_id, client_id, channel_id, token, keep_corrupt = key
        if keep_corrupt:
            return self._client.read_records(tunnel_id, client_id, channel_id, token, keep_corrupt=True)
        return self._client.read_records(tunnel_id, client_id, channel_id, token)

    def close(self) -> None:
        with self._lock:
            self._pending.clear()
            self._order.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)
