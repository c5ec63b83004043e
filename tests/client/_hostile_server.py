"""A misbehaving HTTP server on loopback, for testing what the client does
with answers a well-behaved server never sends.

Unlike ``_scripted_server`` it speaks raw TCP: after reading one request
(headers and Content-Length body) it plays the next queued :class:`Script`
on the socket byte for byte, so a test can cut a status line, lie about the
length, trickle, flood or stay silent. Scripts are played in order, one per
request; when the queue runs dry the last script repeats, so a retried call
meets the same misbehaviour every time.

Usage::

    with HostileServer() as server:
        server.queue(Send(b"HTTP/1.1 200 OK\\r\\n"))
        ... TunnelClient(server.endpoint, ...) ...
        assert server.requests == 1
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from typing import List, Optional, Union

_SEND_BLOCK = 64 * 1024


@dataclasses.dataclass(frozen=True)
class Send:
    """Send ``data``, then close the connection."""

    data: bytes


@dataclasses.dataclass(frozen=True)
class Trickle:
    """Send ``prefix`` at once, then ``data`` one byte every ``interval_s``,
    then close."""

    data: bytes
    interval_s: float
    prefix: bytes = b""


@dataclasses.dataclass(frozen=True)
class Flood:
    """Send ``head`` (status line and headers), then zeros until ``total``
    body bytes went out or the client hung up; with ``chunked`` the zeros go
    as 64 KiB chunks with no final chunk."""

    head: bytes
    total: int
    chunked: bool = False


@dataclasses.dataclass(frozen=True)
class Hang:
    """Send nothing; keep the connection open until the client closes it or
    the server stops."""


Script = Union[Send, Trickle, Flood, Hang]


def http_answer(status: int, body: bytes, headers=(), *, length: Optional[int] = None) -> bytes:
    """The bytes of an HTTP/1.1 answer; ``length`` overrides Content-Length
    (None: the body's true length; -1: no Content-Length header at all)."""
    lines = [f"HTTP/1.1 {status} X"]
    declared = len(body) if length is None else length
    if declared >= 0:
        lines.append(f"Content-Length: {declared}")
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class HostileServer:
    """Threaded TCP server on 127.0.0.1 and a free port. :meth:`stop` closes
    every connection and joins every thread it started."""

    def __init__(self) -> None:
        self._listener: Optional[socket.socket] = None
        self._threads: List[threading.Thread] = []
        self._connections: List[socket.socket] = []
        self._scripts: List[Script] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.requests = 0
        self.flooded = 0  # body bytes Flood scripts got onto the wire

    def queue(self, *scripts: Script) -> None:
        with self._lock:
            self._scripts.extend(scripts)

    @property
    def endpoint(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self) -> "HostileServer":
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.05)
        self._spawn(self._accept_loop)
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            _quietly(conn.shutdown, socket.SHUT_RDWR)
        for thread in list(self._threads):
            thread.join(timeout=10)
        if self._listener is not None:
            self._listener.close()
        alive = [t.name for t in self._threads if t.is_alive()]
        assert not alive, f"HostileServer threads still running: {alive}"

    def __enter__(self) -> "HostileServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # ---- server threads --------------------------------------------------------

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, name="Thread-HostileServer", daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self._connections.append(conn)
            self._spawn(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            if not self._read_request(conn):
                return
            with self._lock:
                self.requests += 1
                script = self._scripts.pop(0) if len(self._scripts) > 1 else self._scripts[0]
            try:
                self._play(conn, script)
            except OSError:
                pass  # the client hung up, as it should when it gives up

    @staticmethod
    def _read_request(conn: socket.socket) -> bool:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            body += chunk
        return True

    def _play(self, conn: socket.socket, script: Script) -> None:
        if isinstance(script, Send):
            conn.sendall(script.data)
        elif isinstance(script, Trickle):
            conn.sendall(script.prefix)
            for i in range(len(script.data)):
                if self._stopping.wait(script.interval_s):
                    return
                conn.sendall(script.data[i:i + 1])
        elif isinstance(script, Flood):
            conn.sendall(script.head)
            block = bytes(_SEND_BLOCK)
            if script.chunked:
                block = b"%x\r\n%b\r\n" % (len(block), block)
            sent = 0
            while sent < script.total and not self._stopping.is_set():
                conn.sendall(block)
                sent += _SEND_BLOCK
                with self._lock:
                    self.flooded += _SEND_BLOCK
        elif isinstance(script, Hang):
            conn.settimeout(0.05)
            while not self._stopping.is_set():
                try:
                    if not conn.recv(65536):
                        return
                except socket.timeout:
                    continue
        _quietly(conn.shutdown, socket.SHUT_WR)
        # Let the client read everything before the socket closes (a close
        # with unread request bytes would reset the connection instead).
        deadline = time.monotonic() + 2
        conn.settimeout(0.05)
        while time.monotonic() < deadline and not self._stopping.is_set():
            try:
                if not conn.recv(65536):
                    return
            except socket.timeout:
                continue


def _quietly(fn, *args) -> None:
    try:
        fn(*args)
    except OSError:
        pass
