"""The one error tree of beam_tunnel.

Everything the library raises on purpose is a :class:`TunnelError`. Code that
only wants to know whether trying again can help reads ``err.retriable``;
code that reacts to a particular service answer catches the per-code class
(``SequenceNumberMismatchError``) or compares ``err.code``. Nothing here
matches on message text.

Layers:

* :class:`ServiceError` and its per-code subclasses: the service answered
  with an error body. :func:`for_code` maps a code to its class and makes a
  new subclass for codes it has never seen, so the code is never lost.
* :class:`TransportError`: no usable answer arrived (connection refused or
  reset, timeout, a 5xx with no parsable body). :class:`TruncatedResponseError`:
  an answer began but was cut short.
* :class:`ProtocolError`: an answer arrived but breaks the protocol (bad
  MD5, unparsable protobuf). :class:`ResponseTooLargeError`: an answer over
  the client's size limits. :class:`PlainBufferError` is the codec's own.
* :class:`ConfigError`: bad arguments, raised before any request is sent.
"""

from __future__ import annotations

from typing import Dict, Optional, Type

# The longest message an error keeps.
MAX_MESSAGE_CHARS = 8192

# Unknown codes remembered by for_code(); past this, a hostile or broken
# server naming a new code on every answer must not grow memory.
_MAX_UNKNOWN_CODES = 256

__all__ = [
    "TunnelError",
    "ConfigError",
    "TransportError",
    "RequestNotSentError",
    "TruncatedResponseError",
    "ProtocolError",
    "ResponseTooLargeError",
    "PlainBufferError",
    "ServiceError",
    "ServerUnavailableError",
    "ParameterInvalidError",
    "TunnelExpiredError",
    "PermissionDeniedError",
    "AuthFailedError",
    "ResourceGoneError",
    "SequenceNumberMismatchError",
    "TunnelExistError",
    "ObjectNotExistError",
    "for_code",
    "MAX_MESSAGE_CHARS",
]


class TunnelError(Exception):
    """Root of every error beam_tunnel raises.

    Attributes:
      code: the service error code (``OTSResourceGone``), or a client-side
        pseudo-code (``OTSClientError``) when the service said nothing.
      message: the human-readable text, at most :data:`MAX_MESSAGE_CHARS`
        characters (longer text is cut, saying how much was left out, so a
        huge value or server answer cannot make a huge exception).
      request_id: the ``x-ots-requestid`` of the failed call, when known.
      http_status: the HTTP status of the failed call, when known.
      retriable: True when the same call may succeed if sent again.
    """

    retriable = False
    default_code = "OTSClientError"

    def __init__(
        self,
        message: str,
        *,
        code: Optional[str] = None,
        request_id: Optional[str] = None,
        http_status: Optional[int] = None,
    ) -> None:
        self.code = code or self.default_code
        if len(message) > MAX_MESSAGE_CHARS:
            message = f"{message[:MAX_MESSAGE_CHARS]}... ({len(message) - MAX_MESSAGE_CHARS} more characters)"
        self.message = message
        self.request_id = request_id
        self.http_status = http_status
        super().__init__(self._render())

    def _render(self) -> str:
        parts = [f"{self.code}: {self.message}"]
        if self.http_status is not None:
            parts.append(f"http_status={self.http_status}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        return " ".join(parts)

    def __reduce__(self):
        # Keyword-only constructor arguments would otherwise be lost when a
        # Beam worker pickles the error to report it.
        cls = type(self)
        # Classes made on the fly by for_code() are not importable by name.
        importable = globals().get(cls.__name__) is cls
        return (
            _rebuild_error,
            (cls if importable else None, self.message, self.code, self.request_id, self.http_status),
        )


def _rebuild_error(cls, message, code, request_id, http_status):
    cls = cls or for_code(code)
    return cls(message, code=code, request_id=request_id, http_status=http_status)


class ConfigError(TunnelError, ValueError):
    """An argument or setting is invalid; raised before anything is sent."""


class TransportError(TunnelError):
    """No usable answer arrived: refused, reset or timed-out connection, or a
    5xx reply without an error body. Safe to retry for idempotent calls."""

    retriable = True


class RequestNotSentError(TransportError):
    """The request never left this machine (name lookup failed, connection
    refused, connect timeout), so the service cannot have acted on it: safe
    to retry for every call, idempotent or not."""


class TruncatedResponseError(TransportError):
    """An answer began but did not arrive whole: its headers were cut, its
    body was shorter than its ``Content-Length`` or its chunks stopped early,
    or nothing proved a close-delimited body complete. The request reached
    the service and may have taken effect, so only idempotent calls retry it."""


class ProtocolError(TunnelError):
    """An answer arrived but violates the wire protocol (bad MD5, bad body)."""


class ResponseTooLargeError(ProtocolError):
    """An answer exceeds the client's limits (bytes, or entries in one list);
    it is refused before it is held in memory. Not retried: the same request
    would get the same answer."""


class PlainBufferError(ProtocolError, ValueError):
    """Corrupt, truncated or checksum-failing PlainBuffer bytes.

    Attributes:
      offset: byte offset in the input where the problem was found.
      cell: name of the cell being decoded, when inside one.
    """

    def __init__(self, message: str, *, offset: int, cell: Optional[str] = None) -> None:
        self.offset = offset
        self.cell = cell
        where = f"at offset {offset}"
        if cell is not None:
            where += f" in cell {cell!r}"
        super().__init__(f"{message} ({where})", code="OTSClientError")

    def __reduce__(self):
        return (_rebuild_plainbuffer_error, (self.message, self.offset, self.cell))


def _rebuild_plainbuffer_error(message, offset, cell):
    err = PlainBufferError.__new__(PlainBufferError)
    TunnelError.__init__(err, message, code="OTSClientError")
    err.offset, err.cell = offset, cell
    return err


class ServiceError(TunnelError):
    """The service answered with an error body."""

    default_code = "OTSServiceError"


class ServerUnavailableError(ServiceError):
    """The Tunnel Service is temporarily unavailable; retry with backoff."""

    default_code = "OTSTunnelServerUnavailable"
    retriable = True


class ParameterInvalidError(ServiceError):
    """A request parameter is invalid, or the tunnel itself is no longer valid."""

    default_code = "OTSParameterInvalid"


class TunnelExpiredError(ServiceError):
    """The tunnel expired (for example its full phase outlived stream retention)."""

    default_code = "OTSTunnelExpired"


class PermissionDeniedError(ServiceError):
    """The AccessKey may not perform this call."""

    default_code = "OTSPermissionDenied"


class AuthFailedError(ServiceError):
    """The request signature, AccessKey or date was rejected."""

    default_code = "OTSAuthFailed"


class ResourceGoneError(ServiceError):
    """This client's lease is gone (heartbeat timeout or version conflict);
    reconnect with a new client id."""

    default_code = "OTSResourceGone"


class SequenceNumberMismatchError(ServiceError):
    """A checkpoint's sequence number is not stored + 1; re-read the checkpoint."""

    default_code = "OTSSequenceNumberNotMatch"


class TunnelExistError(ServiceError):
    """A tunnel with this name already exists on the table."""

    default_code = "OTSTunnelExist"


class ObjectNotExistError(ServiceError):
    """The table or tunnel does not exist."""

    default_code = "OTSObjectNotExist"


_BY_CODE: Dict[str, Type[ServiceError]] = {
    cls.default_code: cls
    for cls in (
        ServerUnavailableError,
        ParameterInvalidError,
        TunnelExpiredError,
        PermissionDeniedError,
        AuthFailedError,
        ResourceGoneError,
        SequenceNumberMismatchError,
        TunnelExistError,
        ObjectNotExistError,
    )
}


_KNOWN_CODES = len(_BY_CODE)


def for_code(code: str) -> Type[ServiceError]:
    """The error class for a service error code.

    Unknown codes get a new :class:`ServiceError` subclass named after the code
    (cached, for the first 256 unknown codes), so callers can still read and
    compare ``err.code``.
    """
    cls = _BY_CODE.get(code)
    if cls is None:
        name = "".join(ch for ch in code[:128] if ch.isalnum()) or "Unknown"
        cls = type(f"{name}Error", (ServiceError,), {"default_code": code, "__module__": __name__})
        if len(_BY_CODE) < _KNOWN_CODES + _MAX_UNKNOWN_CODES:
            _BY_CODE[code] = cls
    return cls
