"""The only module that does HTTP, and the only place errors are translated.

One :class:`HttpTransport` owns one ``requests.Session`` with a pooled
adapter. :meth:`HttpTransport.call` POSTs one protobuf request and returns
the decoded protobuf response, or raises from :mod:`beam_tunnel.errors`:

===========================================  ==================================
What happened                                Raised
===========================================  ==================================
name lookup failed, refused, connect timeout RequestNotSentError (retriable)
connection dropped or read timeout after     TransportError (retriable)
sending
non-2xx with a protobuf ``Error`` body       ``errors.for_code(code)``
5xx without a protobuf ``Error`` body        TransportError, code
                                             OTSTunnelServerUnavailable (as
                                             the Go SDK maps it)
other non-2xx without an ``Error`` body      ProtocolError with the status
(redirects are not followed)
``x-ots-contentmd5`` differs from the body   ProtocolError
2xx body that is not the expected message    ProtocolError
===========================================  ==================================

There is no retry here; :mod:`beam_tunnel.client.retry` decides. Response
``authorization``, ``x-ots-contenttype`` and ``x-ots-contentmd5`` headers are
not required (tunnel responses need not carry them); the MD5 is checked
when present.
"""

from __future__ import annotations

import logging
from typing import NamedTuple, Optional, Type, TypeVar

import requests
import urllib3
from google.protobuf import message as _pb_message
from requests.adapters import HTTPAdapter

from beam_tunnel import errors
from beam_tunnel.client.auth import OtsV2Auth
from beam_tunnel.protocol import signing
from beam_tunnel.protocol import tunnel_pb2

__all__ = ["HttpTransport", "CallInfo", "user_agent"]

_LOGGER = logging.getLogger(__name__)

_M = TypeVar("_M", bound=_pb_message.Message)

# How much of a non-protobuf error body to quote in the error message: enough
# to recognise a proxy's HTML page, short enough for one log line.
_SNIPPET_CHARS = 200

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
      session: a ``requests.Session`` to use instead of a new one. It is used
        as is (no adapter mounted) and is not closed by :meth:`close`.
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
        if session is None:
            session = requests.Session()
            # max_retries=0: every retry decision belongs to RetryPolicy,
            # which knows whether the call is idempotent.
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0, pool_block=False)
            session.mount(endpoint + "/", adapter)
        self._session = session
        # identity: the body checked against x-ots-contentmd5 and reported as
        # size_bytes must be the bytes the service sent.
        self._headers = {"User-Agent": user_agent(), "Accept-Encoding": "identity"}

    @property
    def owns_session(self) -> bool:
        """True when the session was made here (and is closed by :meth:`close`)."""
        return self._owns_session

    def close(self) -> None:
        """Close the session's pooled connections if this transport made it."""
        if self._owns_session:
            self._session.close()

    def call(self, operation: str, path: str, request: _pb_message.Message, response_type: Type[_M]):
        """Send one request; return ``(response message, CallInfo)``.

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
        try:
            # No redirects: the signature covers the path, and a request
            # the service did not ask to move should not be re-sent elsewhere.
            reply = self._session.post(
                url, data=body, headers=self._headers, auth=self._auth, timeout=self._timeout,
                allow_redirects=False,
            )
            content = reply.content
        except requests.exceptions.RequestException as err:
            raise _translate_exception(operation, url, err) from err
        request_id = reply.headers.get("x-ots-requestid")
        status = reply.status_code
        _check_md5(operation, reply, content, request_id)
        if not 200 <= status < 300:
            raise self._error_from_reply(operation, status, content, request_id)
        message = response_type()
        try:
            message.ParseFromString(content)
        except _pb_message.DecodeError as err:
            raise errors.ProtocolError(
                f"{operation}: the {len(content)}-byte answer is not a {response_type.__name__}: {err}",
                request_id=request_id,
                http_status=status,
            ) from None
        if not message.IsInitialized():
            missing = ", ".join(message.FindInitializationErrors())
            raise errors.ProtocolError(
                f"{operation}: the answer lacks required field(s) {missing} of {response_type.__name__}",
                request_id=request_id,
                http_status=status,
            )
        _LOGGER.debug("[http] %s ok: HTTP %d, %d bytes, request_id=%s", operation, status, len(content), request_id)
        return message, CallInfo(request_id, len(content))

    def _error_from_reply(self, operation: str, status: int, content: bytes, request_id: Optional[str]):
        error = tunnel_pb2.Error()
        try:
            error.ParseFromString(content)
            parsed = error.IsInitialized() and bool(error.code)
        except _pb_message.DecodeError:
            parsed = False
        if parsed:
            cls = errors.for_code(error.code)
            text = f"{operation}: {error.message or 'no message'}"
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


def _check_md5(operation: str, reply: requests.Response, content: bytes, request_id: Optional[str]) -> None:
    claimed = reply.headers.get("x-ots-contentmd5")
    if claimed is None:
        return
    actual = signing.content_md5(content)
    if claimed.strip() != actual:
        raise errors.ProtocolError(
            f"{operation}: x-ots-contentmd5 {claimed!r} does not match the {len(content)}-byte body "
            f"(MD5 {actual!r}); the answer was corrupted in transit",
            request_id=request_id,
            http_status=reply.status_code,
        )


# NewConnectionError also covers urllib3 2's NameResolutionError.
_NOT_SENT_CAUSES = (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError)


def _translate_exception(operation: str, url: str, err: requests.exceptions.RequestException) -> errors.TunnelError:
    if isinstance(err, requests.exceptions.ConnectTimeout):
        return errors.RequestNotSentError(f"{operation}: timed out connecting to {url}")
    if isinstance(err, requests.exceptions.ReadTimeout):
        return errors.TransportError(f"{operation}: no answer from {url} within the read timeout")
    if isinstance(err, requests.exceptions.SSLError):
        return errors.TransportError(f"{operation}: TLS failure talking to {url}: {_reason(err)}")
    if isinstance(err, requests.exceptions.ConnectionError):
        cause = err.args[0] if err.args else None
        reason = getattr(cause, "reason", cause)
        if isinstance(reason, _NOT_SENT_CAUSES):
            return errors.RequestNotSentError(f"{operation}: cannot connect to {url}: {_reason(err)}")
        return errors.TransportError(f"{operation}: connection to {url} lost: {_reason(err)}")
    return errors.TransportError(f"{operation}: HTTP request to {url} failed: {_reason(err)}")


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
    text = str(inner) if inner is not None else str(err)
    return f"{type(inner).__name__}: {text}" if inner is not None else text
