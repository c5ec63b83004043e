"""The only module that does HTTP, and the only place errors are translated.

One :class:`HttpTransport` takes its settings from one ``requests.Session``
(its own, or the caller's) and sends through its own pooled adapter, whose
connections keep each attempt within its time (:mod:`._deadline`, the only
other code below ``requests``). :meth:`HttpTransport.call` POSTs one protobuf request and returns
the decoded protobuf response, or raises from :mod:`beam_tunnel.errors`:

===========================================  ==================================
What happened                                Raised
===========================================  ==================================
name lookup failed, refused, connect timeout RequestNotSentError (retriable)
connection dropped or read timeout after     TransportError (retriable)
sending; the answer not whole within the
read timeout (a trickle)
headers cut, body shorter than its           TruncatedResponseError (retriable)
Content-Length or its chunks, or a body
ended by closing without an MD5 to prove
it whole
more than MAX_ANSWER_BYTES bytes or          ResponseTooLargeError
MAX_ANSWER_ENTRIES entries in one answer
non-2xx with a protobuf ``Error`` body       ``errors.for_code(code)``
5xx without a protobuf ``Error`` body        TransportError, code
                                             OTSTunnelServerUnavailable (as
                                             the Go SDK maps it)
other non-2xx without an ``Error`` body      ProtocolError with the status
(redirects are not followed)
``x-ots-contentmd5`` differs from the body   ProtocolError
ambiguous framing (two Content-Lengths)      ProtocolError
2xx body that is not the expected message    ProtocolError
===========================================  ==================================

There is no retry here; :mod:`beam_tunnel.client.retry` decides. Response
``authorization``, ``x-ots-contenttype`` and ``x-ots-contentmd5`` headers are
not required (tunnel responses need not carry them); the MD5 is checked
when present.

Time: one attempt connects and sends within the connect timeout, and
receives the whole answer within the read timeout counted from the sent
request (wall clock, however slowly the bytes come; see
:mod:`beam_tunnel.client._deadline`). Size: the body is read in blocks and
refused as soon as it passes MAX_ANSWER_BYTES, and never decoded when it
holds more than MAX_ANSWER_ENTRIES entries. Text from the server is quoted
in messages only in part (see :func:`beam_tunnel.client._answer.clip`).
"""

from __future__ import annotations

import http.client
import logging
import re
from typing import NamedTuple, Optional, Type, TypeVar

import requests
import urllib3
from google.protobuf import message as _pb_message
from requests.adapters import HTTPAdapter

from beam_tunnel import errors
from beam_tunnel.client import _answer
from beam_tunnel.client._deadline import Attempt, DeadlineAdapter
from beam_tunnel.client.auth import OtsV2Auth
from beam_tunnel.protocol import signing
from beam_tunnel.protocol import tunnel_pb2

__all__ = ["HttpTransport", "CallInfo", "user_agent", "MAX_ANSWER_BYTES", "MAX_ANSWER_ENTRIES"]

_LOGGER = logging.getLogger(__name__)

_M = TypeVar("_M", bound=_pb_message.Message)

# The largest answer body accepted. The service's largest answers are
# ReadRecords batches of at most 4 MiB; 16 times that leaves room for a
# service that raises its limit while a broken or hostile peer still cannot
# make the client hold more than this.
MAX_ANSWER_BYTES = 64 * 1024 * 1024

# The most entries (top-level fields: records, tunnels, channels) one answer
# may hold. Each decodes into a message of its own, about a hundred bytes
# however small it was on the wire, so a body of empty entries would cost
# up to 75 times its size; a real answer holds thousands at most.
MAX_ANSWER_ENTRIES = 1_000_000

# Bytes read from the socket at a time while streaming a body.
_BLOCK_BYTES = 64 * 1024

# How much of a non-protobuf error body to quote in the error message: enough
# to recognise a proxy's HTML page, short enough for one log line.
_SNIPPET_CHARS = 200

# How much of the service's own error message to quote.
_SERVICE_MESSAGE_CHARS = 2048

# What a user can do about a code that stops a call at once.
_HINTS = {
    "OTSTunnelExpired": "the tunnel can no longer be read; create a new tunnel (it reads the full data again)",
    "OTSParameterInvalid": "the service rejected an argument or the tunnel is no longer valid; "
    "check the ids and names passed, and describe the tunnel to see whether it still exists",
    "OTSAuthFailed": "check the AccessKey id and secret (and STS token), that the instance "
    "name matches the endpoint, and that this machine's clock is correct",
}


def user_agent() -> str:
    """The ``User-Agent`` header value, naming this library and requests."""
    return f"beam-tunnel-python/0.1 python-requests/{requests.__version__}"


class CallInfo(NamedTuple):
    """Facts about one successful HTTP exchange.

    Attributes:
      request_id: the service's ``x-ots-requestid``, or None.
      size_bytes: the response body size in bytes.
    """

    request_id: Optional[str]
    size_bytes: int


class HttpTransport:
    """POSTs protobuf requests to one endpoint and decodes the answers.

    Args:
      endpoint: ``http(s)://host[:port]`` without a path (already validated).
      auth: signs every request.
      connect_timeout_s: seconds to wait for a connection.
      read_timeout_s: seconds to wait for the answer once connected.
      pool_size: connections kept open; extra concurrent requests open a
        connection that is not kept rather than wait.
      session: a ``requests.Session`` whose headers, cookies, proxies,
        TLS settings (``verify``, ``cert``) and response hooks requests use,
        instead of a new one. Requests go through this transport's own adapter, which bounds
        each attempt's time, never through adapters mounted on the session;
        nothing is mounted on it, and :meth:`close` does not close it.
    """

    def __init__(
        self,
        endpoint: str,
        auth: OtsV2Auth,
        *,
        connect_timeout_s: float,
        read_timeout_s: float,
        pool_size: int,
        session: Optional[requests.Session] = None,
    ) -> None:
        self._endpoint = endpoint
        self._auth = auth
        self._timeout = (connect_timeout_s, read_timeout_s)
        self._owns_session = session is None
        self._session = requests.Session() if session is None else session
        # max_retries=0: every retry decision belongs to RetryPolicy, which
        # knows whether the call is idempotent.
        self._adapter: HTTPAdapter = DeadlineAdapter(
            pool_connections=1, pool_maxsize=pool_size, max_retries=0, pool_block=False
        )
        # identity: the body checked against x-ots-contentmd5 and reported as
        # size_bytes must be the bytes the service sent.
        self._headers = {"User-Agent": user_agent(), "Accept-Encoding": "identity"}

    @property
    def owns_session(self) -> bool:
        """True when the session was made here (and is closed by :meth:`close`)."""
        return self._owns_session

    def close(self) -> None:
        """Close the pooled connections, and the session if this transport made it."""
        self._adapter.close()
        if self._owns_session:
            self._session.close()

    def call(self, operation: str, path: str, request: _pb_message.Message, response_type: Type[_M]):
        """Send one request; return ``(response message, CallInfo)``.

        The attempt ends within the connect timeout plus the read timeout
        (see the module docstring), whatever the server does.

        Args:
          operation: the API name for messages, e.g. "ReadRecords".
          path: the URL path, e.g. "/tunnel/readrecords".
          request: the protobuf request (all required fields set).
          response_type: the protobuf class of a successful answer.

        Raises:
          TunnelError: a subclass per the table in the module docstring.
        """
        body = request.SerializeToString()
        url = self._endpoint + path
        with Attempt(*self._timeout) as attempt:
            try:
                reply = self._send(url, body)
            except requests.exceptions.RequestException as err:
                raise _translate_exception(operation, url, err, attempt, self._timeout) from err
            try:
                content = self._read_body(operation, url, reply, attempt)
            finally:
                reply.close()
        request_id = _answer.clip(reply.headers.get("x-ots-requestid"), 128)
        status = reply.status_code
        _check_md5(operation, reply, content, request_id)
        if not 200 <= status < 300:
            raise self._error_from_reply(operation, status, content, request_id)
        if _answer.entries_over(content, MAX_ANSWER_ENTRIES):
            raise errors.ResponseTooLargeError(
                f"{operation}: the {len(content)}-byte answer holds more than {MAX_ANSWER_ENTRIES} entries, "
                "the client's limit; it was not decoded",
                request_id=request_id,
                http_status=status,
            )
        message = response_type()
        try:
            message.ParseFromString(content)
        except _pb_message.DecodeError as err:
            raise errors.ProtocolError(
                f"{operation}: the {len(content)}-byte answer is not a {response_type.__name__}: "
                f"{_answer.clip(str(err), 200)}",
                request_id=request_id,
                http_status=status,
            ) from None
        if not message.IsInitialized():
            raise errors.ProtocolError(
                f"{operation}: the answer lacks required field(s) {_answer.missing_fields(message)} "
                f"of {response_type.__name__}",
                request_id=request_id,
                http_status=status,
            )
        _LOGGER.debug("[http] %s ok: HTTP %d, %d bytes, request_id=%s", operation, status, len(content), request_id)
        return message, CallInfo(request_id, len(content))

    def _send(self, url: str, body: bytes) -> requests.Response:
        """POST through the deadline adapter, with the session's settings;
        returns once the headers are in (the body is still on the wire)."""
        session = self._session
        prepared = session.prepare_request(
            requests.Request("POST", url, data=body, headers=self._headers, auth=self._auth)
        )
        settings = session.merge_environment_settings(prepared.url, {}, True, None, None)
        # No redirects (the adapter never follows them): the signature covers
        # the path, and a request the service did not ask to move should not
        # be re-sent elsewhere.
        reply = self._adapter.send(
            prepared,
            stream=True,
            timeout=self._timeout,
            verify=settings["verify"],
            cert=settings["cert"],
            proxies=settings["proxies"],
        )
        # The session's response hooks still see every answer (headers in,
        # body not yet read), as they would through session.send().
        return requests.hooks.dispatch_hook("response", prepared.hooks, reply)

    def _read_body(self, operation: str, url: str, reply: requests.Response, attempt: Attempt) -> bytes:
        """The whole body, or an error saying how it fell short or overflowed."""
        headers = reply.headers
        request_id = _answer.clip(headers.get("x-ots-requestid"), 128)
        chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        declared = None if chunked else _content_length(operation, reply, request_id)
        if declared is not None and declared > MAX_ANSWER_BYTES:
            raise errors.ResponseTooLargeError(
                f"{operation}: the answer announces {declared} bytes (Content-Length), more than the "
                f"client's limit of {MAX_ANSWER_BYTES} bytes; it was not read",
                request_id=request_id,
                http_status=reply.status_code,
            )
        blocks = []
        received = 0
        try:
            while True:
                block = reply.raw.read(_BLOCK_BYTES)
                if not block:
                    break
                received += len(block)
                if received > MAX_ANSWER_BYTES:
                    raise errors.ResponseTooLargeError(
                        f"{operation}: the answer has more than {MAX_ANSWER_BYTES} bytes, the client's "
                        "limit; reading stopped there",
                        request_id=request_id,
                        http_status=reply.status_code,
                    )
                blocks.append(block)
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as err:
            if attempt.expired:
                raise errors.TransportError(_too_slow(operation, url, attempt), request_id=request_id) from None
            if isinstance(err, urllib3.exceptions.ReadTimeoutError):
                raise errors.TransportError(
                    f"{operation}: the answer from {url} stalled after {received} body bytes: nothing more "
                    f"within the read timeout ({attempt.read_timeout_s:g} s)",
                    request_id=request_id,
                ) from None
            raise errors.TruncatedResponseError(
                _short_body(operation, received, declared, chunked) + f" ({_reason(err)})",
                request_id=request_id,
                http_status=reply.status_code,
            ) from None
        if declared is not None and received != declared:
            raise errors.TruncatedResponseError(
                _short_body(operation, received, declared, chunked),
                request_id=request_id,
                http_status=reply.status_code,
            )
        if 200 <= reply.status_code < 300 and declared is None and not chunked and "x-ots-contentmd5" not in headers:
            raise errors.TruncatedResponseError(
                f"{operation}: the {received}-byte answer has no Content-Length, no chunked encoding and "
                "no x-ots-contentmd5, so nothing shows it arrived whole (a cut connection looks the same)",
                request_id=request_id,
                http_status=reply.status_code,
            )
        return b"".join(blocks)

    def _error_from_reply(self, operation: str, status: int, content: bytes, request_id: Optional[str]):
        error = tunnel_pb2.Error()
        try:
            error.ParseFromString(content)
            parsed = error.IsInitialized() and _is_error_code(error.code)
        except _pb_message.DecodeError:
            parsed = False
        if parsed:
            cls = errors.for_code(error.code)
            text = f"{operation}: {_answer.clip(error.message, _SERVICE_MESSAGE_CHARS) or 'no message'}"
            hint = _HINTS.get(error.code)
            if error.code == "OTSPermissionDenied":
                hint = (
                    f"check that the RAM policy of AccessKey {self._auth.access_key_id!r} allows "
                    f"ots:{operation} on this instance"
                )
            if hint:
                text += f" ({hint})"
            _LOGGER.debug("[http] %s failed: HTTP %d %s request_id=%s", operation, status, error.code, request_id)
            return cls(text, code=error.code, request_id=request_id, http_status=status)
        snippet = content[:_SNIPPET_CHARS].decode("utf-8", "replace")
        text = f"{operation}: HTTP {status} with a body that is not a Tunnel error ({len(content)} bytes: {snippet!r})"
        if status >= 500:
            # Usually a proxy or load balancer in front of the service.
            return errors.TransportError(
                text, code="OTSTunnelServerUnavailable", request_id=request_id, http_status=status
            )
        return errors.ProtocolError(text, request_id=request_id, http_status=status)


# What a service error code looks like ("OTSTunnelServerUnavailable"); anything
# else is not taken for one, so a hostile body cannot name an error class.
_ERROR_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,127}$")


def _is_error_code(code: str) -> bool:
    return bool(_ERROR_CODE.match(code))


def _content_length(operation: str, reply: requests.Response, request_id: Optional[str]) -> Optional[int]:
    value = reply.headers.get("Content-Length")
    if value is None:
        return None
    # Repeated headers arrive joined by commas; equal copies are harmless.
    copies = {part.strip() for part in value.split(",")}
    if len(copies) != 1 or not next(iter(copies)).isdigit():
        raise errors.ProtocolError(
            f"{operation}: Content-Length {_answer.clip(value, 64)!r} is not one byte count",
            request_id=request_id,
            http_status=reply.status_code,
        )
    return int(copies.pop())


def _short_body(operation: str, received: int, declared: Optional[int], chunked: bool) -> str:
    if declared is not None:
        return (
            f"{operation}: the answer ended after {received} of the {declared} bytes its "
            "Content-Length announced"
        )
    if chunked:
        return f"{operation}: the chunked answer ended after {received} bytes, before its last chunk"
    return f"{operation}: the answer broke off after {received} bytes"


def _too_slow(operation: str, url: str, attempt: Attempt) -> str:
    return (
        f"{operation}: the answer from {url} did not arrive whole within the read timeout "
        f"({attempt.read_timeout_s:g} s): {attempt.received} bytes came in that time "
        "(the server stalls or sends too slowly)"
    )


def _check_md5(operation: str, reply: requests.Response, content: bytes, request_id: Optional[str]) -> None:
    claimed = reply.headers.get("x-ots-contentmd5")
    if claimed is None:
        return
    actual = signing.content_md5(content)
    if claimed.strip() != actual:
        raise errors.ProtocolError(
            f"{operation}: x-ots-contentmd5 {_answer.clip(claimed, 64)!r} does not match the {len(content)}-byte body "
            f"(MD5 {actual!r}); the answer was corrupted in transit",
            request_id=request_id,
            http_status=reply.status_code,
        )


# NewConnectionError also covers urllib3 2's NameResolutionError.
_NOT_SENT_CAUSES = (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError)


def _translate_exception(
    operation: str, url: str, err: requests.exceptions.RequestException, attempt: Attempt, timeout
) -> errors.TunnelError:
    if attempt.headers_cut:
        return errors.TruncatedResponseError(
            f"{operation}: the answer from {url} was cut inside its headers: the connection closed "
            f"before the blank line that ends them ({attempt.received} bytes came)"
        )
    if isinstance(err, requests.exceptions.ConnectTimeout):
        return errors.RequestNotSentError(f"{operation}: timed out connecting to {url}")
    if attempt.expired:
        if attempt.answer_started:
            return errors.TransportError(_too_slow(operation, url, attempt))
        return errors.TransportError(
            f"{operation}: could not send the request to {url} within the connect timeout ({timeout[0]:g} s)"
        )
    if isinstance(err, requests.exceptions.ReadTimeout):
        return errors.TransportError(
            f"{operation}: no answer from {url} within the read timeout ({timeout[1]:g} s)"
        )
    if isinstance(err, requests.exceptions.SSLError):
        return errors.TransportError(f"{operation}: TLS failure talking to {url}: {_reason(err)}")
    if isinstance(err, requests.exceptions.ConnectionError):
        cause = err.args[0] if err.args else None
        reason = getattr(cause, "reason", cause)
        if isinstance(reason, _NOT_SENT_CAUSES):
            return errors.RequestNotSentError(f"{operation}: cannot connect to {url}: {_reason(err)}")
        return errors.TransportError(f"{operation}: connection to {url} lost: {_reason(err)}")
    if _caused_by(err, urllib3.exceptions.InvalidHeader):
        # Ambiguous framing (e.g. two different Content-Lengths): the same
        # server would answer the same way again.
        return errors.ProtocolError(f"{operation}: the answer from {url} has invalid headers: {_reason(err)}")
    return errors.TransportError(f"{operation}: HTTP request to {url} failed: {_reason(err)}")


def _caused_by(err: BaseException, kind) -> bool:
    seen = 0
    while err is not None and seen < 6:
        if isinstance(err, kind):
            return True
        nxt = getattr(err, "reason", None) or err.__context__ or (err.args[0] if err.args else None)
        err = nxt if isinstance(nxt, BaseException) else None
        seen += 1
    return False


def _reason(err: BaseException) -> str:
    # urllib3 nests its reason a few levels deep; the innermost text is the
    # one a user can act on ("Connection refused", "Remote end closed ...").
    inner: Optional[BaseException] = err
    seen = 0
    while inner is not None and seen < 5:
        nxt = getattr(inner, "reason", None)
        if nxt is None and inner.args and isinstance(inner.args[-1], BaseException):
            nxt = inner.args[-1]
        if not isinstance(nxt, BaseException):
            break
        inner, seen = nxt, seen + 1
    text = _answer.clip(str(inner) if inner is not None else str(err), 300)
    return f"{type(inner).__name__}: {text}" if inner is not None else text
