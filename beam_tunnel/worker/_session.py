"""One lease of a TunnelWorker: a client id, its channels and their readers.

A session starts with ConnectTunnel and ends with a lost lease or the
worker's shutdown; after a lost lease the worker throws it away, with
everything it held, and connects a new one. It merges each heartbeat reply
with the pure state machine (:mod:`beam_tunnel.worker.channels`) and turns
the plan into reader starts and stops. Errors of the heartbeat call are
raised to the worker, which owns the policy (reconnect, stop, retry).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Callable, Dict, Optional, Set

from beam_tunnel.errors import TunnelError
from beam_tunnel.worker._channel_reader import _CHANNEL_FATAL_ERRORS, _ChannelReader
from beam_tunnel.worker._limit import _ParallelismLimit
from beam_tunnel.worker.channels import (
    ChannelState,
    heartbeat_channels,
    mark_finished,
    mark_reading,
    mark_stopped,
    merge_heartbeat,
)
from beam_tunnel.worker.config import WorkerConfig
from beam_tunnel.worker.heartbeat import HeartbeatTimer
from beam_tunnel.worker.processor import ChannelProcessor

if TYPE_CHECKING:  # pragma: no cover
    from beam_tunnel.client.tunnel_client import TunnelClient

_LOGGER = logging.getLogger(__name__)


class _Session:
    """The state of one client id; thread-safe.

    Args:
      on_fatal: called (from a reader thread) with an error that no owner of
        the channel could get past; the worker stops.
      wake: asks the heartbeat thread to run its next tick now.
    """

    def __init__(
        self,
        client: "TunnelClient",
        tunnel_id: str,
        client_id: str,
        processor: ChannelProcessor,
        config: WorkerConfig,
        limit: _ParallelismLimit,
        timer: HeartbeatTimer,
        clock: Callable[[], float],
        on_fatal: Callable[[BaseException], None],
        wake: Callable[[], None],
    ) -> None:
        self.client_id = client_id
        self._client = client
        self._tunnel_id = tunnel_id
        self._processor = processor
        self._config = config
        self._limit = limit
        self._clock = clock
        self._on_fatal = on_fatal
        self._wake = wake
        self._lock = threading.Lock()
        self._timer = timer
        self._table: Dict[str, ChannelState] = {}
        self._report_due = False
        self._closed = False
        # The reader that currently owns each channel, and every reader not
        # yet exited (including ones told to stop).
        self._readers: Dict[str, _ChannelReader] = {}
        self._live: Set[_ChannelReader] = set()

    def channels(self) -> Dict[str, ChannelState]:
        with self._lock:
            return dict(self._table)

    @property
    def timeout_s(self) -> float:
        return self._timer.timeout_s

    def lease_expired(self, now: float) -> bool:
        with self._lock:
            return self._timer.lease_expired(now)

    def time_to_next(self, now: float) -> float:
        """Seconds until the next heartbeat; 0 when one is due or an answer
        (CLOSE or TERMINATED) waits to be reported."""
        with self._lock:
            return 0.0 if self._report_due else self._timer.time_to_next(now)

    def owns_current_thread(self) -> bool:
        with self._lock:
            return any(reader.owns_current_thread() for reader in self._live)

    # ---- heartbeat -------------------------------------------------------------------

    def heartbeat(self, now: float) -> None:
        """Send a heartbeat and act on the reply.

        Raises:
          TunnelError: from the Heartbeat call; nothing changed.
        """
        with self._lock:
            request = heartbeat_channels(self._table)
            self._timer = self._timer.sent(now)
            self._report_due = False
        # On failure the exception goes to the worker; a pending answer stays
        # in the table and goes with the next scheduled heartbeat (retrying
        # at once would spin while the service is down).
        reply = self._client.heartbeat(self._tunnel_id, self.client_id, request)
        with self._lock:
            if self._closed:
                return
            self._timer = self._timer.succeeded(now)
            plan = merge_heartbeat(self._table, reply)
            self._table = dict(plan.channels)
            for cid in plan.drop:
                reader = self._readers.pop(cid, None)
                if reader is not None:
                    reader.signal_stop()
            for cid in plan.close:
                reader = self._readers.get(cid)
                if reader is not None:
                    reader.signal_stop()
            for cid in plan.open:
                self._start_reader(cid)
        if plan.open or plan.close or plan.drop or plan.answer:
            _LOGGER.info(
                "[heartbeat] client %s: open=%s close=%s drop=%s answer=%s",
                self.client_id,
                list(plan.open),
                list(plan.close),
                list(plan.drop),
                [f"{c.channel_id}:{c.status.value}:{c.version}" for c in plan.answer],
            )

    def _start_reader(self, channel_id: str) -> None:
        """Start the reader of a newly opened channel; called under the lock."""
        previous = [r for r in self._live if r.channel_id == channel_id]
        for old in previous:
            old.signal_stop()
        reader = _ChannelReader(
            self,
            self._client,
            self._tunnel_id,
            self.client_id,
            channel_id,
            self._processor,
            self._config,
            self._limit,
            predecessors=previous,
            clock=self._clock,
        )
        self._readers[channel_id] = reader
        self._live.add(reader)
        reader.start()

    # ---- called by readers -------------------------------------------------------------

    def _reader_ready(self, reader: _ChannelReader) -> bool:
        """A reader fetched its checkpoint; may it read? (No if the channel
        was closed, revoked or reopened for another reader meanwhile.)"""
        with self._lock:
            if self._closed or self._readers.get(reader.channel_id) is not reader:
                return False
            self._table, ok = mark_reading(self._table, reader.channel_id)
            return ok

    def _reader_exited(self, reader: _ChannelReader, finished: bool, error: Optional[BaseException]) -> None:
        cid = reader.channel_id
        with self._lock:
            self._live.discard(reader)
            current = self._readers.get(cid) is reader
            if current:
                del self._readers[cid]
                update = mark_finished if finished else mark_stopped
                self._table = update(self._table, cid)
                # Answer now rather than at the next tick: the service can
                # only move the channel (or open its successors) once it hears.
                self._report_due = not self._closed
        if error is not None:
            # A service answer explains itself; anything else (user code, a
            # bug) needs its traceback.
            _LOGGER.warning(
                "[read] channel %s stopped on %s: %s",
                cid,
                type(error).__name__,
                error,
                exc_info=None if isinstance(error, TunnelError) else error,
            )
        if isinstance(error, _CHANNEL_FATAL_ERRORS):
            self._on_fatal(error)
        elif current:
            self._wake()

    # ---- end -----------------------------------------------------------------------------

    def close(self, checkpoint: bool) -> None:
        """Stop every reader and wait for them; no reader starts afterwards.

        Args:
          checkpoint: let readers commit what they acknowledged (False: as
            if the process died).
        """
        with self._lock:
            self._closed = True
            readers = list(self._live)
            self._readers.clear()
        for reader in readers:
            reader.signal_stop(checkpoint=checkpoint)
        for reader in readers:
            reader.join()
