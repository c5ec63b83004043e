"""beam_tunnel: consume Tablestore's Tunnel Service from Python and Apache Beam.

Status: experimental; the API may change without notice.

Usage::

    from beam_tunnel import TunnelClient, TunnelWorker, WorkerConfig

    client = TunnelClient(endpoint, instance_name, access_key_id, access_key_secret)
    worker = TunnelWorker(client, tunnel_id, lambda records, context: print(records))

The names below are the public surface; everything else may change.
"""

from beam_tunnel import errors
from beam_tunnel.client import TunnelConfig
from beam_tunnel.client.models import ChannelStatus, TunnelType
from beam_tunnel.errors import TunnelError
from beam_tunnel.records import Action, ChangeRecord, Column, ColumnOp

__all__ = [
    "ReadFromTunnel",
    "TunnelClient",
    "TunnelConfig",
    "TunnelType",
    "ChannelStatus",
    "TunnelWorker",
    "WorkerConfig",
    "ChannelProcessor",
    "ChannelContext",
    "ChangeRecord",
    "Action",
    "Column",
    "ColumnOp",
    "TunnelError",
    "errors",
]

_LAZY = {
    # Loaded on first use so that `import beam_tunnel` in a Beam worker or the
    # emulator does not pull in requests or start-up work it does not need.
    "ReadFromTunnel": ("beam_tunnel.beam.read", "ReadFromTunnel"),
    "TunnelClient": ("beam_tunnel.client.tunnel_client", "TunnelClient"),
    "TunnelWorker": ("beam_tunnel.worker", "TunnelWorker"),
    "WorkerConfig": ("beam_tunnel.worker", "WorkerConfig"),
    "ChannelProcessor": ("beam_tunnel.worker", "ChannelProcessor"),
    "ChannelContext": ("beam_tunnel.worker", "ChannelContext"),
}


def __getattr__(name):
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(target[0]), target[1])


def __dir__():
    return sorted(set(globals()) | set(__all__))
