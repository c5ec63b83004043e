"""The 13 Tunnel Service calls as the transport sees them: API name, URL
path, answer type and whether the call is idempotent (the table in
:mod:`beam_tunnel.client.tunnel_client` says why each one is or is not).
"""

from __future__ import annotations

from typing import NamedTuple

from beam_tunnel.protocol import tunnel_pb2 as pb


class Op(NamedTuple):
    """One call: ``name`` in messages and logs, ``path`` to POST to, the
    protobuf ``response`` class of a success, and ``idempotent``, which
    decides whether an ambiguous failure may be retried."""

    name: str
    path: str
    response: type
    idempotent: bool


CREATE = Op("CreateTunnel", "/tunnel/create", pb.CreateTunnelResponse, False)
DELETE = Op("DeleteTunnel", "/tunnel/delete", pb.DeleteTunnelResponse, False)
LIST = Op("ListTunnel", "/tunnel/list", pb.ListTunnelResponse, True)
DESCRIBE = Op("DescribeTunnel", "/tunnel/describe", pb.DescribeTunnelResponse, True)
GET_RPO = Op("GetRpo", "/tunnel/getrpo", pb.GetRpoResponse, True)
GET_RPO_BY_OFFSET = Op("GetRpoByOffset", "/tunnel/getrpobyoffset", pb.GetRpoResponse, True)
SCHEDULE = Op("Schedule", "/tunnel/schedule", pb.ScheduleResponse, True)
CONNECT = Op("ConnectTunnel", "/tunnel/connect", pb.ConnectResponse, False)
HEARTBEAT = Op("Heartbeat", "/tunnel/heartbeat", pb.HeartbeatResponse, True)
SHUTDOWN = Op("ShutdownTunnel", "/tunnel/shutdown", pb.ShutdownResponse, True)
GET_CHECKPOINT = Op("GetCheckpoint", "/tunnel/getcheckpoint", pb.GetCheckpointResponse, True)
CHECKPOINT = Op("Checkpoint", "/tunnel/checkpoint", pb.CheckpointResponse, False)
READ_RECORDS = Op("ReadRecords", "/tunnel/readrecords", pb.ReadRecordsResponse, True)
