"""Service errors the emulator answers with, one factory per error code.

The emulator raises the library's own error tree: each factory returns an
instance of the :mod:`beam_tunnel.errors` class for its code (via
``for_code``) with ``http_status`` set, so tests can catch
``ObjectNotExistError`` from a model call just as a client would from the
wire. The wire layer turns any :class:`~beam_tunnel.errors.ServiceError`
into a protobuf ``Error`` body with that status.

This module is a leaf: both the model and the wire layer import it.
"""

from __future__ import annotations

from typing import Dict

from beam_tunnel.errors import ServiceError, for_code

__all__ = [
    "http_status_for",
    "service_error",
    "parameter_invalid",
    "object_not_exist",
    "object_already_exist",
    "condition_check_fail",
    "auth_failed",
    "unsupported_operation",
    "method_not_allowed",
    "internal_error",
    "server_unavailable",
]

# Statuses the SDK sources confirm (400 OTSParameterInvalid, 503
# OTSTunnelServerUnavailable) and the main API's documented ones; the rest
# follow tunnel-protocol.md §7. Clients key on the code, not the status.
_HTTP_STATUS: Dict[str, int] = {
    "OTSParameterInvalid": 400,
    "OTSUnsupportOperation": 400,
    "OTSTunnelExist": 400,
    "OTSSequenceNumberNotMatch": 400,
    "OTSTunnelExpired": 400,
    "OTSAuthFailed": 403,
    "OTSPermissionDenied": 403,
    "OTSConditionCheckFail": 403,
    "OTSObjectNotExist": 404,
    "OTSMethodNotAllowed": 405,
    "OTSObjectAlreadyExist": 409,
    "OTSResourceGone": 410,
    "OTSInternalServerError": 500,
    "OTSServerBusy": 503,
    "OTSTunnelServerUnavailable": 503,
}


def http_status_for(code: str) -> int:
    """The HTTP status the emulator sends with error ``code`` (400 if unknown)."""
    return _HTTP_STATUS.get(code, 400)


def service_error(code: str, message: str) -> ServiceError:
    """An error with any service ``code``; prefer the named factories."""
    return for_code(code)(message, code=code, http_status=http_status_for(code))


def parameter_invalid(message: str) -> ServiceError:
    """400 OTSParameterInvalid: a request field or value is wrong."""
    return service_error("OTSParameterInvalid", message)


def object_not_exist(message: str) -> ServiceError:
    """404 OTSObjectNotExist: the table (or tunnel) does not exist."""
    return service_error("OTSObjectNotExist", message)


def object_already_exist(message: str) -> ServiceError:
    """409 OTSObjectAlreadyExist: e.g. CreateTable of an existing table."""
    return service_error("OTSObjectAlreadyExist", message)


def condition_check_fail(message: str = "Condition check failed.") -> ServiceError:
    """403 OTSConditionCheckFail: a row existence condition did not hold."""
    return service_error("OTSConditionCheckFail", message)


def auth_failed(message: str) -> ServiceError:
    """403 OTSAuthFailed: signature, AccessKey, instance or date rejected."""
    return service_error("OTSAuthFailed", message)


def unsupported_operation(message: str) -> ServiceError:
    """400 OTSUnsupportOperation: no such API path."""
    return service_error("OTSUnsupportOperation", message)


def method_not_allowed(message: str) -> ServiceError:
    """405 OTSMethodNotAllowed: every API is POST."""
    return service_error("OTSMethodNotAllowed", message)


def internal_error(message: str = "Internal server error.") -> ServiceError:
    """500 OTSInternalServerError: a bug in the emulator (it is logged)."""
    return service_error("OTSInternalServerError", message)


def server_unavailable(message: str = "Tunnel service is temporarily unavailable.") -> ServiceError:
    """503 OTSTunnelServerUnavailable: retriable (used by fault injection)."""
    return service_error("OTSTunnelServerUnavailable", message)
