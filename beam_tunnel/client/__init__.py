"""Client of the Tablestore Tunnel Service: signing, HTTP, retries, the 13 calls.

Status: experimental; the API may change.

Modules, one responsibility each:

* ``credentials`` - the AccessKey, validated and never shown.
* ``config`` - :class:`TunnelConfig`, the picklable settings of a client.
* ``auth`` - V2 request signing as a ``requests`` auth callable.
* ``transport`` - the only HTTP code; maps every failure to ``beam_tunnel.errors``.
* ``retry`` - :class:`RetryPolicy`: jittered backoff, deadline, what is safe to retry.
* ``models`` - value types (no HTTP), importable by worker code on their own.
* ``tunnel_client`` - :class:`TunnelClient`, one method per call.
"""

from beam_tunnel.client.config import TunnelConfig
from beam_tunnel.client.credentials import Credentials
from beam_tunnel.client.models import (
    FINISHED_TOKEN,
    Channel,
    ChannelInfo,
    ChannelStatus,
    ChannelType,
    CheckpointInfo,
    ReadResult,
    RpoInfo,
    StartOffset,
    TunnelDescription,
    TunnelInfo,
    TunnelStage,
    TunnelType,
)
from beam_tunnel.client.retry import META_RETRY, READ_RECORDS_RETRY, RetryPolicy

__all__ = [
    "TunnelClient",
    "TunnelConfig",
    "Credentials",
    "RetryPolicy",
    "READ_RECORDS_RETRY",
    "META_RETRY",
    "FINISHED_TOKEN",
    "Channel",
    "ChannelInfo",
    "ChannelStatus",
    "ChannelType",
    "CheckpointInfo",
    "ReadResult",
    "RpoInfo",
    "StartOffset",
    "TunnelDescription",
    "TunnelInfo",
    "TunnelStage",
    "TunnelType",
]


def __getattr__(name):
    # TunnelClient pulls in requests; loading it on first use keeps
    # ``from beam_tunnel.client.models import Channel`` (the pure worker code)
    # free of HTTP imports.
    if name == "TunnelClient":
        from beam_tunnel.client.tunnel_client import TunnelClient

        return TunnelClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
