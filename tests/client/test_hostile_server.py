"""The client against a server that misbehaves on the wire: cut answers,
lying lengths, floods, trickles, garbage, wrong MD5, silence.

Every call must end with the right TunnelError subclass, a message naming
what was wrong, and within its documented bound: retry deadline + connect
timeout + read timeout (README, "What the client guarantees"). Time is
measured only to check that bound, with generous slack for a loaded machine.
"""

from __future__ import annotations

import contextlib
import time
import tracemalloc

import pytest
import requests

from _client_support import ACCESS_KEY_ID, INSTANCE, SECRET
from _hostile_server import Flood, Hang, HostileServer, Send, Trickle, http_answer
from beam_tunnel import errors
from beam_tunnel.client import RetryPolicy, TunnelClient
from beam_tunnel.client.transport import MAX_ANSWER_BYTES, MAX_ANSWER_ENTRIES
from beam_tunnel.protocol import signing
from beam_tunnel.protocol import tunnel_pb2 as pb

CONNECT_S, READ_S, DEADLINE_S = 0.5, 0.6, 0.5
# Scheduling noise on a shared 2-core machine, not part of the bound.
SLACK_S = 1.5
CALL_BOUND_S = DEADLINE_S + CONNECT_S + READ_S + SLACK_S
ROOMY_READ_S = 30.0
ROOMY_BOUND_S = CONNECT_S + ROOMY_READ_S + SLACK_S


def ok(message, *, md5=True, length=None) -> bytes:
    """A 200 answer carrying ``message`` (bytes or a protobuf message)."""
    body = message if isinstance(message, bytes) else message.SerializeToString()
    headers = [("x-ots-requestid", "req-hostile")]
    if md5:
        headers.append(("x-ots-contentmd5", signing.content_md5(body)))
    return http_answer(200, body, headers, length=length)


@pytest.fixture
def server():
    with HostileServer() as srv:
        yield srv


@pytest.fixture
def client(server):
    policy = RetryPolicy(initial_backoff_s=0.05, max_backoff_s=0.2, deadline_s=DEADLINE_S)
    with TunnelClient(server.endpoint, INSTANCE, ACCESS_KEY_ID, SECRET, timeout=(CONNECT_S, READ_S),
                      read_retry=policy, meta_retry=policy) as c:
        yield c


@pytest.fixture
def roomy_client(server):
    """A client with time to move tens of MiB on a loaded machine, for the
    tests of size limits (which are not about time); no retries."""
    with TunnelClient(server.endpoint, INSTANCE, ACCESS_KEY_ID, SECRET, timeout=(CONNECT_S, ROOMY_READ_S),
                      retry_deadline=0) as c:
        yield c


@contextlib.contextmanager
def ends_within(seconds: float):
    started = time.monotonic()
    yield
    elapsed = time.monotonic() - started
    assert elapsed <= seconds, f"the call took {elapsed:.2f}s, more than its bound of {seconds:.2f}s"


CALLS = {
    "checkpoint": lambda c: c.checkpoint("tid", "cid", "ch", "tok", 1),
    "shutdown": lambda c: c.shutdown("tid", "cid"),
    "heartbeat": lambda c: c.heartbeat("tid", "cid", []),
    "list_tunnels": lambda c: c.list_tunnels(),
}
IDEMPOTENT = {"checkpoint": False, "shutdown": True, "heartbeat": True, "list_tunnels": True}


def expect(server, client, call, error_class, *fragments, slow=False):
    """Run ``call``; check the error class, message fragments, the time bound
    and that only idempotent calls were retried (a ``slow`` failure, one that
    takes a whole attempt, leaves no time in the deadline for a retry).
    Returns the error."""
    with ends_within(CALL_BOUND_S), pytest.raises(error_class) as caught:
        CALLS[call](client)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, message
    assert len(message) < 4096, f"{len(message)}-character message"
    if IDEMPOTENT[call] and not slow:
        assert server.requests >= 2, "an idempotent call should have been retried"
    else:
        assert server.requests == 1, "a non-idempotent call must not be re-sent after the service saw it"
    return caught.value


# ---- truncated answers are errors, never empty successes -----------------------


@pytest.mark.parametrize("call", sorted(CALLS))
def test_status_line_then_close_is_truncated(server, client, call):
    server.queue(Send(b"HTTP/1.1 200 OK\r\n"))

    expect(server, client, call, errors.TruncatedResponseError, "headers", "cut")


@pytest.mark.parametrize("call", sorted(CALLS))
def test_cut_header_line_is_truncated(server, client, call):
    server.queue(Send(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nx-ots-reque"))

    expect(server, client, call, errors.TruncatedResponseError, "headers")


def test_headers_without_their_blank_line_are_truncated(server, client):
    # Every header line is whole and says the body is empty, but the blank
    # line that ends the headers never came: the answer was cut.
    server.queue(Send(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nx-ots-contentmd5: 1B2M2Y8AsgTpgAmY7PhCfg==\r\n"))

    expect(server, client, "checkpoint", errors.TruncatedResponseError, "headers")


@pytest.mark.parametrize("call", sorted(CALLS))
def test_body_shorter_than_content_length_is_truncated(server, client, call):
    server.queue(Send(ok(b"\x0a\x02ab", length=100)))

    expect(server, client, call, errors.TruncatedResponseError, "4 of the 100 bytes")


def test_chunked_body_cut_before_its_last_chunk_is_truncated(server, client):
    server.queue(Send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n\x0a\x00\r\n"))

    expect(server, client, "heartbeat", errors.TruncatedResponseError, "chunked")


def test_close_delimited_body_without_md5_is_truncated(server, client):
    # Without Content-Length, chunks or an MD5, a cut connection and the
    # end of the answer look the same.
    server.queue(Send(ok(b"", md5=False, length=-1)))

    expect(server, client, "shutdown", errors.TruncatedResponseError, "Content-Length", "whole")


def test_close_delimited_body_with_matching_md5_is_accepted(server, client):
    channel = pb.Channel(channel_id="ch-1", version=3, status=pb.OPEN)
    server.queue(Send(ok(pb.HeartbeatResponse(channels=[channel]), length=-1)))

    (got,) = client.heartbeat("tid", "cid", [])

    assert (got.channel_id, got.version) == ("ch-1", 3)


@pytest.mark.parametrize("call", ["checkpoint", "shutdown"])
def test_empty_message_with_valid_framing_is_a_success(server, client, call):
    # CheckpointResponse and ShutdownResponse have no fields: an empty body
    # with Content-Length 0 (and the MD5 of nothing) is the service's answer.
    server.queue(Send(ok(b"")))

    assert CALLS[call](client) is None
    assert server.requests == 1


def test_empty_heartbeat_without_md5_is_a_success_when_framed(server, client):
    server.queue(Send(ok(b"", md5=False)))

    assert client.heartbeat("tid", "cid", []) == []


def test_empty_body_for_a_call_with_required_fields_is_a_protocol_error(server, client):
    server.queue(Send(ok(b"")))

    with pytest.raises(errors.ProtocolError) as caught:
        client.connect("tid")

    assert "client_id" in str(caught.value)


# ---- size limits -----------------------------------------------------------------


def test_huge_declared_length_fails_before_reading(server, roomy_client):
    server.queue(Flood(b"HTTP/1.1 200 OK\r\nContent-Length: 300000000\r\n\r\n", total=300_000_000))

    with ends_within(ROOMY_BOUND_S), pytest.raises(errors.ResponseTooLargeError) as caught:
        roomy_client.list_tunnels()

    assert "300000000" in str(caught.value) and f"{MAX_ANSWER_BYTES}" in str(caught.value)
    assert not caught.value.retriable
    # Refused on the header: the server got no further than socket buffers hold.
    assert server.flooded < MAX_ANSWER_BYTES


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
def test_huge_undeclared_body_stops_at_the_cap_without_holding_it(server, roomy_client, chunked):
    head = b"HTTP/1.1 200 OK\r\n" + (b"Transfer-Encoding: chunked\r\n" if chunked else b"") + b"\r\n"
    server.queue(Flood(head, total=300_000_000, chunked=chunked))
    tracemalloc.start()
    try:
        with ends_within(ROOMY_BOUND_S), pytest.raises(errors.ResponseTooLargeError) as caught:
            roomy_client.read_records("tid", "cid", "ch", "tok")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert f"more than {MAX_ANSWER_BYTES}" in str(caught.value)
    assert peak < 2 * MAX_ANSWER_BYTES, f"peak {peak} bytes"
    assert server.flooded < 2 * MAX_ANSWER_BYTES


def test_many_empty_entries_are_refused_before_decoding(server, roomy_client):
    # 4 MB of empty TunnelInfos: two million entries, each a message to build.
    body = b"\x0a\x00" * 2_000_000
    server.queue(Send(ok(body)))

    with ends_within(ROOMY_BOUND_S), pytest.raises(errors.ResponseTooLargeError) as caught:
        roomy_client.list_tunnels()

    assert f"more than {MAX_ANSWER_ENTRIES} entries" in str(caught.value)
    assert len(str(caught.value)) < 1000


def test_missing_fields_of_many_entries_are_summarised(server, roomy_client):
    body = b"\x0a\x00" * 100_000
    server.queue(Send(ok(body)))

    with pytest.raises(errors.ProtocolError) as caught:
        roomy_client.list_tunnels()

    message = str(caught.value)
    assert "tunnels[0].tunnel_id" in message and "more" in message
    assert len(message) < 1000


def test_a_huge_error_message_is_cut_in_the_exception(server, client):
    error = pb.Error(code="OTSParameterInvalid", message="x" * 1_000_000)
    server.queue(Send(http_answer(400, error.SerializeToString())))

    with pytest.raises(errors.ParameterInvalidError) as caught:
        client.list_tunnels()

    message = str(caught.value)
    assert "xxxx" in message and "more characters" in message
    assert len(message) < 4096


def test_an_absurd_error_code_is_not_turned_into_a_class(server, client):
    error = pb.Error(code="OTS" + "Z" * 100_000, message="hi")
    server.queue(Send(http_answer(400, error.SerializeToString())))

    with pytest.raises(errors.ProtocolError) as caught:
        client.list_tunnels()

    assert "not a Tunnel error" in str(caught.value) and len(str(caught.value)) < 4096


# ---- garbage and corruption --------------------------------------------------------


def test_garbage_body_is_a_protocol_error(server, client):
    server.queue(Send(ok(b"\xff\xfe\xfd garbage \x00" * 10)))

    with ends_within(CALL_BOUND_S), pytest.raises(errors.ProtocolError) as caught:
        client.list_tunnels()

    assert "is not a ListTunnelResponse" in str(caught.value)
    assert server.requests == 1


def test_wrong_md5_is_a_protocol_error(server, client):
    body = pb.ConnectResponse(client_id="c1").SerializeToString()
    server.queue(Send(http_answer(200, body, [("x-ots-contentmd5", "AAAAAAAAAAAAAAAAAAAAAA==")])))

    with pytest.raises(errors.ProtocolError) as caught:
        client.connect("tid")

    assert "x-ots-contentmd5" in str(caught.value) and "corrupted" in str(caught.value)


def test_garbage_status_line_is_a_transport_error(server, client):
    server.queue(Send(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"))

    expect(server, client, "heartbeat", errors.TransportError, "SSH-2.0")


# ---- silence and trickles: every call ends within its bound -------------------------


@pytest.mark.parametrize("call", ["checkpoint", "list_tunnels"])
def test_a_silent_server_ends_the_call_within_its_bound(server, client, call):
    server.queue(Hang())

    expect(server, client, call, errors.TransportError, "read timeout", slow=True)


@pytest.mark.parametrize("where", ["headers", "body"])
@pytest.mark.parametrize("call", ["checkpoint", "list_tunnels"])
def test_a_trickle_ends_the_call_within_its_bound(server, client, call, where):
    # One byte every 0.2 s never trips the 0.6 s per-read timeout; only a
    # bound on the whole answer ends it.
    answer = ok(b"\x12\x00" * 200)  # 200 empty unknown fields: a valid, long body
    head, _, body = answer.partition(b"\r\n\r\n")
    if where == "headers":
        server.queue(Trickle(answer, 0.2))
    else:
        server.queue(Trickle(body, 0.2, prefix=head + b"\r\n\r\n"))

    err = expect(server, client, call, errors.TransportError, "read timeout", "bytes", slow=True)
    assert not isinstance(err, errors.RequestNotSentError)


def test_the_bound_holds_with_a_session_the_user_passed(server):
    # The session's settings are used, but requests go through the client's
    # own adapter, so its wall-clock bound still applies.
    session = requests.Session()
    session.headers["X-From-User"] = "1"
    server.queue(Trickle(ok(b"\x12\x00" * 200), 0.2))
    try:
        with TunnelClient(server.endpoint, INSTANCE, ACCESS_KEY_ID, SECRET, timeout=(CONNECT_S, READ_S),
                          retry_deadline=0, session=session) as client:
            with ends_within(CONNECT_S + READ_S + SLACK_S), pytest.raises(errors.TransportError) as caught:
                client.shutdown("tid", "cid")
    finally:
        session.close()

    assert "read timeout" in str(caught.value)


def test_a_cut_close_delimited_body_fails_its_md5(server, client):
    whole = pb.HeartbeatResponse(channels=[pb.Channel(channel_id="ch-1", version=3, status=pb.OPEN)])
    answer = ok(whole, length=-1)
    server.queue(Send(answer[:-4]))  # the MD5 of the whole body, with its last bytes cut

    with pytest.raises(errors.ProtocolError) as caught:
        client.heartbeat("tid", "cid", [])

    assert "does not match" in str(caught.value)


def test_conflicting_content_lengths_are_refused(server, client):
    server.queue(Send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 7\r\n\r\n\x0a\x00"))

    with ends_within(CALL_BOUND_S), pytest.raises(errors.ProtocolError) as caught:
        client.list_tunnels()

    assert "Content-Length" in str(caught.value) and "(2, 7)" in str(caught.value)
    assert server.requests == 1, "an answer that breaks the protocol is not worth asking for again"
