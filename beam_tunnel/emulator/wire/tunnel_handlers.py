"""Handlers of the 13 Tunnel Service paths: take the fields, call one
``TunnelBackend`` method, build the response. Behaviour lives in
``model/tunnels.py``; the admin paths are in ``admin_handlers.py``."""

from __future__ import annotations

from beam_tunnel.protocol import tunnel_pb2 as pb

from . import errors
from .routes import API_TUNNEL, Route

__all__ = ["ROUTES"]


def _tunnel_info(view, instance_name: str) -> pb.TunnelInfo:
    info = pb.TunnelInfo(
        tunnel_id=view.tunnel_id,
        tunnel_type=view.tunnel_type,
        table_name=view.table_name,
        instance_name=instance_name,
        stream_id=view.stream_id,
        stage=view.stage,
        expired=view.expired,
        tunnel_name=view.tunnel_name,
        public=False,
        create_time=view.create_time_ns,
    )
    if view.start_flag is not None or view.start_ns or view.end_ns:
        config = info.stream_tunnel_config
        if view.start_flag is not None:
            config.flag = view.start_flag
        if view.start_ns:
            config.startOffset = view.start_ns
        if view.end_ns:
            config.endOffset = view.end_ns
    return info


def create_tunnel(ctx, request: pb.CreateTunnelRequest) -> pb.CreateTunnelResponse:
    tunnel = request.tunnel
    start_flag = start_ns = end_ns = None
    if tunnel.HasField("stream_tunnel_config"):
        config = tunnel.stream_tunnel_config
        start_flag = config.flag if config.HasField("flag") else None
        start_ns = config.startOffset if config.HasField("startOffset") else None
        end_ns = config.endOffset if config.HasField("endOffset") else None
    tunnel_id = ctx.backend.tunnels.create_tunnel(
        tunnel.table_name, tunnel.tunnel_name, tunnel.tunnel_type, start_flag, start_ns or 0, end_ns or 0
    )
    return pb.CreateTunnelResponse(tunnel_id=tunnel_id)


def delete_tunnel(ctx, request: pb.DeleteTunnelRequest) -> pb.DeleteTunnelResponse:
    ctx.backend.tunnels.delete_tunnel(request.table_name, request.tunnel_name, request.tunnel_id or None)
    return pb.DeleteTunnelResponse()


def list_tunnel(ctx, request: pb.ListTunnelRequest) -> pb.ListTunnelResponse:
    views = ctx.backend.tunnels.list_tunnels(request.table_name or None)
    return pb.ListTunnelResponse(tunnels=[_tunnel_info(v, ctx.instance_name) for v in views])


def describe_tunnel(ctx, request: pb.DescribeTunnelRequest) -> pb.DescribeTunnelResponse:
    found = ctx.backend.tunnels.describe_tunnel(request.table_name, request.tunnel_name, request.tunnel_id or None)
    response = pb.DescribeTunnelResponse(
        tunnel=_tunnel_info(found.tunnel, ctx.instance_name), tunnel_rpo=found.tunnel_rpo_ns
    )
    for channel in found.channels:
        response.channels.add(
            channel_id=channel.channel_id,
            channel_type=channel.channel_type,
            channel_status=channel.status,
            client_id=channel.client_id,
            channel_rpo=channel.rpo_ns,
            channel_count=channel.count,
        )
    return response


def _get_rpo(ctx, request: pb.GetRpoRequest, by_offset: bool) -> pb.GetRpoResponse:
    if not request.tunnel_id:
        raise errors.parameter_invalid("GetRpo needs tunnel_id.")
    rpo_infos, tunnel_infos = ctx.backend.tunnels.get_rpo(request.tunnel_id, request.limit, by_offset=by_offset)
    return pb.GetRpoResponse(rpo_infos=rpo_infos, tunnel_rpo_infos=tunnel_infos, tunnel_id=request.tunnel_id)


def get_rpo(ctx, request: pb.GetRpoRequest) -> pb.GetRpoResponse:
    return _get_rpo(ctx, request, by_offset=False)


def get_rpo_by_offset(ctx, request: pb.GetRpoRequest) -> pb.GetRpoResponse:
    return _get_rpo(ctx, request, by_offset=True)


def schedule(ctx, request: pb.ScheduleRequest) -> pb.ScheduleResponse:
    ctx.backend.tunnels.schedule(request.tunnel_id, [(c.channel_id, c.status) for c in request.channels])
    return pb.ScheduleResponse()


def connect(ctx, request: pb.ConnectRequest) -> pb.ConnectResponse:
    timeout_s = tag = None
    if request.HasField("client_config"):
        config = request.client_config
        timeout_s = config.timeout if config.HasField("timeout") else None
        tag = config.client_tag if config.HasField("client_tag") else None
    return pb.ConnectResponse(client_id=ctx.backend.tunnels.connect(request.tunnel_id, timeout_s, tag))


def heartbeat(ctx, request: pb.HeartbeatRequest) -> pb.HeartbeatResponse:
    reports = [(c.channel_id, c.version, c.status) for c in request.channels]
    assigned = ctx.backend.tunnels.heartbeat(request.tunnel_id, request.client_id, reports)
    response = pb.HeartbeatResponse()
    for channel_id, version, status in assigned:
        response.channels.add(channel_id=channel_id, version=version, status=status)
    return response


def shutdown(ctx, request: pb.ShutdownRequest) -> pb.ShutdownResponse:
    ctx.backend.tunnels.shutdown(request.tunnel_id, request.client_id)
    return pb.ShutdownResponse()


def get_checkpoint(ctx, request: pb.GetCheckpointRequest) -> pb.GetCheckpointResponse:
    token, sequence = ctx.backend.tunnels.get_checkpoint(request.tunnel_id, request.client_id, request.channel_id)
    return pb.GetCheckpointResponse(checkpoint=token, sequence_number=sequence)


def checkpoint(ctx, request: pb.CheckpointRequest) -> pb.CheckpointResponse:
    ctx.backend.tunnels.checkpoint(
        request.tunnel_id, request.client_id, request.channel_id, request.checkpoint, request.sequence_number
    )
    return pb.CheckpointResponse()


def read_records(ctx, request: pb.ReadRecordsRequest) -> pb.ReadRecordsResponse:
    result = ctx.backend.tunnels.read_records(request.tunnel_id, request.client_id, request.channel_id, request.token)
    response = pb.ReadRecordsResponse(next_token=result.next_token, may_more_record=result.may_more)
    add = response.records.add
    for entry in result.records:
        if entry.origin is None:
            add(action_type=entry.action, record=entry.record)
        else:
            add(action_type=entry.action, record=entry.record, origin_record=entry.origin)
    return response


ROUTES = [
    Route("/tunnel/create", pb.CreateTunnelRequest, create_tunnel, API_TUNNEL),
    Route("/tunnel/delete", pb.DeleteTunnelRequest, delete_tunnel, API_TUNNEL),
    Route("/tunnel/list", pb.ListTunnelRequest, list_tunnel, API_TUNNEL),
    Route("/tunnel/describe", pb.DescribeTunnelRequest, describe_tunnel, API_TUNNEL),
    Route("/tunnel/connect", pb.ConnectRequest, connect, API_TUNNEL),
    Route("/tunnel/heartbeat", pb.HeartbeatRequest, heartbeat, API_TUNNEL),
    Route("/tunnel/shutdown", pb.ShutdownRequest, shutdown, API_TUNNEL),
    Route("/tunnel/getcheckpoint", pb.GetCheckpointRequest, get_checkpoint, API_TUNNEL),
    Route("/tunnel/readrecords", pb.ReadRecordsRequest, read_records, API_TUNNEL),
    Route("/tunnel/checkpoint", pb.CheckpointRequest, checkpoint, API_TUNNEL),
    Route("/tunnel/getrpo", pb.GetRpoRequest, get_rpo, API_TUNNEL),
    Route("/tunnel/getrpobyoffset", pb.GetRpoRequest, get_rpo_by_offset, API_TUNNEL),
    Route("/tunnel/schedule", pb.ScheduleRequest, schedule, API_TUNNEL),
]
