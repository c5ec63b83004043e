"""Hostile and wrong input on the tunnel paths, sent raw: unknown tunnel,
client and channel ids, garbage tokens, missing fields and bad bodies get
clean errors with the right codes, and the server keeps serving."""

import base64

import pytest

from beam_tunnel.emulator import EmulatorServer, ManualClock
from beam_tunnel.protocol import plainbuffer, table_pb2
from beam_tunnel.protocol import tunnel_pb2 as pb
from beam_tunnel.protocol.tokens import (
    StreamIterator,
    TokenContent,
    decode_token,
    encode_stream_iterator,
    encode_token,
)

from tunnel_kit import Worker, make_table, tunnel_client
from wire_kit import RawClient

_PATHS = {
    "/tunnel/create": pb.CreateTunnelResponse,
    "/tunnel/delete": pb.DeleteTunnelResponse,
    "/tunnel/list": pb.ListTunnelResponse,
    "/tunnel/describe": pb.DescribeTunnelResponse,
    "/tunnel/connect": pb.ConnectResponse,
    "/tunnel/heartbeat": pb.HeartbeatResponse,
    "/tunnel/shutdown": pb.ShutdownResponse,
    "/tunnel/getcheckpoint": pb.GetCheckpointResponse,
    "/tunnel/readrecords": pb.ReadRecordsResponse,
    "/tunnel/checkpoint": pb.CheckpointResponse,
    "/tunnel/getrpo": pb.GetRpoResponse,
    "/tunnel/getrpobyoffset": pb.GetRpoResponse,
    "/tunnel/schedule": pb.ScheduleResponse,
}


@pytest.fixture(scope="module")
def env():
    with EmulatorServer(clock=ManualClock()) as server:
        make_table(server, "t", stream_columns=())
        client = tunnel_client(server)
        tunnel_id = client.create_tunnel("t", "s", "Stream")
        base_tunnel = client.create_tunnel("t", "b", "BaseData")
        worker = Worker(client, tunnel_id)
        worker.heartbeat()
        base_worker = Worker(client, base_tunnel)
        base_worker.heartbeat()
        raw = RawClient(server)
        yield {
            "server": server, "raw": raw, "tunnel": tunnel_id, "client": worker.client_id,
            "channel": worker.open_channels()[0], "base_tunnel": base_tunnel,
            "base_client": base_worker.client_id, "base_channel": base_worker.open_channels()[0],
        }
        raw.close()


def _post(env, path, message_or_bytes):
    body = message_or_bytes if isinstance(message_or_bytes, bytes) else message_or_bytes.SerializeToString()
    status, _, data = env["raw"].post(path, body, api_version="2018-04-01")
    if status == 200:
        return status, _PATHS[path].FromString(data)
    error = table_pb2.Error.FromString(data)
    return status, (error.code, error.message)


def _expect(env, path, message, status, code, text=""):
    got_status, (got_code, message_text) = _post(env, path, message)
    assert (got_status, got_code) == (status, code), message_text
    assert text in message_text
    return message_text


@pytest.mark.parametrize("path", sorted(set(_PATHS) - {"/tunnel/list"}))
def test_empty_bodies_name_the_missing_fields(env, path):
    text = _expect(env, path, b"", 400, "OTSParameterInvalid")
    assert "tunnel" in text  # every other call needs a tunnel id or name


@pytest.mark.parametrize("path", sorted(_PATHS))
def test_garbage_bodies_are_rejected(env, path):
    _expect(env, path, b"\x0a\xff\xff\xff\xff\x0f", 400, "OTSParameterInvalid", "not a valid")


@pytest.mark.parametrize(
    "path, message",
    [
        ("/tunnel/connect", pb.ConnectRequest(tunnel_id="nope")),
        ("/tunnel/heartbeat", pb.HeartbeatRequest(tunnel_id="nope", client_id="c")),
        ("/tunnel/shutdown", pb.ShutdownRequest(tunnel_id="nope", client_id="c")),
        ("/tunnel/getcheckpoint", pb.GetCheckpointRequest(tunnel_id="nope", client_id="c", channel_id="x")),
        ("/tunnel/readrecords", pb.ReadRecordsRequest(tunnel_id="nope", client_id="c", channel_id="x", token="t")),
        ("/tunnel/checkpoint", pb.CheckpointRequest(tunnel_id="nope", client_id="c", channel_id="x",
                                                    checkpoint="t", sequence_number=1)),
        ("/tunnel/getrpo", pb.GetRpoRequest(tunnel_id="nope")),
        ("/tunnel/schedule", pb.ScheduleRequest(tunnel_id="nope")),
        ("/tunnel/describe", pb.DescribeTunnelRequest(table_name="t", tunnel_name="nope")),
        ("/tunnel/delete", pb.DeleteTunnelRequest(table_name="t", tunnel_name="nope")),
        ("/tunnel/describe", pb.DescribeTunnelRequest(table_name="no-table", tunnel_name="s")),
        ("/tunnel/list", pb.ListTunnelRequest(table_name="no-table")),
    ],
)
def test_unknown_tunnels_are_parameter_invalid(env, path, message):
    _expect(env, path, message, 400, "OTSParameterInvalid", "does not exist")


@pytest.mark.parametrize(
    "path, make",
    [
        ("/tunnel/heartbeat", lambda e: pb.HeartbeatRequest(tunnel_id=e["tunnel"], client_id="ghost")),
        ("/tunnel/shutdown", lambda e: pb.ShutdownRequest(tunnel_id=e["tunnel"], client_id="ghost")),
        ("/tunnel/getcheckpoint", lambda e: pb.GetCheckpointRequest(
            tunnel_id=e["tunnel"], client_id="ghost", channel_id=e["channel"])),
        ("/tunnel/readrecords", lambda e: pb.ReadRecordsRequest(
            tunnel_id=e["tunnel"], client_id="ghost", channel_id=e["channel"], token="finished")),
        ("/tunnel/checkpoint", lambda e: pb.CheckpointRequest(
            tunnel_id=e["tunnel"], client_id="ghost", channel_id=e["channel"], checkpoint="finished",
            sequence_number=1)),
        # A client of another tunnel is not a client of this one.
        ("/tunnel/heartbeat", lambda e: pb.HeartbeatRequest(tunnel_id=e["tunnel"], client_id=e["base_client"])),
    ],
)
def test_unknown_clients_are_resource_gone(env, path, make):
    _expect(env, path, make(env), 410, "OTSResourceGone", "not connected")


def test_unknown_channels_are_parameter_invalid(env):
    for message in (
        pb.GetCheckpointRequest(tunnel_id=env["tunnel"], client_id=env["client"], channel_id="nope"),
        pb.ReadRecordsRequest(tunnel_id=env["tunnel"], client_id=env["client"], channel_id="nope", token="x"),
    ):
        path = "/tunnel/getcheckpoint" if isinstance(message, pb.GetCheckpointRequest) else "/tunnel/readrecords"
        _expect(env, path, message, 400, "OTSParameterInvalid", "'nope' does not exist")


def _junk_tokens(env):
    wrong_stream = encode_token(TokenContent(iterator=encode_stream_iterator(
        StreamIterator("other_stream", env["channel"]))))
    corrupt = bytearray(base64.b64decode(encode_stream_iterator(StreamIterator("s", env["channel"]))))
    corrupt[5] ^= 0xFF
    bad_crc = encode_token(TokenContent(iterator=base64.b64encode(bytes(corrupt)).decode()))
    base_token = encode_token(TokenContent(primary_key=plainbuffer.encode_primary_key((("id", "k"),))))
    return [
        ("!!!", "not base64"),
        (base64.b64encode(b"\x00\x01junk").decode(), "not a Token"),
        (base_token, "needs a stream token"),
        (wrong_stream, "not shard"),
        (bad_crc, "checksum"),
        (encode_token(TokenContent(iterator="not-an-iterator")), "not base64"),
    ]


def test_garbage_stream_tokens(env):
    for token, text in _junk_tokens(env):
        message = pb.ReadRecordsRequest(tunnel_id=env["tunnel"], client_id=env["client"],
                                        channel_id=env["channel"], token=token)
        _expect(env, "/tunnel/readrecords", message, 400, "OTSParameterInvalid", text)


@pytest.mark.parametrize("kind", ["", "base_"])
def test_token_record_counts_out_of_range(env, kind):
    ids = {"tunnel_id": env[f"{kind}tunnel"], "client_id": env[f"{kind}client"], "channel_id": env[f"{kind}channel"]}
    status, answer = _post(env, "/tunnel/getcheckpoint", pb.GetCheckpointRequest(**ids))
    assert status == 200
    content = decode_token(answer.checkpoint)
    huge = encode_token(content._replace(total_count=2 ** 63 - 1))
    _expect(env, "/tunnel/readrecords", pb.ReadRecordsRequest(token=huge, **ids), 400, "OTSParameterInvalid",
            f"record count {2 ** 63 - 1} is out of range")
    negative = encode_token(content._replace(total_count=-5))
    _expect(env, "/tunnel/checkpoint", pb.CheckpointRequest(checkpoint=negative, sequence_number=1, **ids), 400,
            "OTSParameterInvalid", "record count -5 is out of range")
    # Nothing was stored: the channel still starts from its initial token.
    status, after = _post(env, "/tunnel/getcheckpoint", pb.GetCheckpointRequest(**ids))
    assert (after.checkpoint, after.sequence_number) == (answer.checkpoint, answer.sequence_number)


@pytest.mark.parametrize(
    "primary_key, text",
    [
        (b"\x75\x00\x00\x00\x01\x03\x04", "does not decode"),
        (plainbuffer.encode_primary_key((("other", "k"),)), ""),
        (plainbuffer.encode_primary_key((("id", 5),)), ""),
    ],
)
def test_garbage_base_tokens(env, primary_key, text):
    message = pb.ReadRecordsRequest(tunnel_id=env["base_tunnel"], client_id=env["base_client"],
                                    channel_id=env["base_channel"],
                                    token=encode_token(TokenContent(primary_key=primary_key)))
    _expect(env, "/tunnel/readrecords", message, 400, "OTSParameterInvalid", text)


def test_bad_values(env):
    _expect(env, "/tunnel/connect", pb.ConnectRequest(tunnel_id=env["tunnel"], client_config=pb.ClientConfig(
        timeout=-5)), 400, "OTSParameterInvalid", "-5")
    _expect(env, "/tunnel/create", pb.CreateTunnelRequest(tunnel=pb.Tunnel(
        table_name="t", tunnel_name=" ", tunnel_type=pb.Stream)), 400, "OTSParameterInvalid", "tunnel_name")
    _expect(env, "/tunnel/create", pb.CreateTunnelRequest(tunnel=pb.Tunnel(
        table_name="t", tunnel_name="x", tunnel_type=pb.Stream,
        stream_tunnel_config=pb.StreamTunnelConfig(startOffset=10, endOffset=5))), 400, "OTSParameterInvalid",
        "endOffset")
    _expect(env, "/tunnel/create", pb.CreateTunnelRequest(tunnel=pb.Tunnel(
        table_name="t", tunnel_name="x", tunnel_type=pb.Stream,
        stream_tunnel_config=pb.StreamTunnelConfig(startOffset=2**63))), 400, "OTSParameterInvalid", "future")
    _expect(env, "/tunnel/getrpo", pb.GetRpoRequest(), 400, "OTSParameterInvalid", "tunnel_id")
    _expect(env, "/tunnel/getrpo", pb.GetRpoRequest(tunnel_id=env["tunnel"], limit=-1), 400,
            "OTSParameterInvalid", "limit")
    # A status number outside the enum leaves a required field unset.
    request = pb.HeartbeatRequest(tunnel_id=env["tunnel"], client_id=env["client"])
    request.channels.add(channel_id="c", version=1, status=pb.OPEN)
    body = request.SerializeToString()
    assert body.count(b"\x18\x01") == 1
    _expect(env, "/tunnel/heartbeat", body.replace(b"\x18\x01", b"\x18\x09"), 400, "OTSParameterInvalid",
            "channels[0].status")


def test_numbers_beyond_what_storage_holds_are_refused(env):
    _expect(env, "/tunnel/connect", pb.ConnectRequest(tunnel_id=env["tunnel"], client_config=pb.ClientConfig(
        timeout=2 ** 62)), 400, "OTSParameterInvalid", str(2 ** 62))
    _expect(env, "/tunnel/create", pb.CreateTunnelRequest(tunnel=pb.Tunnel(
        table_name="t", tunnel_name="x", tunnel_type=pb.Stream,
        stream_tunnel_config=pb.StreamTunnelConfig(endOffset=2 ** 64 - 1))), 400, "OTSParameterInvalid",
        f"endOffset {2 ** 64 - 1} ns")
    request = pb.HeartbeatRequest(tunnel_id=env["tunnel"], client_id=env["client"])
    request.channels.add(channel_id=env["channel"], version=2 ** 63 - 1, status=pb.CLOSE)
    _expect(env, "/tunnel/heartbeat", request, 400, "OTSParameterInvalid", f"version {2 ** 63 - 1}")
    # The refused report changed nothing: the client still holds its channel.
    status, answer = _post(env, "/tunnel/heartbeat", pb.HeartbeatRequest(
        tunnel_id=env["tunnel"], client_id=env["client"]))
    assert status == 200 and [(c.channel_id, c.status) for c in answer.channels] == [(env["channel"], pb.OPEN)]


def test_server_keeps_serving_after_abuse(env):
    status, listed = _post(env, "/tunnel/list", pb.ListTunnelRequest())
    assert status == 200 and sorted(t.tunnel_name for t in listed.tunnels) == ["b", "s"]
    status, answer = _post(env, "/tunnel/heartbeat", pb.HeartbeatRequest(
        tunnel_id=env["tunnel"], client_id=env["client"]))
    assert status == 200 and [c.channel_id for c in answer.channels] == [env["channel"]]
