"""HTTP side of the emulator: request checks, dispatch, signed answers.

:class:`WireApp` turns one request (method, path, headers, body) into one
:class:`Response` without touching sockets; :class:`EmulatorHTTPServer`
(stdlib ``ThreadingHTTPServer``, HTTP/1.1 keep-alive, daemon threads) feeds
it from the network. Checks, in order: method; injected delay or dropped
connection; AccessKey, instance, API version, date skew, V2 signature,
content MD5; path; injected failure; body. Every failure is an ``Error`` body with the real code; an
unexpected exception is logged and answered with 500
``OTSInternalServerError``, so no request can take the server down.
"""

from __future__ import annotations

import datetime
import logging
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, Iterable, List, NamedTuple, Optional, Tuple

from google.protobuf.message import DecodeError

from beam_tunnel.errors import ServiceError
from beam_tunnel.protocol import signing

from . import errors
from .routes import RequestContext, Route

__all__ = ["Response", "WireApp", "EmulatorHTTPServer", "API_VERSIONS"]

_LOGGER = logging.getLogger(__name__)

# 2015-12-31: the table API and the Java tunnel client; 2018-04-01: the Go
# and Elixir tunnel clients (tunnel-protocol.md §1.3).
API_VERSIONS = ("2015-12-31", "2018-04-01")
_CONTENT_TYPE = "protocol buffer"
# Idle keep-alive connections are closed after this long; SDK pools recover
# by reconnecting. stop() closes them at once anyway.
_IDLE_TIMEOUT_S = 600
_REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 409: "Conflict", 410: "Gone",
            500: "Internal Server Error", 503: "Service Unavailable"}


class Response(NamedTuple):
    """One answer. ``drop`` means: close the connection without answering."""

    status: int
    headers: List[Tuple[str, str]]
    body: bytes
    drop: bool = False


_DROP = Response(0, [], b"", drop=True)


class WireApp:
    """Authenticates, routes and answers requests for one emulator.

    Args:
      backend: the model (``model.Emulator``); its ``config`` gives the
        instance, AccessKeys, body limit and date-skew limit, its ``clock``
        the time.
      routes: path -> :class:`~.routes.Route`.
      faults: a :class:`~beam_tunnel.emulator.faults.FaultInjector`.
    """

    def __init__(self, backend, routes: Dict[str, Route], faults) -> None:
        self._backend = backend
        self._config = backend.config
        self._clock = backend.config.clock
        self._routes = routes
        self._faults = faults

    @property
    def max_body_bytes(self) -> int:
        return self._config.max_body_bytes

    def handle(self, method: str, path: str, header_items: Iterable[Tuple[str, str]], body: bytes) -> Response:
        """Answer one request. Never raises."""
        path = path.split("?", 1)[0]
        items = list(header_items)
        headers = {name.lower(): value for name, value in items}
        request_id = str(uuid.uuid4())
        key_id = headers.get("x-ots-accesskeyid", "").strip()
        secret = self._config.access_keys.get(key_id)
        try:
            if method != "POST":
                raise errors.method_not_allowed(f"Method {method} is not allowed; every API is POST.")
            route = self._routes.get(path)
            # Unknown paths are never faulted: they get OTSUnsupportOperation.
            fault = self._faults.decide(route.api) if route else None
            if fault is not None:
                if fault.delay_s:
                    time.sleep(fault.delay_s)
                if fault.drop:
                    _LOGGER.info("[wire] fault: dropping connection for %s", path)
                    return _DROP
            api_version = self._authenticate(path, items, headers, key_id, secret, body)
            if route is None:
                raise errors.unsupported_operation(f"Unsupported operation: {path!r}.")
            if fault is not None and fault.fail:
                _LOGGER.info("[wire] fault: failing %s with OTSTunnelServerUnavailable", path)
                raise errors.server_unavailable()
            request = self._parse(route, body)
            ctx = RequestContext(self._backend, self._config.instance_name, key_id, request_id, api_version, path)
            answer = route.handler(ctx, request).SerializeToString()
            return self._reply(200, path, answer, request_id, key_id, secret)
        except ServiceError as err:
            return self.error_response(path, err, request_id, key_id, secret)
        except Exception:  # noqa: BLE001 - the server must survive any bug
            _LOGGER.exception("[wire] request %s to %s failed", request_id, path)
            return self.error_response(path, errors.internal_error(), request_id, key_id, secret)

    def reject(self, path: str, header_items: Iterable[Tuple[str, str]], err: ServiceError) -> Response:
        """An error answer for a request that could not even be read whole."""
        headers = {name.lower(): value for name, value in header_items}
        key_id = headers.get("x-ots-accesskeyid", "").strip()
        return self.error_response(path.split("?", 1)[0], err, str(uuid.uuid4()), key_id,
                                   self._config.access_keys.get(key_id))

    def _authenticate(self, path, items, headers, key_id, secret, body) -> str:
        if not key_id:
            raise errors.auth_failed("Missing header x-ots-accesskeyid.")
        if secret is None:
            raise errors.auth_failed(f"AccessKeyId {key_id!r} does not exist on this emulator.")
        instance = headers.get("x-ots-instancename", "").strip()
        if not instance:
            raise errors.auth_failed("Missing header x-ots-instancename.")
        if instance != self._config.instance_name:
            raise errors.auth_failed(
                f"Instance {instance!r} does not exist; this emulator serves {self._config.instance_name!r}."
            )
        signature = headers.get(signing.SIGNATURE_HEADER, "").strip()
        if not signature:
            raise errors.auth_failed("Missing header x-ots-signature.")
        api_version = headers.get("x-ots-apiversion", "").strip()
        if api_version not in API_VERSIONS:
            raise errors.auth_failed(
                f"Unsupported x-ots-apiversion {api_version!r}; expected one of {', '.join(API_VERSIONS)}."
            )
        self._check_date(headers.get("x-ots-date"))
        md5 = headers.get("x-ots-contentmd5")
        if md5 is None:
            raise errors.auth_failed("Missing header x-ots-contentmd5.")
        if not signing.verify_request(path, items, secret, signature):
            raise errors.auth_failed(
                f"Signature mismatch for {path!r}: the V2 signature of the request does not "
                f"match one computed with the secret of AccessKeyId {key_id!r}."
            )
        if md5.strip() != signing.content_md5(body):
            raise errors.parameter_invalid("x-ots-contentmd5 does not match the MD5 of the request body.")
        return api_version

    def _check_date(self, value: Optional[str]) -> None:
        if value is None:
            raise errors.auth_failed("Missing header x-ots-date.")
        try:
            sent = signing.parse_date(value)
        except ValueError as err:
            raise errors.auth_failed(str(err)) from None
        limit = self._config.max_date_skew_s
        if limit is None:
            return
        skew = abs(sent.timestamp() - self._clock.now_s())
        if skew > limit:
            raise errors.auth_failed(
                f"x-ots-date {value.strip()!r} differs from the server time by {skew:.0f} s, "
                f"more than the allowed {limit:.0f} s."
            )

    @staticmethod
    def _parse(route: Route, body: bytes):
        request = route.request_type()
        name = request.DESCRIPTOR.name
        try:
            request.ParseFromString(body)
        except (DecodeError, ValueError, RecursionError):
            raise errors.parameter_invalid(
                f"Request body of {len(body)} bytes is not a valid {name} protobuf message."
            ) from None
        if not request.IsInitialized():
            missing = ", ".join(request.FindInitializationErrors())
            raise errors.parameter_invalid(f"{name} is missing required field(s): {missing}.")
        return request

    def error_response(self, path, err: ServiceError, request_id, key_id, secret) -> Response:
        status = err.http_status or errors.http_status_for(err.code)
        body = errors.error_body(err.code, err.message)
        if status >= 500:
            _LOGGER.warning("[wire] %s %s -> %s %s", request_id, path, err.code, err.message)
        else:
            _LOGGER.debug("[wire] %s %s -> %s %s", request_id, path, err.code, err.message)
        return self._reply(status, path, body, request_id, key_id, secret)

    def _reply(self, status, path, body, request_id, key_id, secret) -> Response:
        now = datetime.datetime.fromtimestamp(self._clock.now_us() / 1e6, tz=datetime.timezone.utc)
        headers = [
            ("x-ots-contentmd5", signing.content_md5(body)),
            ("x-ots-requestid", request_id),
            ("x-ots-date", signing.format_date(now)),
            ("x-ots-contenttype", _CONTENT_TYPE),
        ]
        # Only a caller with a known AccessKey can check our signature; the
        # official SDK skips the check for OTSAuthFailed answers.
        if secret is not None:
            headers.append(("Authorization", signing.sign_response(path, headers, key_id, secret)))
        return Response(status, headers, body)


class _Handler(BaseHTTPRequestHandler):
    """Reads one request at a time off a keep-alive connection."""

    protocol_version = "HTTP/1.1"
    server_version = "beam-tunnel-emulator"
    timeout = _IDLE_TIMEOUT_S
    server: "EmulatorHTTPServer"

    def setup(self) -> None:
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def do_POST(self) -> None:
        self.server.busy(True)
        try:
            self._dispatch()
        finally:
            self.server.busy(False)

    # Other methods get a 405 error body from WireApp.
    do_GET = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_POST

    def _dispatch(self) -> None:
        app = self.server.app
        body = self._read_body(app)
        if body is None:
            return
        response = app.handle(self.command, self.path, self.headers.items(), body)
        self._write(response)

    def _read_body(self, app: WireApp) -> Optional[bytes]:
        limit = app.max_body_bytes
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked(app, limit)
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return b""
        try:
            length = int(length_text.strip())
            if length < 0:
                raise ValueError
        except ValueError:
            return self._refuse(app, f"Content-Length {length_text!r} is not a non-negative integer.")
        if length > limit:
            return self._refuse(app, f"Request body of {length} bytes exceeds the limit of {limit} bytes.")
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            self.close_connection = True  # the client went away mid-body
            return None
        return body

    def _read_chunked(self, app: WireApp, limit: int) -> Optional[bytes]:
        parts, total = [], 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                return self._refuse(app, "Malformed chunked request body.")
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            total += size
            if total > limit:
                return self._refuse(app, f"Request body exceeds the limit of {limit} bytes.")
            chunk = self.rfile.read(size + 2)
            if len(chunk) != size + 2:
                self.close_connection = True
                return None
            parts.append(chunk[:size])

    def _refuse(self, app: WireApp, message: str) -> None:
        # The rest of the body is unread, so this connection cannot carry
        # another request: answer, then close.
        self.close_connection = True
        self._write(app.reject(self.path, self.headers.items(), errors.parameter_invalid(message)))
        return None

    def _write(self, response: Response) -> None:
        if response.drop:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        lines = [f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Error')}"]
        lines.extend(f"{name}: {value}" for name, value in response.headers)
        lines.append(f"Content-Length: {len(response.body)}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head + response.body)

    def send_error(self, code, message=None, explain=None) -> None:
        # Malformed HTTP (bad request line, oversized headers, unknown
        # method): answer with an Error body like every other failure.
        self.close_connection = True
        text = f"Malformed HTTP request ({code}): {message or self.responses.get(code, ('',))[0]}"
        headers = getattr(self, "headers", None)
        items = headers.items() if headers is not None else []
        self._write(self.server.app.reject(getattr(self, "path", "/") or "/", items,
                                           errors.parameter_invalid(text)))

    def log_message(self, format, *args) -> None:  # noqa: A002 - stdlib signature
        _LOGGER.debug("[wire] %s " + format, self.address_string(), *args)


class EmulatorHTTPServer(ThreadingHTTPServer):
    """Threaded HTTP/1.1 server for one :class:`WireApp`.

    Tracks open connections and in-flight requests so :meth:`close_all`
    can end keep-alive connections and wait for running handlers.
    """

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: Tuple[str, int], app: WireApp) -> None:
        self.app = app
        self._conns = set()
        self._in_flight = 0
        self._cond = threading.Condition()
        super().__init__(address, _Handler)

    def track(self, conn, opened: bool) -> None:
        with self._cond:
            (self._conns.add if opened else self._conns.discard)(conn)

    def busy(self, starting: bool) -> None:
        with self._cond:
            self._in_flight += 1 if starting else -1
            if not self._in_flight:
                self._cond.notify_all()

    def close_all(self, wait_s: float) -> None:
        """Close every open connection; wait up to ``wait_s`` for handlers."""
        with self._cond:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self._cond:
            self._cond.wait_for(lambda: self._in_flight == 0, timeout=wait_s)

    def handle_error(self, request, client_address) -> None:
        # Clients resetting connections is normal; keep stderr quiet.
        _LOGGER.debug("[wire] connection from %s failed", client_address, exc_info=True)
