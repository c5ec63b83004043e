"""Wire side of the emulator's errors: the service error factories (from
:mod:`beam_tunnel.emulator.errors`) and the encoding of ``Error`` bodies.

Error bodies carry ``code`` and ``message`` only: the Java SDK parses tunnel
errors with the main API's ``Error`` message, whose field 3 is not a string,
so ``tunnel_id`` is never set (tunnel-protocol.md §1.6).
"""

from __future__ import annotations

from beam_tunnel.errors import ServiceError, for_code
from beam_tunnel.protocol import table_pb2

from ..errors import (  # noqa: F401  (re-exported for handlers)
    auth_failed,
    condition_check_fail,
    http_status_for,
    internal_error,
    method_not_allowed,
    object_already_exist,
    object_not_exist,
    parameter_invalid,
    server_unavailable,
    service_error,
    unsupported_operation,
)


def error_body(code: str, message: str) -> bytes:
    """The serialised protobuf ``Error`` for ``code`` and ``message``."""
    return table_pb2.Error(code=code, message=message).SerializeToString()


def request_timeout(message: str) -> ServiceError:
    """408 OTSRequestTimeout: the peer did not send its request in time."""
    return for_code("OTSRequestTimeout")(message, code="OTSRequestTimeout", http_status=408)


def server_busy(message: str) -> ServiceError:
    """503 OTSServerBusy: the emulator is at its connection limit; retriable."""
    return service_error("OTSServerBusy", message)
