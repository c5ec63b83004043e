"""A scripted Tunnel Service over loopback, for protocol-level client tests.

It is not the emulator: it holds no state and answers each path with the
replies a test queued for it. What it does for real is check every request
the way the service would - V2 signature (with beam_tunnel.protocol.signing
and the configured secret), ``x-ots-contentmd5`` against the body, the
AccessKey id, instance name, API version, date and STS token - and record
it, so tests can assert what went over the wire.

Usage::

    with ScriptedTunnelServer(instance_name="inst", access_key_id="id",
                              access_key_secret="secret") as server:
        server.script("/tunnel/connect", Ok(pb.ConnectResponse(client_id="c1")))
        ...
        assert server.requests_to("/tunnel/connect")[0].message.tunnel_id == "t1"
"""

from __future__ import annotations

import collections
import dataclasses
import http.server
import itertools
import threading
import time
from typing import Deque, Dict, List, Optional, Union

from google.protobuf import message as pb_message

from beam_tunnel.protocol import signing
from beam_tunnel.protocol import tunnel_pb2 as pb

# Request message type per path, to decode what the client sent.
REQUEST_TYPES = {
    "/tunnel/create": pb.CreateTunnelRequest,
    "/tunnel/delete": pb.DeleteTunnelRequest,
    "/tunnel/list": pb.ListTunnelRequest,
    "/tunnel/describe": pb.DescribeTunnelRequest,
    "/tunnel/connect": pb.ConnectRequest,
    "/tunnel/heartbeat": pb.HeartbeatRequest,
    "/tunnel/shutdown": pb.ShutdownRequest,
    "/tunnel/getcheckpoint": pb.GetCheckpointRequest,
    "/tunnel/readrecords": pb.ReadRecordsRequest,
    "/tunnel/checkpoint": pb.CheckpointRequest,
    "/tunnel/getrpo": pb.GetRpoRequest,
    "/tunnel/getrpobyoffset": pb.GetRpoRequest,
    "/tunnel/schedule": pb.ScheduleRequest,
}


@dataclasses.dataclass(frozen=True)
class Ok:
    """Answer 200 with ``message`` serialised; ``md5`` overrides the MD5 header
    (None: omit it; a string: send that value)."""

    message: pb_message.Message
    md5: Union[str, None, bool] = True


@dataclasses.dataclass(frozen=True)
class Fail:
    """Answer ``status`` with a protobuf ``Error`` body."""

    status: int
    code: str
    message: str = ""


@dataclasses.dataclass(frozen=True)
class Raw:
    """Answer ``status`` with ``body`` as is (e.g. a proxy's HTML page)."""

    status: int
    body: bytes
    content_type: str = "text/html"
    headers: tuple = ()


@dataclasses.dataclass(frozen=True)
class Drop:
    """Read the request, then close the connection without answering."""


@dataclasses.dataclass(frozen=True)
class Stall:
    """Read the request, wait ``seconds`` (past the client's read timeout),
    then close the connection without answering."""

    seconds: float


Reply = Union[Ok, Fail, Raw, Drop, Stall]


@dataclasses.dataclass(frozen=True)
class Received:
    """One request as the server saw it.

    Attributes:
      path: the URL path.
      headers: header names lower-cased -> values.
      body: the raw body.
      message: the body decoded as the path's request type (None if it
        failed to decode or the path is unknown).
      rejection: why the server refused it (None when accepted).
    """

    path: str
    headers: Dict[str, str]
    body: bytes
    message: Optional[pb_message.Message]
    rejection: Optional[str]


class ScriptedTunnelServer:
    """Threaded HTTP/1.1 server on 127.0.0.1 and a free port.

    Args:
      instance_name: the instance requests must name.
      access_key_id: the AccessKey id requests must carry.
      access_key_secret: the secret signatures are checked with.
      sts_token: when set, requests must carry it in ``x-ots-ststoken``.
      api_versions: accepted ``x-ots-apiversion`` values.
    """

    def __init__(
        self,
        *,
        instance_name: str,
        access_key_id: str,
        access_key_secret: str,
        sts_token: Optional[str] = None,
        api_versions=("2018-04-01", "2015-12-31"),
    ) -> None:
        self.instance_name = instance_name
        self.access_key_id = access_key_id
        self._secret = access_key_secret
        self.sts_token = sts_token
        self.api_versions = tuple(api_versions)
        self._lock = threading.Lock()
        self._scripts: Dict[str, Deque[Reply]] = collections.defaultdict(collections.deque)
        self._received: List[Received] = []
        self.unscripted: List[str] = []
        self._request_ids = itertools.count(1)
        self._httpd: Optional[http.server.ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self._ready = threading.Event()

    # ---- lifecycle ----------------------------------------------------------

    def start(self) -> "ScriptedTunnelServer":
        if self._httpd is not None:
            raise RuntimeError("ScriptedTunnelServer already running")
        handler = type("_BoundHandler", (_Handler,), {"server_state": self})
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._serve, name="Thread-ScriptedTunnelServer", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=10):
            raise RuntimeError("ScriptedTunnelServer did not start")
        return self

    def _serve(self) -> None:
        self._ready.set()
        self._httpd.serve_forever(poll_interval=0.05)

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)
        self._httpd = None

    def __enter__(self) -> "ScriptedTunnelServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # ---- scripting and inspection --------------------------------------------

    def script(self, path: str, *replies: Reply) -> None:
        """Queue replies for ``path``, answered in order, one per request."""
        if path not in REQUEST_TYPES:
            raise ValueError(f"unknown tunnel path {path!r}")
        with self._lock:
            self._scripts[path].extend(replies)

    @property
    def received(self) -> List[Received]:
        with self._lock:
            return list(self._received)

    def requests_to(self, path: str) -> List[Received]:
        return [r for r in self.received if r.path == path]

    def pending(self) -> Dict[str, int]:
        """Scripted replies not yet used, per path."""
        with self._lock:
            return {path: len(queue) for path, queue in self._scripts.items() if queue}

    # ---- request handling (called on server threads) -------------------------

    def _check(self, path: str, headers: Dict[str, str], body: bytes) -> Optional[str]:
        """Why the real service would refuse this request, or None."""
        for name in ("x-ots-date", "x-ots-apiversion", "x-ots-accesskeyid", "x-ots-instancename",
                     "x-ots-contentmd5", "x-ots-signature"):
            if name not in headers:
                return f"missing header {name}"
        try:
            signing.parse_date(headers["x-ots-date"])
        except ValueError as err:
            return str(err)
        if headers["x-ots-apiversion"] not in self.api_versions:
            return f"unsupported api version {headers['x-ots-apiversion']!r}"
        if headers["x-ots-accesskeyid"] != self.access_key_id:
            return f"unknown AccessKey id {headers['x-ots-accesskeyid']!r}"
        if headers["x-ots-instancename"] != self.instance_name:
            return f"wrong instance {headers['x-ots-instancename']!r}"
        if headers["x-ots-contentmd5"] != signing.content_md5(body):
            return "x-ots-contentmd5 does not match the body"
        if self.sts_token is not None and headers.get("x-ots-ststoken") != self.sts_token:
            return "missing or wrong x-ots-ststoken"
        if self.sts_token is None and "x-ots-ststoken" in headers:
            return "unexpected x-ots-ststoken"
        if not signing.verify_request(path, headers, self._secret, headers["x-ots-signature"]):
            return "signature mismatch"
        return None

    def _take(self, path: str, headers: Dict[str, str], body: bytes) -> Optional[Reply]:
        rejection = self._check(path, headers, body)
        message = None
        request_type = REQUEST_TYPES.get(path)
        if request_type is not None:
            message = request_type()
            try:
                message.ParseFromString(body)
                if not message.IsInitialized():
                    rejection = rejection or f"request lacks {message.FindInitializationErrors()}"
            except pb_message.DecodeError as err:
                message, rejection = None, rejection or f"undecodable body: {err}"
        else:
            rejection = rejection or f"unknown path {path!r}"
        with self._lock:
            self._received.append(Received(path, headers, body, message, rejection))
            if rejection is not None:
                return Fail(403, "OTSAuthFailed", rejection)
            queue = self._scripts.get(path)
            if not queue:
                self.unscripted.append(path)
                return Fail(500, "OTSTestServerUnscripted", f"no reply scripted for {path}")
            return queue.popleft()

    def _next_request_id(self) -> str:
        with self._lock:
            return f"req-{next(self._request_ids):04d}"


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_state: ScriptedTunnelServer

    def log_message(self, format, *args) -> None:  # noqa: A002 - base-class signature
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = self.server_state._take(self.path, headers, body)
        if isinstance(reply, (Drop, Stall)):
            if isinstance(reply, Stall):
                time.sleep(reply.seconds)
            self.close_connection = True
            return
        if isinstance(reply, Ok):
            status, payload, content_type = 200, reply.message.SerializePartialToString(), None
            md5 = signing.content_md5(payload) if reply.md5 is True else reply.md5
        elif isinstance(reply, Fail):
            error = pb.Error(code=reply.code)
            if reply.message:
                error.message = reply.message
            status, payload, content_type = reply.status, error.SerializeToString(), None
            md5 = signing.content_md5(payload)
        else:
            status, payload, content_type, md5 = reply.status, reply.body, reply.content_type, None
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-ots-requestid", self.server_state._next_request_id())
        if md5:
            self.send_header("x-ots-contentmd5", md5)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in getattr(reply, "headers", ()):
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
