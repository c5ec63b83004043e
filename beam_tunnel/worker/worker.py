"""TunnelWorker: read a tunnel with plain threads, as the Java and Go SDKs do.

Status: experimental; the API may change.

One worker is one client of the tunnel. The service spreads a tunnel's
channels over all its clients, so running several workers (threads,
processes or machines) on one tunnel is how reading scales out, and a
worker that dies has its channels moved to the others after the heartbeat
timeout.

Threads (each a named daemon, see ``_heartbeater`` and ``_channel_reader``):

* ``TunnelWorker-heartbeat``: connects, heartbeats every
  ``heartbeat_interval_s`` and merges each answer with the pure state
  machine (:mod:`beam_tunnel.worker.channels`); starts and stops readers;
  after a lost lease (OTSResourceGone, or no answered heartbeat within
  ``heartbeat_timeout_s``) stops every reader and reconnects with a new
  client id after a random delay.
* ``TunnelWorker-read-<channel>`` and ``TunnelWorker-fetch-<channel>`` per
  owned channel: the fetch loop reads ahead into a bounded queue, the read
  loop calls the processor and checkpoints.

Usage::

    from beam_tunnel.client import TunnelClient
    from beam_tunnel.worker import TunnelWorker, WorkerConfig

    def process(records, context):
        for record in records:
            print(context.channel_id, record.to_dict())

    client = TunnelClient("http://127.0.0.1:8800", "demo", "id", "secret")
    with TunnelWorker(client, tunnel_id, process, WorkerConfig(checkpoint_interval_s=5)) as worker:
        worker.join()  # until stop() from another thread, or a fatal error

See :mod:`beam_tunnel.worker.processor` for the delivery contract
(at-least-once, per-channel order, duplicates bounded by the checkpoint
interval).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import TYPE_CHECKING, Callable, Dict, Optional, Set

from beam_tunnel.errors import (
    AuthFailedError,
    ConfigError,
    ObjectNotExistError,
    ParameterInvalidError,
    PermissionDeniedError,
    ResourceGoneError,
    TunnelError,
    TunnelExpiredError,
)
from beam_tunnel.worker._heartbeater import _Heartbeater
from beam_tunnel.worker._limit import _ParallelismLimit
from beam_tunnel.worker._session import _Session
from beam_tunnel.worker.channels import ChannelState
from beam_tunnel.worker.config import WorkerConfig
from beam_tunnel.worker.processor import _as_processor

if TYPE_CHECKING:  # pragma: no cover
    from beam_tunnel.client.tunnel_client import TunnelClient

__all__ = ["TunnelWorker"]

_LOGGER = logging.getLogger(__name__)

_FATAL_ERRORS = (
    ParameterInvalidError,  # the SDKs' "tunnel invalid": the worker halts
    TunnelExpiredError,
    PermissionDeniedError,
    AuthFailedError,  # a wrong AccessKey will not fix itself
    ObjectNotExistError,  # the tunnel (or its table) was deleted
    ConfigError,
)
"""Errors of Connect and Heartbeat that stop the worker for good."""

# After a failed ConnectTunnel (the client already retried what is safe to
# retry), wait at least this long so an outage does not become a hot loop.
_MIN_CONNECT_RETRY_S = 0.5

_SHUTDOWN_THREAD_NAME = "TunnelWorker-shutdown"


class TunnelWorker:
    """A client of one tunnel that reads its channels and hands records to user code.

    Args:
      client: a :class:`~beam_tunnel.client.TunnelClient`; shared by all the
        worker's threads, not closed by the worker.
      tunnel_id: the tunnel to read (``describe_tunnel(...).tunnel.tunnel_id``).
      processor: a :class:`~beam_tunnel.worker.ChannelProcessor`, an object
        with ``process(records, context)`` (and optionally
        ``shutdown(context)``), or a plain callable ``(records, context)``.
      config: a :class:`~beam_tunnel.worker.WorkerConfig`; default: the
        SDKs' defaults.

    Raises:
      ConfigError: naming a bad argument.
    """

    def __init__(
        self,
        client: "TunnelClient",
        tunnel_id: str,
        processor,
        config: Optional[WorkerConfig] = None,
        *,
        _clock: Callable[[], float] = time.monotonic,
        _rng: Optional[random.Random] = None,
    ) -> None:
        if not isinstance(tunnel_id, str) or not tunnel_id:
            raise ConfigError(f"tunnel_id must be a non-empty string, got {tunnel_id!r}")
        for method in ("connect", "heartbeat", "get_checkpoint", "read_records", "checkpoint", "shutdown"):
            if not callable(getattr(client, method, None)):
                raise ConfigError(f"client must be a TunnelClient, got {client!r} (no {method}())")
        if config is None:
            config = WorkerConfig()
        elif not isinstance(config, WorkerConfig):
            raise ConfigError(f"config must be a WorkerConfig, got {config!r}")
        self._client = client
        self._tunnel_id = tunnel_id
        self._processor = _as_processor(processor)
        self._config = config
        self._clock = _clock
        self._rng = _rng or random.Random()
        self._limit = _ParallelismLimit(config.max_channel_parallelism)
        self._heartbeater = _Heartbeater(self)

        self._lock = threading.Lock()
        self._started = False
        self._closing = False
        self._done = threading.Event()
        self._error: Optional[BaseException] = None
        # The current lease; None before connecting and while reconnecting.
        self._session: Optional[_Session] = None
        # Every session whose readers may still run: the current one, and
        # one being closed after a lost lease (no longer ``_session``, but
        # its callbacks may still call stop()).
        self._sessions: Set[_Session] = set()

    def __repr__(self) -> str:
        return f"TunnelWorker(tunnel_id={self._tunnel_id!r}, client_id={self.client_id!r})"

    # ---- public API ---------------------------------------------------------------

    @property
    def tunnel_id(self) -> str:
        """The tunnel this worker reads."""
        return self._tunnel_id

    @property
    def config(self) -> WorkerConfig:
        """The worker's settings."""
        return self._config

    @property
    def client_id(self) -> Optional[str]:
        """The current client id; None before connecting and while reconnecting."""
        session = self._session
        return None if session is None else session.client_id

    @property
    def error(self) -> Optional[BaseException]:
        """The error that stopped the worker, or None."""
        return self._error

    @property
    def running(self) -> bool:
        """True from :meth:`start` until the worker has stopped."""
        return self._started and not self._done.is_set()

    def channels(self) -> Dict[str, ChannelState]:
        """A snapshot of the channels this client holds, by id."""
        session = self._session
        return {} if session is None else session.channels()

    def start(self) -> None:
        """Connect and start reading, in the background. Returns at once.

        Raises:
          ConfigError: if the worker was started before (build a new one).
        """
        with self._lock:
            if self._started or self._closing:
                raise ConfigError(f"{self!r} was already started or stopped; a TunnelWorker runs once")
            self._started = True
            # Under the lock: a stop() racing with this either comes first
            # (and this raises) or finds the thread to stop.
            self._heartbeater.start()
        _LOGGER.info("[worker] starting on tunnel %s", self._tunnel_id)

    def stop(self, timeout: Optional[float] = None) -> bool:
        """Stop gracefully: stop every reader after its batch in hand,
        checkpoint what was acknowledged, then ShutdownTunnel so the service
        hands the channels to other clients at once. Idempotent; safe from a
        processor callback.

        The shutdown runs on a thread of its own, so ``timeout`` bounds this
        call even while a callback or a request holds it up; a request in
        flight is not cut short (with the service unreachable the shutdown
        can take as long as the client's retry deadline).

        Args:
          timeout: seconds to wait for the shutdown; None waits until done.

        Returns:
          True when the worker has stopped; False when ``timeout`` passed
          first (the shutdown goes on in the background; :meth:`join` waits
          for it). Called from a processor callback it returns False at
          once: the shutdown waits for that callback.
        """
        self._request_shutdown(graceful=True)
        if self._on_reader_thread():
            return False
        return self._done.wait(timeout)

    def abort(self) -> None:
        """Stop like a crash: no final checkpoint, no ShutdownTunnel.

        The service gives this client's channels to others only after the
        heartbeat timeout, and they resume from the last periodic checkpoint
        (duplicates, never loss). Useful to test failover; waits until the
        threads are gone (a callback in progress finishes first), except
        when called from a processor callback.
        """
        self._request_shutdown(graceful=False)
        if not self._on_reader_thread():
            self._done.wait()

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait until the worker stops.

        Returns:
          True if it stopped, False if ``timeout`` seconds passed first.

        Raises:
          TunnelError: the fatal error that stopped the worker.
          ConfigError: the worker was never started.
        """
        if not self._started and not self._done.is_set():
            raise ConfigError(f"{self!r} was not started; call start() first")
        stopped = self._done.wait(timeout)
        if stopped and self._error is not None:
            raise self._error
        return stopped

    def __enter__(self) -> "TunnelWorker":
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _on_reader_thread(self) -> bool:
        """True on a reader thread of this worker (a processor callback),
        which the shutdown joins and so must never wait for it."""
        with self._lock:
            sessions = list(self._sessions)
        return any(session.owns_current_thread() for session in sessions)

    # ---- the heartbeat thread's policy ------------------------------------------------

    def _heartbeat_tick(self) -> Optional[float]:
        """One step of the lease; the seconds until the next, None when done."""
        try:
            return self._tick()
        except Exception as err:  # a bug; never let the lease die silently
            _LOGGER.exception("[heartbeat] unexpected error")
            self._fail(err)
            return None

    def _tick(self) -> Optional[float]:
        if self._closing:
            return None
        session = self._session
        if session is None:
            return self._connect()
        now = self._clock()
        if session.lease_expired(now):
            return self._lose_lease(session, f"no heartbeat answered within {session.timeout_s:g} s")
        delay = session.time_to_next(now)
        if delay > 0:
            return delay
        try:
            session.heartbeat(now)
        except ResourceGoneError as err:
            return self._lose_lease(session, str(err))
        except _FATAL_ERRORS as err:
            self._fail(err)
            return None
        except TunnelError as err:
            _LOGGER.warning("[heartbeat] client %s: heartbeat failed: %s", session.client_id, err)
        return session.time_to_next(self._clock())

    def _connect(self) -> Optional[float]:
        timer = self._config.heartbeat_timer()
        try:
            client_id = self._client.connect(self._tunnel_id, timer.client_timeout, self._config.client_tag)
        except _FATAL_ERRORS as err:
            self._fail(err)
            return None
        except TunnelError as err:
            delay = max(_MIN_CONNECT_RETRY_S, self._reconnect_delay())
            _LOGGER.warning("[heartbeat] connect to tunnel %s failed (%s); retrying in %.1f s", self._tunnel_id, err, delay)
            return delay
        session = _Session(
            self._client,
            self._tunnel_id,
            client_id,
            self._processor,
            self._config,
            self._limit,
            timer.connected(self._clock()),
            self._clock,
            on_fatal=self._fail,
            wake=self._heartbeater.wake,
        )
        with self._lock:
            self._session = session
            self._sessions.add(session)
        _LOGGER.info("[heartbeat] connected to tunnel %s as %s", self._tunnel_id, client_id)
        return 0.0

    def _lose_lease(self, session: _Session, reason: str) -> float:
        """Drop the session with all its channels; reconnect after a delay."""
        with self._lock:
            if self._session is session:
                self._session = None
        _LOGGER.warning("[heartbeat] client %s lost its lease (%s); reconnecting", session.client_id, reason)
        # Best effort: the final checkpoints may be refused now, which only
        # means the next owner starts from the previous checkpoint.
        self._close_session(session, checkpoint=True)
        self._shutdown_client(session.client_id)
        return self._reconnect_delay()

    def _reconnect_delay(self) -> float:
        return self._rng.uniform(0.0, self._config.reconnect_max_delay_s)

    # ---- shutdown -------------------------------------------------------------------------

    def _fail(self, error: BaseException) -> None:
        """Stop the worker because of ``error`` (from any thread, at once)."""
        with self._lock:
            if self._error is None:
                self._error = error
        _LOGGER.error("[worker] tunnel %s: stopping on %s: %s", self._tunnel_id, type(error).__name__, error)
        self._request_shutdown(graceful=True)

    def _request_shutdown(self, graceful: bool) -> None:
        """Start the shutdown (once) on a thread of its own; returns at once.

        Never on the caller's thread: the caller may be the heartbeat thread
        or a reader, which the shutdown joins, and stop(timeout) must be able
        to give up waiting.
        """
        with self._lock:
            if self._closing:
                return
            self._closing = True
            if not self._started:
                self._done.set()
                return
        threading.Thread(name=_SHUTDOWN_THREAD_NAME, target=self._shutdown, args=(graceful,), daemon=True).start()

    def _shutdown(self, graceful: bool) -> None:
        # Order: the heartbeat thread first, so no reader is started or
        # replaced meanwhile (and a lease it was connecting is in _session by
        # the time it has ended); then the readers, which checkpoint while
        # this client still owns their channels; ShutdownTunnel last.
        self._heartbeater.stop()
        with self._lock:
            session = self._session
        if session is not None:
            self._close_session(session, checkpoint=graceful)
            if graceful:
                self._shutdown_client(session.client_id)
        _LOGGER.info("[worker] tunnel %s: stopped (%s)", self._tunnel_id, "graceful" if graceful else "aborted")
        self._done.set()

    def _close_session(self, session: _Session, checkpoint: bool) -> None:
        """Stop the session's readers and wait for them."""
        session.close(checkpoint=checkpoint)
        with self._lock:
            self._sessions.discard(session)

    def _shutdown_client(self, client_id: Optional[str]) -> None:
        if client_id is None:
            return
        try:
            self._client.shutdown(self._tunnel_id, client_id)
        except TunnelError as err:
            _LOGGER.warning("[worker] ShutdownTunnel for client %s failed: %s", client_id, err)
