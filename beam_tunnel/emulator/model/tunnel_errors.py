"""The Tunnel Service's error answers, and the lease check that raises them.

Codes and HTTP statuses follow the Tunnel Service error table (400
OTSParameterInvalid, 400 OTSTunnelExpired, 400 OTSSequenceNumberNotMatch,
410 OTSResourceGone, ...); the statuses come from ``emulator/errors.py``.
"""

from __future__ import annotations

from typing import Optional

from beam_tunnel.errors import ServiceError

from .. import errors
from .channels import lease_lapsed
from .tunnel_store import ClientRecord

__all__ = [
    "tunnel_missing",
    "channel_missing",
    "tunnel_expired",
    "resource_gone",
    "tunnel_exist",
    "sequence_mismatch",
    "require_live_client",
]


def tunnel_missing(tunnel_id: str) -> ServiceError:
    """OTSParameterInvalid: what the SDK workers treat as "tunnel invalid"."""
    return errors.parameter_invalid(f"tunnel {tunnel_id!r} does not exist")


def channel_missing(tunnel_id: str, channel_id: str) -> ServiceError:
    return errors.parameter_invalid(f"channel {channel_id!r} does not exist in tunnel {tunnel_id}")


def tunnel_expired(tunnel_id: str) -> ServiceError:
    return errors.service_error(
        "OTSTunnelExpired", f"tunnel {tunnel_id} expired: its stream data is no longer available"
    )


def resource_gone(message: str) -> ServiceError:
    return errors.service_error("OTSResourceGone", message)


def tunnel_exist(table_name: str, tunnel_name: str) -> ServiceError:
    return errors.service_error("OTSTunnelExist", f"tunnel {tunnel_name!r} already exists on table {table_name!r}")


def sequence_mismatch(channel_id: str, expected: int, got: int) -> ServiceError:
    return errors.service_error(
        "OTSSequenceNumberNotMatch",
        f"checkpoint sequence number of channel {channel_id!r} must be {expected}, got {got}",
    )


def require_live_client(
    tunnel_id: str, client_id: str, client: Optional[ClientRecord], now_us: int, pending_us: Optional[int] = None
) -> ClientRecord:
    """``client`` when it holds a live lease on ``tunnel_id`` at ``now_us``.

    A lease whose timeout has passed is dead even before anyone recorded it;
    a heartbeat that arrived in time (``pending_us``) but still waits for the
    emulator keeps it alive (``channels.lease_lapsed``).

    Raises:
      ServiceError: OTSResourceGone naming the client and why.
    """
    if client is None or client.tunnel_id != tunnel_id:
        raise resource_gone(f"client {client_id!r} is not connected to tunnel {tunnel_id}")
    if not client.alive or lease_lapsed(client, now_us, pending_us):
        reason = client.gone_reason or "heartbeat timeout"
        raise resource_gone(f"client {client_id!r} of tunnel {tunnel_id} is gone ({reason}); reconnect")
    return client
