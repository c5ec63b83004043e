"""Wall-clock bounds on one HTTP attempt, below ``requests``.

A socket timeout bounds each read, not their sum: a server that sends one
byte a second never trips it. So the transport sends through
:class:`DeadlineAdapter`, whose connections read the answer through
:class:`_DeadlineSocketIO`; before every ``recv`` it shrinks the socket
timeout to what is left of the attempt, and refuses to read once nothing is
left. An :class:`Attempt` has two phases, each with its own budget:

* connecting and sending the request: the connect timeout, in total;
* receiving the answer (status line, headers and body): the read timeout,
  in total, from the moment the request has been sent.

The attempt of the calling thread is found through a thread-local, as
``requests`` offers no way to pass it down; everything runs in that thread.
The reader also notes when the connection ended inside the headers, which
``http.client`` would otherwise take for their end.
"""

from __future__ import annotations

import http.client
import io
import socket
import threading
import time
from typing import Optional

from requests.adapters import HTTPAdapter

_LOCAL = threading.local()


class Attempt:
    """The time budget of one request/answer exchange.

    Attributes:
      expired: True once a read or send was refused for lack of time.
      answer_started: True once the request was sent and the answer awaited.
      received: answer bytes read from the socket so far.
      headers_cut: True when the connection ended before the blank line that
        closes the headers.
    """

    def __init__(self, connect_timeout_s: float, read_timeout_s: float, clock=time.monotonic) -> None:
        self._clock = clock
        self.read_timeout_s = read_timeout_s
        self._deadline = clock() + connect_timeout_s
        self.expired = False
        self.answer_started = False
        self.received = 0
        self.headers_cut = False

    def remaining(self) -> float:
        """Seconds left in the current phase (<= 0 when used up)."""
        return self._deadline - self._clock()

    def start_answer(self) -> None:
        """The request is sent: the read timeout now bounds the whole answer."""
        self.answer_started = True
        self._deadline = self._clock() + self.read_timeout_s

    def socket_timeout(self, usual: Optional[float]) -> float:
        """The timeout for the next socket operation: ``usual``, cut to what
        is left; raises ``socket.timeout`` when nothing is left."""
        left = self.remaining()
        if left <= 0:
            self.expired = True
            raise socket.timeout("the attempt used up its time")
        if isinstance(usual, (int, float)) and not isinstance(usual, bool):
            return min(usual, left)
        return left  # None (block forever) or urllib3's "default" sentinel

    def __enter__(self) -> "Attempt":
        _LOCAL.attempt = self
        return self

    def __exit__(self, *exc_info) -> None:
        _LOCAL.attempt = None


def _current() -> Optional[Attempt]:
    return getattr(_LOCAL, "attempt", None)


class _DeadlineSocketIO(io.RawIOBase):
    """Wraps the socket reader http.client made, keeping every ``recv``
    within the attempt. The wrapped reader keeps its claim on the socket (so
    a connection closed by http.client stays readable until the answer is
    read), and is closed with this one."""

    def __init__(self, buffered: io.BufferedReader, sock: socket.socket, attempt: Attempt) -> None:
        super().__init__()
        self._buffered = buffered  # kept alive: collecting it would release the socket
        self._raw = buffered.raw
        self._sock = sock
        self._attempt = attempt
        self.eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        attempt = self._attempt
        self._sock.settimeout(attempt.socket_timeout(attempt.read_timeout_s))
        try:
            count = self._raw.readinto(buffer)
        except socket.timeout:
            if attempt.remaining() <= 0:
                attempt.expired = True
            raise
        if count == 0:
            self.eof = True
        attempt.received += count or 0
        return count

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _DeadlineResponse(http.client.HTTPResponse):
    """``http.client``'s response, reading through :class:`_DeadlineSocketIO`."""

    def __init__(self, sock, *args, **kwargs) -> None:
        super().__init__(sock, *args, **kwargs)
        self._attempt = _current()
        self._reader: Optional[_DeadlineSocketIO] = None
        if self._attempt is not None:
            self._attempt.start_answer()
            self._reader = _DeadlineSocketIO(self.fp, sock, self._attempt)
            self.fp = io.BufferedReader(self._reader)

    def begin(self) -> None:
        super().begin()
        # http.client ends the headers at end of file as at a blank line; only
        # the reader knows which one it was.
        if self._reader is not None and self._reader.eof:
            self._attempt.headers_cut = True
            raise http.client.IncompleteRead(b"", None)


class _DeadlineConnectionMixin:
    """Makes a urllib3 connection keep connecting, sending and reading within
    the calling thread's :class:`Attempt`."""

    response_class = _DeadlineResponse

    def connect(self) -> None:
        attempt = _current()
        if attempt is not None:
            self.timeout = attempt.socket_timeout(self.timeout)
        super().connect()

    def send(self, data) -> None:
        attempt = _current()
        if attempt is not None and self.sock is not None:
            self.sock.settimeout(attempt.socket_timeout(self.timeout))
        super().send(data)


_POOL_CLASSES = {}


def _deadline_pool_class(pool_class):
    if getattr(pool_class, "_bounded_by_attempt", False):
        return pool_class
    if pool_class not in _POOL_CLASSES:
        connection_class = type(
            "Deadline" + pool_class.ConnectionCls.__name__,
            (_DeadlineConnectionMixin, pool_class.ConnectionCls),
            {},
        )
        _POOL_CLASSES[pool_class] = type(
            "Deadline" + pool_class.__name__,
            (pool_class,),
            {"ConnectionCls": connection_class, "_bounded_by_attempt": True},
        )
    return _POOL_CLASSES[pool_class]


def _bound(manager) -> None:
    manager.pool_classes_by_scheme = {
        scheme: _deadline_pool_class(cls) for scheme, cls in manager.pool_classes_by_scheme.items()
    }


class DeadlineAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose connections (direct or through a proxy) obey
    the calling thread's :class:`Attempt`; without one they behave as usual."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        _bound(self.poolmanager)

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        _bound(manager)
        return manager
