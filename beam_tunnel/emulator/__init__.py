"""Embedded emulator of Tablestore's table API and Tunnel Service.

Speaks the real wire protocol (signed HTTP POSTs of protobuf messages,
PlainBuffer rows), so the official SDKs and ``beam_tunnel``'s client cannot
tell it from the service; keeps its state in SQLite so acknowledged writes
survive a restart or ``kill -9``. Start it with ``beam-tunnel emulator`` or
in process::

    from beam_tunnel.emulator import EmulatorServer

    with EmulatorServer(data_dir="./tunnel-data") as server:
        print(server.endpoint, server.instance_name, server.access_key_id)

Status: experimental.
"""

from .clock import Clock, ManualClock
from .config import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, DEFAULT_INSTANCE, EmulatorConfig
from .faults import FaultSettings
from .server import EmulatorServer

__all__ = [
    "EmulatorServer",
    "EmulatorConfig",
    "FaultSettings",
    "Clock",
    "ManualClock",
    "DEFAULT_INSTANCE",
    "DEFAULT_ACCESS_KEY_ID",
    "DEFAULT_ACCESS_KEY_SECRET",
]
