"""Error translation and retries, end to end over loopback.

Retries run on the fake clock of conftest.py: backoff is recorded, never
slept, so deadline behaviour is exact and fast.
"""

from __future__ import annotations

import socket

import pytest

from _scripted_server import Drop, Fail, Ok, Raw, Stall
from _client_support import ACCESS_KEY_ID, INSTANCE, SECRET, policy
from beam_tunnel import errors
from beam_tunnel.client import TunnelClient
from beam_tunnel.protocol import tunnel_pb2 as pb

CHECKPOINT_OK = Ok(pb.GetCheckpointResponse(checkpoint="tok-A", sequence_number=1))


def get_checkpoint(client):
    return client.get_checkpoint("tid-1", "client-1", "shard-1")


# ---- retriable failures ------------------------------------------------------


def test_server_unavailable_then_success_is_retried(server, client, clock):
    server.script("/tunnel/getcheckpoint", Fail(503, "OTSTunnelServerUnavailable", "busy"), CHECKPOINT_OK)

    assert get_checkpoint(client) == ("tok-A", 1)

    assert len(server.requests_to("/tunnel/getcheckpoint")) == 2
    assert len(clock.sleeps) == 1 and 0.01 * 0.67 <= clock.sleeps[0] <= 0.01 * 1.33


def test_server_unavailable_is_retried_for_non_idempotent_calls_too(server, client):
    # The service says it did nothing, so even CreateTunnel may be re-sent.
    server.script("/tunnel/create", Fail(503, "OTSTunnelServerUnavailable"), Ok(pb.CreateTunnelResponse(tunnel_id="t")))

    assert client.create_tunnel("orders", "sync", "Stream") == "t"
    assert len(server.requests_to("/tunnel/create")) == 2


def test_dropped_connection_is_retried_for_idempotent_call(server, client):
    server.script("/tunnel/getcheckpoint", Drop(), Drop(), CHECKPOINT_OK)

    assert get_checkpoint(client) == ("tok-A", 1)
    assert len(server.requests_to("/tunnel/getcheckpoint")) == 3


def test_dropped_connection_is_not_retried_for_checkpoint(server, client):
    # The lost request may have been stored: re-sending would fail with
    # OTSSequenceNumberNotMatch, so the caller gets the ambiguity instead.
    server.script("/tunnel/checkpoint", Drop(), Ok(pb.CheckpointResponse()))

    with pytest.raises(errors.TransportError) as caught:
        client.checkpoint("tid-1", "client-1", "shard-1", "tok-B", 2)

    assert not isinstance(caught.value, errors.RequestNotSentError)
    assert "connection to http://127.0.0.1" in str(caught.value)
    assert len(server.requests_to("/tunnel/checkpoint")) == 1
    assert server.pending() == {"/tunnel/checkpoint": 1}


def test_read_timeout_is_retried_only_for_idempotent_calls(server, clock):
    server.script("/tunnel/getcheckpoint", Stall(0.3), CHECKPOINT_OK)
    server.script("/tunnel/connect", Stall(0.3), Ok(pb.ConnectResponse(client_id="c")))
    with TunnelClient(server.endpoint, INSTANCE, ACCESS_KEY_ID, SECRET, timeout=(2.0, 0.1),
                      meta_retry=policy(clock)) as client:
        assert get_checkpoint(client) == ("tok-A", 1)
        with pytest.raises(errors.TransportError) as caught:
            client.connect("tid-1")

    assert "within the read timeout" in str(caught.value)
    assert len(server.requests_to("/tunnel/getcheckpoint")) == 2
    assert server.pending() == {"/tunnel/connect": 1}


def test_refused_connection_is_retried_until_the_deadline(clock):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = TunnelClient(f"http://127.0.0.1:{port}", INSTANCE, ACCESS_KEY_ID, SECRET,
                          meta_retry=policy(clock, deadline_s=0.3))

    with pytest.raises(errors.RequestNotSentError) as caught, client:
        client.connect("tid-1")  # not idempotent, but never sent: safe to retry

    assert "cannot connect" in str(caught.value) and "Connection refused" in str(caught.value)
    assert len(clock.sleeps) >= 4
    assert sum(clock.sleeps) <= 0.3


def test_deadline_exceeded_raises_the_last_error(server, clock):
    server.script("/tunnel/getcheckpoint", *[Fail(503, "OTSTunnelServerUnavailable", "busy")] * 40)
    with TunnelClient(server.endpoint, INSTANCE, ACCESS_KEY_ID, SECRET,
                      meta_retry=policy(clock, deadline_s=0.5)) as client:
        with pytest.raises(errors.ServerUnavailableError) as caught:
            get_checkpoint(client)

    attempts = server.requests_to("/tunnel/getcheckpoint")
    assert len(attempts) == len(clock.sleeps) + 1
    # Stopped because one more wait (at most the 0.08 s cap plus jitter)
    # would have passed the deadline, not earlier.
    assert sum(clock.sleeps) <= 0.5 < sum(clock.sleeps) + 0.08 * 1.33
    # Request ids count up per answer: the raised error is the last one.
    assert caught.value.request_id == f"req-{len(attempts):04d}"
    assert caught.value.retriable and caught.value.http_status == 503


def test_retry_deadline_zero_means_one_attempt(server, clock):
    server.script("/tunnel/getcheckpoint", Fail(503, "OTSTunnelServerUnavailable"), CHECKPOINT_OK)
    with TunnelClient(server.endpoint, INSTANCE, ACCESS_KEY_ID, SECRET,
                      meta_retry=policy(clock), retry_deadline=0) as client:
        with pytest.raises(errors.ServerUnavailableError):
            get_checkpoint(client)
    assert len(server.requests_to("/tunnel/getcheckpoint")) == 1


def test_html_5xx_is_retried_for_idempotent_calls(server, client):
    server.script("/tunnel/getcheckpoint", Raw(502, b"<html>Bad Gateway</html>"), CHECKPOINT_OK)

    assert get_checkpoint(client) == ("tok-A", 1)
    assert len(server.requests_to("/tunnel/getcheckpoint")) == 2


def test_html_5xx_on_create_is_raised_as_unavailable(server, client):
    server.script("/tunnel/create", Raw(502, b"<html>Bad Gateway</html>"), Ok(pb.CreateTunnelResponse(tunnel_id="t")))

    with pytest.raises(errors.TransportError) as caught:
        client.create_tunnel("orders", "sync", "Stream")

    err = caught.value
    assert err.code == "OTSTunnelServerUnavailable" and err.http_status == 502 and err.retriable
    assert "Bad Gateway" in err.message and err.request_id == "req-0001"
    assert len(server.requests_to("/tunnel/create")) == 1


# ---- failures that stop at once -------------------------------------------------


@pytest.mark.parametrize(
    "status, code, cls, advice",
    [
        (400, "OTSParameterInvalid", errors.ParameterInvalidError, "check the ids and names"),
        (400, "OTSTunnelExpired", errors.TunnelExpiredError, "create a new tunnel"),
        (403, "OTSPermissionDenied", errors.PermissionDeniedError, f"RAM policy of AccessKey '{ACCESS_KEY_ID}'"),
        (403, "OTSAuthFailed", errors.AuthFailedError, "clock is correct"),
        (410, "OTSResourceGone", errors.ResourceGoneError, ""),
        (404, "OTSObjectNotExist", errors.ObjectNotExistError, ""),
    ],
)
def test_fatal_codes_fail_at_once_with_actionable_message(server, client, clock, status, code, cls, advice):
    server.script("/tunnel/getcheckpoint", Fail(status, code, "server says no"), CHECKPOINT_OK)

    with pytest.raises(cls) as caught:
        get_checkpoint(client)

    err = caught.value
    assert not isinstance(err, errors.ConfigError)
    assert (err.code, err.http_status, err.request_id, err.retriable) == (code, status, "req-0001", False)
    assert err.message.startswith("GetCheckpoint: server says no")
    assert advice in err.message
    assert clock.sleeps == [] and server.pending() == {"/tunnel/getcheckpoint": 1}


def test_sequence_number_mismatch_on_checkpoint(server, client):
    server.script("/tunnel/checkpoint", Fail(400, "OTSSequenceNumberNotMatch", "expect 5"))

    with pytest.raises(errors.SequenceNumberMismatchError) as caught:
        client.checkpoint("tid-1", "client-1", "shard-1", "tok-B", 3)

    assert "expect 5" in str(caught.value)


def test_unknown_code_keeps_the_code(server, client):
    server.script("/tunnel/heartbeat", Fail(500, "OTSBrandNewThing", "surprise"))

    with pytest.raises(errors.ServiceError) as caught:
        client.heartbeat("tid-1", "client-1", [])

    assert caught.value.code == "OTSBrandNewThing" and not caught.value.retriable
    assert len(server.requests_to("/tunnel/heartbeat")) == 1


def test_html_4xx_is_a_protocol_error_with_status(server, client):
    server.script("/tunnel/getcheckpoint", Raw(404, b"Not Found"))

    with pytest.raises(errors.ProtocolError) as caught:
        get_checkpoint(client)

    assert caught.value.http_status == 404 and "Not Found" in caught.value.message


def test_redirect_is_not_followed(server, client):
    moved = Raw(307, b"", headers=(("Location", server.endpoint + "/tunnel/list"),))
    server.script("/tunnel/getcheckpoint", moved)

    with pytest.raises(errors.ProtocolError) as caught:
        get_checkpoint(client)

    assert caught.value.http_status == 307
    assert [r.path for r in server.received] == ["/tunnel/getcheckpoint"]


def test_wrong_secret_is_rejected_by_signature_check(server, clock):
    with TunnelClient(server.endpoint, INSTANCE, ACCESS_KEY_ID, SECRET + "x", meta_retry=policy(clock)) as client:
        with pytest.raises(errors.AuthFailedError):
            client.list_tunnels()
    (sent,) = server.received
    assert sent.rejection == "signature mismatch"


# ---- broken answers ------------------------------------------------------------


def test_response_md5_mismatch_is_a_protocol_error(server, client, clock):
    bad = Ok(pb.GetCheckpointResponse(checkpoint="tok-A", sequence_number=1), md5="AAAAAAAAAAAAAAAAAAAAAA==")
    server.script("/tunnel/getcheckpoint", bad, CHECKPOINT_OK)

    with pytest.raises(errors.ProtocolError) as caught:
        get_checkpoint(client)

    assert "x-ots-contentmd5 'AAAAAAAAAAAAAAAAAAAAAA==' does not match" in caught.value.message
    assert clock.sleeps == []


def test_response_without_md5_or_authorization_is_accepted(server, client):
    no_md5 = Ok(pb.GetCheckpointResponse(checkpoint="tok-A", sequence_number=1), md5=None)
    server.script("/tunnel/getcheckpoint", no_md5)

    assert get_checkpoint(client) == ("tok-A", 1)


def test_answer_missing_required_fields_is_a_protocol_error(server, client):
    server.script("/tunnel/getcheckpoint", Ok(pb.GetCheckpointResponse()))

    with pytest.raises(errors.ProtocolError) as caught:
        get_checkpoint(client)

    assert "checkpoint" in caught.value.message and "sequence_number" in caught.value.message


def test_garbage_success_body_is_a_protocol_error(server, client):
    server.script("/tunnel/connect", Raw(200, b"\xff\xff\xff garbage"))

    with pytest.raises(errors.ProtocolError) as caught:
        client.connect("tid-1")

    assert "is not a ConnectResponse" in caught.value.message


def test_closed_client_refuses_calls(server, client):
    client.close()
    client.close()  # idempotent

    with pytest.raises(errors.TunnelError) as caught:
        client.list_tunnels()

    assert "closed" in str(caught.value)
    assert server.received == []


# ---- bounded error state -----------------------------------------------------------


def test_a_long_message_is_cut_saying_how_much_was_left_out():
    err = errors.TunnelError("y" * 100_000)

    assert len(err.message) <= errors.MAX_MESSAGE_CHARS + 40
    assert err.message.endswith(f"... ({100_000 - errors.MAX_MESSAGE_CHARS} more characters)")


def test_unknown_codes_are_remembered_only_up_to_a_bound():
    # A server naming a new code in every answer must not grow memory forever.
    classes = [errors.for_code(f"OTSMadeUp{i}") for i in range(1000)]

    assert len(errors._BY_CODE) <= 300
    assert classes[-1].default_code == "OTSMadeUp999" and issubclass(classes[-1], errors.ServiceError)
    assert errors.for_code("OTSMadeUp0") is classes[0]
