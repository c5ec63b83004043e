"""HTTP side of the emulator: request checks, dispatch, signed answers.

:class:`WireApp` turns one request (method, path, headers, body) into one
:class:`Response` without touching sockets; ``transport.EmulatorHTTPServer``
feeds it from the network. Checks, in order: method; injected delay or
dropped connection; AccessKey, instance, API version, date skew, V2
signature, content MD5 (of the body as sent); compression headers and
request decompression; path; injected failure; body. Every failure is an
``Error`` body with the real code and a message of at most
:data:`MAX_ERROR_MESSAGE_CHARS` characters; an unexpected exception is
logged and answered with 500 ``OTSInternalServerError``, so no request can
take the server down.
"""

from __future__ import annotations

import datetime
import logging
import time
import uuid
from typing import Dict, Iterable, List, NamedTuple, Optional, Tuple

from google.protobuf.message import DecodeError

from beam_tunnel.errors import ServiceError
from beam_tunnel.protocol import signing

from . import compression, errors
from .routes import RequestContext, Route

__all__ = ["Response", "WireApp", "API_VERSIONS", "MAX_ERROR_MESSAGE_CHARS"]

_LOGGER = logging.getLogger(__name__)

# 2015-12-31: the table API and the Java tunnel client; 2018-04-01: the Go
# and Elixir tunnel clients (tunnel-protocol.md §1.3).
API_VERSIONS = ("2015-12-31", "2018-04-01")
_CONTENT_TYPE = "protocol buffer"
# Error messages quote request values; a hostile request must not be able
# to make the answer (or the memory behind it) larger than this.
MAX_ERROR_MESSAGE_CHARS = 2048
# A message with many unset required fields (say a million empty
# sub-messages) names the first few and counts the rest up to a cap, so
# neither the walk nor the message grows with the request.
_MISSING_FIELDS_NAMED = 10
_MISSING_FIELDS_COUNTED = 1000


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
        # Errors are compressed too when asked for properly (the Java SDK
        # inflates every answer before looking at its status).
        compress = headers.get(compression.RESPONSE_TYPE_HEADER, "").strip().lower() == "deflate"
        try:
            if method != "POST":
                raise errors.method_not_allowed(f"Method {method[:32]} is not allowed; every API is POST.")
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
            compression.wants_compressed_response(headers)
            body = compression.decompress_request(headers, body, self.max_body_bytes)
            if route is None:
                raise errors.unsupported_operation(f"Unsupported operation: {path!r}.")
            if fault is not None and fault.fail:
                _LOGGER.info("[wire] fault: failing %s with OTSTunnelServerUnavailable", path)
                raise errors.server_unavailable()
            request = self._parse(route, body)
            ctx = RequestContext(self._backend, self._config.instance_name, key_id, request_id, api_version, path)
            answer = route.handler(ctx, request).SerializeToString()
            return self._reply(200, path, answer, request_id, key_id, secret, compress)
        except ServiceError as err:
            return self.error_response(path, err, request_id, key_id, secret, compress)
        except Exception:  # noqa: BLE001 - the server must survive any bug
            _LOGGER.exception("[wire] request %s to %s failed", request_id, path[:200])
            return self.error_response(path, errors.internal_error(), request_id, key_id, secret, compress)

    def reject(self, path: str, header_items: Iterable[Tuple[str, str]], err: ServiceError) -> Response:
        """An error answer for a request that could not even be read whole
        (never compressed: its headers were not checked)."""
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
            raise errors.parameter_invalid(f"{name} is missing required field(s): {_missing_fields(request)}.")
        return request

    def error_response(self, path, err: ServiceError, request_id, key_id, secret, compress=False) -> Response:
        status = err.http_status or errors.http_status_for(err.code)
        message = _bounded(err.message or "")
        body = errors.error_body(err.code, message)
        if status >= 500:
            _LOGGER.warning("[wire] %s %s -> %s %s", request_id, path[:200], err.code, message)
        else:
            _LOGGER.debug("[wire] %s %s -> %s %s", request_id, path[:200], err.code, message)
        return self._reply(status, path, body, request_id, key_id, secret, compress)

    def _reply(self, status, path, body, request_id, key_id, secret, compress=False) -> Response:
        now = datetime.datetime.fromtimestamp(self._clock.now_us() / 1e6, tz=datetime.timezone.utc)
        headers = [
            # Of the uncompressed body: see compression.py.
            ("x-ots-contentmd5", signing.content_md5(body)),
            ("x-ots-requestid", request_id),
            ("x-ots-date", signing.format_date(now)),
            ("x-ots-contenttype", _CONTENT_TYPE),
        ]
        if compress:
            body, extra = compression.compress_response(body)
            headers.extend(extra or ())
        # Only a caller with a known AccessKey can check our signature; the
        # official SDK skips the check for OTSAuthFailed answers.
        if secret is not None:
            headers.append(("Authorization", signing.sign_response(path, headers, key_id, secret)))
        return Response(status, headers, body)


def _bounded(message: str) -> str:
    if len(message) <= MAX_ERROR_MESSAGE_CHARS:
        return message
    return f"{message[:MAX_ERROR_MESSAGE_CHARS]}... ({len(message) - MAX_ERROR_MESSAGE_CHARS} more characters)"


def _is_required(field) -> bool:
    required = getattr(field, "is_required", None)
    return required if required is not None else field.label == field.LABEL_REQUIRED


def _is_repeated(field) -> bool:
    repeated = getattr(field, "is_repeated", None)
    return repeated if repeated is not None else field.label == field.LABEL_REPEATED


def _missing_fields(message) -> str:
    """The unset required fields of ``message``, bounded (see the constants)."""
    names: List[str] = []
    count = _count_missing(message, "", names, 0)
    shown = ", ".join(names)
    if count >= _MISSING_FIELDS_COUNTED:
        return f"{shown}, and at least {count - len(names)} more"
    if count > len(names):
        return f"{shown}, and {count - len(names)} more"
    return shown


def _count_missing(message, prefix: str, names: List[str], count: int) -> int:
    # Depth-first, so memory stays proportional to the nesting depth (which
    # the protobuf parser bounds), never to the number of sub-messages.
    for field in message.DESCRIPTOR.fields:
        if count >= _MISSING_FIELDS_COUNTED:
            break
        if _is_required(field) and not message.HasField(field.name):
            count += 1
            if len(names) < _MISSING_FIELDS_NAMED:
                names.append(prefix + field.name)
        elif field.message_type is not None:
            if _is_repeated(field):
                for index, item in enumerate(getattr(message, field.name)):
                    if count >= _MISSING_FIELDS_COUNTED:
                        break
                    if not item.IsInitialized():
                        count = _count_missing(item, f"{prefix}{field.name}[{index}].", names, count)
            elif message.HasField(field.name):
                item = getattr(message, field.name)
                if not item.IsInitialized():
                    count = _count_missing(item, f"{prefix}{field.name}.", names, count)
    return count
