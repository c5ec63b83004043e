"""Connections: the threaded HTTP/1.1 server that feeds :class:`~.http.WireApp`.

One thread per connection, at most :attr:`WireLimits.max_connections` of
them. Every read and write has a deadline, so a slow or silent peer cannot
hold a thread for long:

* a new connection must start its request within ``header_timeout_s``, and
  a keep-alive connection its next one within ``idle_timeout_s``;
* the request line and headers must arrive within ``header_timeout_s`` of
  their first byte (else 408 ``OTSRequestTimeout``, then close);
* the body within ``body_timeout_s`` of the end of the headers (408 too);
* the answer must be taken within ``body_timeout_s`` (else close).

When all slots are taken, a new connection takes the slot of the
connection idle the longest (an SDK pool reconnects; no request is cut);
when none is idle it gets 503 ``OTSServerBusy`` and is closed, before any
of its request is read - so a retry is always safe.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, Optional, Tuple

from . import errors, framing
from .http import Response, WireApp

__all__ = ["WireLimits", "EmulatorHTTPServer"]

_LOGGER = logging.getLogger(__name__)
_REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict", 410: "Gone",
            500: "Internal Server Error", 503: "Service Unavailable"}
_READ_BUFFER = 65536
# A refused connection gets its 503 written by the accept loop itself, so
# that write (into an empty socket buffer) must never wait long.
_REFUSE_WRITE_S = 0.5


@dataclasses.dataclass(frozen=True)
class WireLimits:
    """Connection limits of one emulator (see the module doc).

    Raises:
      ValueError: for a non-positive value, naming it.
    """

    max_connections: int = 256
    header_timeout_s: float = 20.0
    body_timeout_s: float = 60.0
    idle_timeout_s: float = 600.0

    def __post_init__(self) -> None:
        count = self.max_connections
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"max_connections must be an int >= 1, got {count!r}")
        for name in ("header_timeout_s", "body_timeout_s", "idle_timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")


def http_bytes(response: Response, close: bool) -> bytes:
    """The status line, headers and body of ``response`` as sent."""
    lines = [f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Error')}"]
    lines.extend(f"{name}: {value}" for name, value in response.headers)
    lines.append(f"Content-Length: {len(response.body)}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body


class _DeadlineReader(io.RawIOBase):
    """The socket's input with one deadline for a whole phase of reads.

    A socket timeout alone bounds each ``recv``; a peer sending one byte per
    timeout would never hit it. Here every ``recv`` waits at most until
    ``deadline`` (``time.monotonic()``), then ``TimeoutError``.
    """

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock
        self.deadline: Optional[float] = None
        self.expired = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.deadline is not None:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                self.expired = True
                raise TimeoutError("read deadline passed")
            self._sock.settimeout(remaining)
        try:
            return self._sock.recv_into(buffer)
        except TimeoutError:
            self.expired = True
            raise


class _Handler(BaseHTTPRequestHandler):
    """Reads one request at a time off a keep-alive connection."""

    protocol_version = "HTTP/1.1"
    server_version = "beam-tunnel-emulator"
    disable_nagle_algorithm = True
    server: "EmulatorHTTPServer"

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the socket stays open: its makefile is replaced
        self._reader = _DeadlineReader(self.connection)
        self.rfile = io.BufferedReader(self._reader, _READ_BUFFER)
        self._phase = "idle"
        self._served = 0
        self.server.register(self)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.unregister(self)

    def handle_one_request(self) -> None:
        limits = self.server.limits
        wait = limits.idle_timeout_s if self._served else limits.header_timeout_s
        self._reader.deadline = time.monotonic() + wait
        self._reader.expired = False
        try:
            started = bool(self.rfile.peek(1))
        except OSError:  # TimeoutError included: an idle peer is just closed
            started = False
        if not started or not self.server.claim(self):
            self.close_connection = True
            return
        self._served += 1
        try:
            self._phase = "headers"
            self._reader.deadline = time.monotonic() + limits.header_timeout_s
            super().handle_one_request()
            if self._reader.expired and self._phase == "headers":
                self._refuse(errors.request_timeout(
                    f"Request line and headers not received within {limits.header_timeout_s:g} s."))
        finally:
            self._phase = "idle"
            self.server.release(self)

    def do_POST(self) -> None:
        limits = self.server.limits
        app = self.server.app
        self._phase = "body"
        self._reader.deadline = time.monotonic() + limits.body_timeout_s
        try:
            body = framing.read_body(self.rfile, self.headers, app.max_body_bytes)
        except framing.FramingError as err:
            return self._refuse(errors.parameter_invalid(str(err)))
        except TimeoutError:
            return self._refuse(errors.request_timeout(
                f"Request body not received within {limits.body_timeout_s:g} s."))
        if body is None:
            self.close_connection = True  # the client went away mid-body
            return
        self._phase = "handle"
        self._reader.deadline = None
        self.server.busy(True)
        try:
            response = app.handle(self.command, self.path, self.headers.items(), body)
        finally:
            self.server.busy(False)
        self._write(response)

    # Other methods get a 405 error body from WireApp.
    do_GET = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_POST

    def _refuse(self, err) -> None:
        # The rest of the request is unread, so this connection cannot carry
        # another one: answer, then close.
        self.close_connection = True
        headers = getattr(self, "headers", None)
        items = headers.items() if headers is not None else []
        try:
            self._write(self.server.app.reject(getattr(self, "path", "/") or "/", items, err))
        except OSError:
            pass  # the peer is gone or not reading: nothing more to do

    def _write(self, response: Response) -> None:
        if response.drop:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self._phase = "write"
        # sendall's timeout bounds the whole answer, not each send.
        self.connection.settimeout(self.server.limits.body_timeout_s)
        self.wfile.write(http_bytes(response, self.close_connection))

    def send_error(self, code, message=None, explain=None) -> None:
        # Malformed HTTP (bad request line, oversized or too many headers):
        # answer with an Error body like every other failure.
        text = f"Malformed HTTP request ({code}): {message or self.responses.get(code, ('',))[0]}"
        self._refuse(errors.parameter_invalid(text))

    def log_message(self, format, *args) -> None:  # noqa: A002 - stdlib signature
        _LOGGER.debug("[wire] %s " + format, self.address_string(), *args)


class EmulatorHTTPServer(ThreadingHTTPServer):
    """Threaded HTTP/1.1 server for one :class:`WireApp`, within ``limits``.

    Tracks open connections (idle or serving) and in-flight requests so
    :meth:`close_all` can end keep-alive connections and wait for running
    handlers.
    """

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: Tuple[str, int], app: WireApp, limits: Optional[WireLimits] = None) -> None:
        self.app = app
        self.limits = limits or WireLimits()
        # handler -> monotonic time it went idle, or None while it serves.
        self._handlers: Dict[_Handler, Optional[float]] = {}
        self._evicted = set()
        self._starting = 0  # accepted, thread not yet registered
        self._in_flight = 0
        self._cond = threading.Condition()
        super().__init__(address, _Handler)

    @property
    def connection_count(self) -> int:
        """Connections being served or waiting for their thread (not those
        already chosen for eviction, whose threads are exiting)."""
        with self._cond:
            return self._count_locked()

    def _count_locked(self) -> int:
        return len(self._handlers) - len(self._evicted) + self._starting

    def process_request(self, request, client_address) -> None:
        with self._cond:
            full = self._count_locked() >= self.limits.max_connections
            refuse = full and not self._evict_idle_locked()
            if not refuse:
                self._starting += 1
        if refuse:
            self._refuse_connection(request)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            with self._cond:
                self._starting -= 1
            raise

    def _evict_idle_locked(self) -> bool:
        idle = [(since, id(h), h) for h, since in self._handlers.items()
                if since is not None and h not in self._evicted]
        if not idle:
            return False
        handler = min(idle)[2]
        self._evicted.add(handler)
        _LOGGER.info("[wire] at %d connections: closing the longest idle one", self.limits.max_connections)
        try:
            handler.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        return True

    def _refuse_connection(self, sock: socket.socket) -> None:
        _LOGGER.warning("[wire] refusing a connection: all %d are busy", self.limits.max_connections)
        err = errors.server_busy(
            f"The emulator is serving its limit of {self.limits.max_connections} connections, none idle; "
            f"retry later."
        )
        try:
            sock.settimeout(_REFUSE_WRITE_S)
            sock.sendall(http_bytes(self.app.reject("/", [], err), close=True))
            sock.shutdown(socket.SHUT_WR)
            # Read what already arrived so closing does not reset the
            # connection before the client reads the answer.
            sock.setblocking(False)
            for _ in range(16):
                if not sock.recv(_READ_BUFFER):
                    break
        except OSError:
            pass

    def register(self, handler: _Handler) -> None:
        with self._cond:
            self._starting -= 1
            self._handlers[handler] = time.monotonic()

    def unregister(self, handler: _Handler) -> None:
        with self._cond:
            self._handlers.pop(handler, None)
            self._evicted.discard(handler)

    def claim(self, handler: _Handler) -> bool:
        """Mark ``handler`` serving; False when it was chosen for eviction."""
        with self._cond:
            if handler in self._evicted:
                return False
            self._handlers[handler] = None
            return True

    def release(self, handler: _Handler) -> None:
        with self._cond:
            if handler in self._handlers:
                self._handlers[handler] = time.monotonic()

    def busy(self, starting: bool) -> None:
        with self._cond:
            self._in_flight += 1 if starting else -1
            if not self._in_flight:
                self._cond.notify_all()

    def close_all(self, wait_s: float) -> None:
        """Close every open connection; wait up to ``wait_s`` for handlers."""
        with self._cond:
            handlers = list(self._handlers)
        for handler in handlers:
            try:
                handler.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self._cond:
            self._cond.wait_for(lambda: self._in_flight == 0, timeout=wait_s)

    def handle_error(self, request, client_address) -> None:
        # Clients resetting connections is normal; keep stderr quiet.
        _LOGGER.debug("[wire] connection from %s failed", client_address, exc_info=True)
