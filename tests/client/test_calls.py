"""Each of the 13 Tunnel calls round-trips its request and response fields
through the scripted server (which also checks signature and MD5)."""

from __future__ import annotations

import datetime
import json
import socket

import pytest

from _scripted_server import Ok, Raw
from beam_tunnel.client import (
    Channel,
    ChannelInfo,
    ChannelStatus,
    ChannelType,
    CheckpointInfo,
    StartOffset,
    TunnelStage,
    TunnelType,
)
from beam_tunnel.protocol import tunnel_pb2 as pb

UTC = datetime.timezone.utc
EMPTY_MD5 = "1B2M2Y8AsgTpgAmY7PhCfg=="


def only(server, path):
    requests = server.requests_to(path)
    assert len(requests) == 1, requests
    assert requests[0].rejection is None, requests[0].rejection
    return requests[0]


# ---- tunnel management ----------------------------------------------------


def test_create_tunnel_without_offsets_sends_no_stream_config(server, client):
    server.script("/tunnel/create", Ok(pb.CreateTunnelResponse(tunnel_id="tid-1")))

    assert client.create_tunnel("orders", "sync", TunnelType.BASE_DATA) == "tid-1"

    sent = only(server, "/tunnel/create")
    assert sent.headers["x-ots-apiversion"] == "2018-04-01"
    assert sent.headers["user-agent"].startswith("beam-tunnel-python/")
    tunnel = sent.message.tunnel
    assert (tunnel.table_name, tunnel.tunnel_name, tunnel.tunnel_type) == ("orders", "sync", pb.BaseData)
    assert not tunnel.HasField("stream_tunnel_config")


@pytest.mark.parametrize(
    "offset, flag", [(StartOffset.EARLIEST, pb.EARLIEST), ("latest", pb.LATEST), (StartOffset.LATEST, pb.LATEST)]
)
def test_create_tunnel_with_flag_offset(server, client, offset, flag):
    server.script("/tunnel/create", Ok(pb.CreateTunnelResponse(tunnel_id="tid-2")))

    client.create_tunnel("orders", "sync", "BaseAndStream", start_offset=offset)

    tunnel = only(server, "/tunnel/create").message.tunnel
    assert tunnel.tunnel_type == pb.BaseAndStream
    config = tunnel.stream_tunnel_config
    assert config.HasField("flag") and config.flag == flag
    assert not config.HasField("startOffset") and not config.HasField("endOffset")


def test_create_tunnel_with_time_offsets_sends_nanoseconds(server, client):
    server.script("/tunnel/create", Ok(pb.CreateTunnelResponse(tunnel_id="tid-3")))
    start = datetime.datetime(2024, 9, 13, 22, 59, 7, 123456, tzinfo=UTC)
    end_ns = 1_726_300_000_000_000_001

    client.create_tunnel("orders", "sync", "Stream", start_offset=start, end_offset=end_ns)

    config = only(server, "/tunnel/create").message.tunnel.stream_tunnel_config
    assert config.startOffset == 1_726_268_347_123_456_000
    assert config.endOffset == end_ns
    assert not config.HasField("flag")


def test_delete_tunnel(server, client):
    server.script("/tunnel/delete", Ok(pb.DeleteTunnelResponse()))

    assert client.delete_tunnel("orders", "sync") is None

    message = only(server, "/tunnel/delete").message
    assert (message.table_name, message.tunnel_name) == ("orders", "sync")
    assert not message.HasField("tunnel_id")


def _full_tunnel_info(**overrides):
    info = pb.TunnelInfo(
        tunnel_id="tid-9",
        tunnel_type="BaseAndStream",
        table_name="orders",
        instance_name="test-inst",
        stream_id="orders_1700000000000000",
        stage="ProcessStream",
        expired=True,
        tunnel_name="sync",
        public=True,
        stream_tunnel_config=pb.StreamTunnelConfig(
            startOffset=1_700_000_000_000_000_000, endOffset=1_800_000_000_000_000_000),
        create_time=1_699_999_999_000_000_000,
    )
    for key, value in overrides.items():
        setattr(info, key, value)
    return info


def test_list_tunnels_of_all_tables_sends_empty_body_and_maps_every_field(server, client):
    minimal = pb.TunnelInfo(
        tunnel_id="tid-8", tunnel_type="SomeFutureType", table_name="t2", instance_name="test-inst",
        stream_id="", stage="SomeFutureStage",
        stream_tunnel_config=pb.StreamTunnelConfig(flag=pb.EARLIEST),
    )
    server.script("/tunnel/list", Ok(pb.ListTunnelResponse(tunnels=[_full_tunnel_info(), minimal])))

    tunnels = client.list_tunnels()

    sent = only(server, "/tunnel/list")
    assert sent.body == b"" and sent.headers["x-ots-contentmd5"] == EMPTY_MD5
    assert not sent.message.HasField("table_name")
    full, small = tunnels
    assert full.tunnel_id == "tid-9" and full.tunnel_name == "sync"
    assert full.tunnel_type is TunnelType.BASE_AND_STREAM
    assert (full.table_name, full.instance_name) == ("orders", "test-inst")
    assert full.stream_id == "orders_1700000000000000"
    assert full.stage is TunnelStage.PROCESS_STREAM
    assert full.expired is True and full.public is True
    assert full.create_time_ns == 1_699_999_999_000_000_000
    assert full.start_offset == 1_700_000_000_000_000_000
    assert full.end_offset_ns == 1_800_000_000_000_000_000
    # Values the client does not know are kept as strings, not refused.
    assert small.tunnel_type == "SomeFutureType" and small.stage == "SomeFutureStage"
    assert small.start_offset is StartOffset.EARLIEST and small.end_offset_ns is None
    assert small.tunnel_name == "" and small.create_time_ns is None and small.expired is False


def test_list_tunnels_of_one_table(server, client):
    server.script("/tunnel/list", Ok(pb.ListTunnelResponse()))

    assert client.list_tunnels("orders") == []

    assert only(server, "/tunnel/list").message.table_name == "orders"


def test_describe_tunnel_maps_channels_and_rpo(server, client):
    response = pb.DescribeTunnelResponse(
        tunnel=_full_tunnel_info(stage="ProcessBaseData"),
        channels=[
            pb.ChannelInfo(channel_id="BaseData_1", channel_type="BaseData", channel_status="OPEN",
                           client_id="c-1", channel_rpo=0, channel_count=42),
            pb.ChannelInfo(channel_id="shard-2", channel_type="Stream", channel_status="WAIT",
                           channel_rpo=1_700_000_000_500_000_000),
            pb.ChannelInfo(channel_id="shard-3"),
        ],
        tunnel_rpo=1_700_000_000_400_000_000,
    )
    server.script("/tunnel/describe", Ok(response))

    description = client.describe_tunnel("orders", "sync")

    message = only(server, "/tunnel/describe").message
    assert (message.table_name, message.tunnel_name) == ("orders", "sync")
    assert description.tunnel.stage is TunnelStage.PROCESS_BASE_DATA
    assert description.tunnel_rpo_ns == 1_700_000_000_400_000_000
    assert description.channels == (
        ChannelInfo("BaseData_1", ChannelType.BASE_DATA, ChannelStatus.OPEN, "c-1", 0, 42),
        ChannelInfo("shard-2", ChannelType.STREAM, ChannelStatus.WAIT, None, 1_700_000_000_500_000_000, None),
        ChannelInfo("shard-3", None, None, None, None, None),
    )


def test_describe_tunnel_without_rpo(server, client):
    server.script("/tunnel/describe", Ok(pb.DescribeTunnelResponse(tunnel=_full_tunnel_info())))

    description = client.describe_tunnel("orders", "sync")

    assert description.tunnel_rpo_ns is None and description.channels == ()


@pytest.mark.parametrize(
    "method, path", [("get_rpo", "/tunnel/getrpo"), ("get_rpo_by_offset", "/tunnel/getrpobyoffset")])
def test_get_rpo_decodes_json(server, client, method, path):
    rpo = {"shard-2": {"c-1": {"ChannelTyp": "Stream", "Status": "OPEN", "TotalCount": 7, "RpoTime": 5}}}
    tunnel_rpo = {"tid-9": {"Status": "OPEN", "TotalCount": 7, "AccessTime": 1, "RpoTime": 5}}
    server.script(path, Ok(pb.GetRpoResponse(
        rpo_infos=json.dumps(rpo).encode(), tunnel_rpo_infos=json.dumps(tunnel_rpo).encode(), tunnel_id="tid-9")))

    result = getattr(client, method)("tid-9", limit=50)

    message = only(server, path).message
    assert (message.tunnel_id, message.limit) == ("tid-9", 50)
    assert result.rpo_infos == rpo and result.tunnel_rpo_infos == tunnel_rpo and result.tunnel_id == "tid-9"


def test_get_rpo_with_empty_answer(server, client):
    server.script("/tunnel/getrpo", Ok(pb.GetRpoResponse()))

    result = client.get_rpo("tid-9")

    assert not only(server, "/tunnel/getrpo").message.HasField("limit")
    assert (result.rpo_infos, result.tunnel_rpo_infos, result.tunnel_id) == ({}, {}, None)


def test_schedule_from_mapping_and_channels(server, client):
    server.script("/tunnel/schedule", Ok(pb.ScheduleResponse()), Ok(pb.ScheduleResponse()))

    client.schedule("tid-9", {"shard-1": ChannelStatus.CLOSING, "shard-2": "TERMINATED"})
    client.schedule("tid-9", [Channel("shard-3", 0, ChannelStatus.OPEN)])

    first, second = server.requests_to("/tunnel/schedule")
    assert first.message.tunnel_id == "tid-9"
    assert [(c.channel_id, c.version, c.status) for c in first.message.channels] == [
        ("shard-1", 0, pb.CLOSING), ("shard-2", 0, pb.TERMINATED)]
    assert [(c.channel_id, c.status) for c in second.message.channels] == [("shard-3", pb.OPEN)]


# ---- data plane ---------------------------------------------------------------


def test_connect_sends_timeout_and_tag(server, client):
    server.script("/tunnel/connect", Ok(pb.ConnectResponse(client_id="client-7")),
                  Ok(pb.ConnectResponse(client_id="client-8")))

    assert client.connect("tid-9", timeout_s=120, client_tag="reader-a") == "client-7"
    assert client.connect("tid-9") == "client-8"

    first, second = server.requests_to("/tunnel/connect")
    assert first.message.tunnel_id == "tid-9"
    assert (first.message.client_config.timeout, first.message.client_config.client_tag) == (120, "reader-a")
    assert second.message.client_config.timeout == 300
    assert second.message.client_config.client_tag == socket.gethostname()


def test_heartbeat_round_trips_channels(server, client):
    answer = [
        pb.Channel(channel_id="shard-1", version=3, status=pb.OPEN),
        pb.Channel(channel_id="shard-2", version=5, status=pb.CLOSING, detail=b"\x01"),
    ]
    server.script("/tunnel/heartbeat", Ok(pb.HeartbeatResponse()), Ok(pb.HeartbeatResponse(channels=answer)))

    assert client.heartbeat("tid-9", "client-7", []) == []
    assigned = client.heartbeat(
        "tid-9", "client-7", [Channel("shard-1", 2, ChannelStatus.OPEN), Channel("shard-0", 4, "TERMINATED")])

    first, second = server.requests_to("/tunnel/heartbeat")
    assert (first.message.tunnel_id, first.message.client_id) == ("tid-9", "client-7")
    assert len(first.message.channels) == 0
    assert [(c.channel_id, c.version, c.status) for c in second.message.channels] == [
        ("shard-1", 2, pb.OPEN), ("shard-0", 4, pb.TERMINATED)]
    assert assigned == [
        Channel("shard-1", 3, ChannelStatus.OPEN),
        Channel("shard-2", 5, ChannelStatus.CLOSING, detail=b"\x01"),
    ]


def test_shutdown(server, client):
    server.script("/tunnel/shutdown", Ok(pb.ShutdownResponse()))

    assert client.shutdown("tid-9", "client-7") is None

    message = only(server, "/tunnel/shutdown").message
    assert (message.tunnel_id, message.client_id) == ("tid-9", "client-7")


def test_get_checkpoint_unpacks(server, client):
    server.script("/tunnel/getcheckpoint", Ok(pb.GetCheckpointResponse(checkpoint="tok-A", sequence_number=12)))

    token, sequence = client.get_checkpoint("tid-9", "client-7", "shard-1")

    message = only(server, "/tunnel/getcheckpoint").message
    assert (message.tunnel_id, message.client_id, message.channel_id) == ("tid-9", "client-7", "shard-1")
    assert (token, sequence) == ("tok-A", 12)


def test_checkpoint(server, client):
    server.script("/tunnel/checkpoint", Ok(pb.CheckpointResponse()))

    client.checkpoint("tid-9", "client-7", "shard-1", "finished", 13)

    message = only(server, "/tunnel/checkpoint").message
    assert (message.tunnel_id, message.client_id, message.channel_id) == ("tid-9", "client-7", "shard-1")
    assert (message.checkpoint, message.sequence_number) == ("finished", 13)


def test_read_records_empty_batch(server, client):
    response = pb.ReadRecordsResponse(next_token="tok-B")
    server.script("/tunnel/readrecords", Ok(response))

    result = client.read_records("tid-9", "client-7", "shard-1", "tok-A")

    message = only(server, "/tunnel/readrecords").message
    assert (message.tunnel_id, message.client_id, message.channel_id, message.token) == (
        "tid-9", "client-7", "shard-1", "tok-A")
    assert result.records == () and result.next_token == "tok-B"
    assert result.may_more_record is None and result.finished is False
    assert result.size_bytes == len(response.SerializeToString())


def test_read_records_finished_with_hint(server, client):
    server.script("/tunnel/readrecords", Ok(pb.ReadRecordsResponse(next_token="finished", may_more_record=False)))

    result = client.read_records("tid-9", "client-7", "shard-1", "tok-B")

    assert result.finished is True and result.may_more_record is False


def test_checkpoint_info_is_a_tuple():
    info = CheckpointInfo("tok", 3)
    assert tuple(info) == ("tok", 3) and info.sequence_number == 3


def test_unknown_response_fields_are_tolerated(server, client):
    # A newer service may add fields: proto2 parsing must keep going. Field 9
    # (varint 42) and field 10 (bytes) are unknown to HeartbeatResponse, and
    # field 7 is unknown inside Channel.
    channel = pb.Channel(channel_id="c1", version=3, status=pb.OPEN).SerializeToString() + b"\x38\x01"
    body = b"\x0a" + bytes([len(channel)]) + channel + b"\x48\x2a" + b"\x52\x03abc"
    server.script("/tunnel/heartbeat", Raw(200, body, content_type=""))
    assert client.heartbeat("tid-9", "client-7", []) == [Channel("c1", 3, ChannelStatus.OPEN)]
