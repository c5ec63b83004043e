"""The wire layer's limits, driven with raw sockets and hand-made requests:
bounded error messages, strict body framing, deadlines for slow peers, the
connection cap. After each abuse the server still answers a normal request."""

import socket
import threading
import time
import urllib.parse

import pytest

from beam_tunnel.emulator import EmulatorServer
from beam_tunnel.emulator.wire.http import MAX_ERROR_MESSAGE_CHARS
from beam_tunnel.protocol import table_pb2
from beam_tunnel.protocol import tunnel_pb2 as pb

from wire_kit import RawClient


def _error(body):
    error = table_pb2.Error.FromString(body)
    return error.code, error.message


def _list_tables_ok(server):
    raw = RawClient(server)
    try:
        status, _, body = raw.post("/ListTable")
        assert status == 200
        return list(table_pb2.ListTableResponse.FromString(body).table_names)
    finally:
        raw.close()


def _connect(server, timeout=10):
    parsed = urllib.parse.urlsplit(server.endpoint)
    return socket.create_connection((parsed.hostname, parsed.port), timeout=timeout)


def _head(raw, path, body, framing):
    """Signed request line and headers; ``framing`` is the raw framing header block."""
    lines = [f"POST {path} HTTP/1.1", "Host: emulator"]
    lines += [f"{name}: {value}" for name, value in raw.headers(path, body).items()]
    return ("\r\n".join(lines) + "\r\n" + framing + "\r\n").encode()


def _read_answer(sock):
    """(status, headers, body) of one answer, reading until the body is complete."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed after {data!r}")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines[1:])}
    length = int(headers["content-length"])
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return int(lines[0].split()[1]), headers, rest[:length]


def _closed_by_server(sock, within_s):
    """True when the server closes ``sock`` (reads return EOF) within ``within_s``."""
    sock.settimeout(within_s)
    try:
        while sock.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


# --- error amplification -------------------------------------------------


def test_many_empty_submessages_get_a_short_error(server):
    # 200,000 empty Channels: every one misses three required fields.
    body = pb.HeartbeatRequest(tunnel_id="t", client_id="c").SerializeToString() + b"\x1a\x00" * 200_000
    raw = RawClient(server)
    status, _, answer = raw.post("/tunnel/heartbeat", body, api_version="2018-04-01")
    raw.close()
    code, message = _error(answer)
    assert (status, code) == (400, "OTSParameterInvalid")
    assert len(answer) < 4096, len(answer)
    assert "channels[0].channel_id" in message and "at least" in message and "more" in message


def test_few_missing_fields_are_all_named_with_an_exact_count(server):
    body = b"\x1a\x00" * 5  # five empty Channels: 15 missing fields plus the two ids
    raw = RawClient(server)
    status, _, answer = raw.post("/tunnel/heartbeat", body, api_version="2018-04-01")
    raw.close()
    code, message = _error(answer)
    assert (status, code) == (400, "OTSParameterInvalid")
    assert "tunnel_id" in message and "channels[4].status" not in message and message.endswith("and 7 more.")


def test_long_values_in_error_messages_are_cut(server):
    raw = RawClient(server)
    path = "/" + "x" * 60_000
    status, _, answer = raw.post(path)
    raw.close()
    code, message = _error(answer)
    assert (status, code) == (400, "OTSUnsupportOperation")
    assert len(message) < MAX_ERROR_MESSAGE_CHARS + 100 and "more characters" in message


# --- framing ---------------------------------------------------------------


def _send_chunked(server, chunks_wire, body_for_md5=b""):
    raw = RawClient(server)
    sock = _connect(server)
    sock.sendall(_head(raw, "/ListTable", body_for_md5, "Transfer-Encoding: chunked\r\n") + chunks_wire)
    raw.close()
    return sock


@pytest.mark.parametrize(
    "wire, needle",
    [
        (b"-5\r\n", "'-5'"),                      # read to EOF before the fix
        (b"-" + b"f" * 20 + b"\r\n", "'-ffff"),  # an unhandled ValueError before the fix
        (b"+5\r\nhello\r\n0\r\n\r\n", "'+5'"),
        (b"0x5\r\nhello\r\n0\r\n\r\n", "'0x5'"),
        (b"5\r\nhelloXX0\r\n\r\n", "instead of CRLF"),
        (b"f" * 40 + b"\r\n", "at most 15 digits"),
        (b"1;" + b"e" * 2000 + b"\r\n", "longer than 1024"),
    ],
)
def test_bad_chunked_framing_is_a_clear_400(server, wire, needle):
    with _send_chunked(server, wire) as sock:
        status, headers, answer = _read_answer(sock)
        code, message = _error(answer)
        assert (status, code) == (400, "OTSParameterInvalid"), message
        assert needle in message and headers["connection"] == "close"
        assert _closed_by_server(sock, 5)
    assert _list_tables_ok(server) == []


def test_chunked_size_limit_counts_the_decoded_body():
    with EmulatorServer(max_body_bytes=1000) as server:
        chunk = b"100\r\n" + b"\x00" * 256 + b"\r\n"
        with _send_chunked(server, chunk * 5) as sock:
            status, _, answer = _read_answer(sock)
            code, message = _error(answer)
            assert (status, code) == (400, "OTSParameterInvalid") and "limit of 1000 bytes" in message
        assert _list_tables_ok(server) == []


def test_chunked_body_with_extensions_and_trailers_is_read(server):
    body = table_pb2.ListTableRequest().SerializeToString()
    with _send_chunked(server, b"0;name=value\r\nX-Trailer: 1\r\n\r\n", body) as sock:
        status, _, answer = _read_answer(sock)
        assert status == 200, answer


@pytest.mark.parametrize(
    "framing, needle",
    [
        ("Content-Length: 0\r\nContent-Length: 5\r\n", "Conflicting Content-Length"),
        ("Content-Length: 0\r\nTransfer-Encoding: chunked\r\n", "ambiguous"),
        ("Transfer-Encoding: gzip, chunked\r\n", "'gzip, chunked'"),
        ("Transfer-Encoding: identity\r\n", "'identity'"),
        ("Content-Length: +0\r\n", "'+0'"),
        ("Content-Length: 0x10\r\n", "'0x10'"),
    ],
)
def test_ambiguous_framing_is_a_clear_400(server, framing, needle):
    raw = RawClient(server)
    with _connect(server) as sock:
        sock.sendall(_head(raw, "/ListTable", b"", framing))
        status, headers, answer = _read_answer(sock)
        code, message = _error(answer)
        assert (status, code) == (400, "OTSParameterInvalid"), message
        assert needle in message and headers["connection"] == "close"
    raw.close()
    assert _list_tables_ok(server) == []


@pytest.mark.parametrize("framing", ["".join(f"X-Pad-{n}: {n}\r\n" for n in range(150)),
                                     "X-Long: " + "y" * 70_000 + "\r\n"])
def test_too_many_or_too_long_headers_are_a_400(server, framing):
    raw = RawClient(server)
    with _connect(server) as sock:
        sock.sendall(_head(raw, "/ListTable", b"", framing))
        status, _, answer = _read_answer(sock)
        code, message = _error(answer)
        assert (status, code) == (400, "OTSParameterInvalid") and "Malformed HTTP request (431)" in message
    raw.close()


def test_repeated_equal_content_length_is_accepted(server):
    raw = RawClient(server)
    with _connect(server) as sock:
        sock.sendall(_head(raw, "/ListTable", b"", "Content-Length: 0\r\nContent-Length: 0\r\n"))
        assert _read_answer(sock)[0] == 200
    raw.close()


# --- slow peers --------------------------------------------------------------


@pytest.fixture
def quick_server():
    with EmulatorServer(header_timeout_s=0.5, body_timeout_s=0.5, idle_timeout_s=1.0) as running:
        yield running


def test_slowloris_headers_time_out_with_408(quick_server):
    raw = RawClient(quick_server)
    head = _head(raw, "/ListTable", b"", "Content-Length: 0\r\n")
    raw.close()
    with _connect(quick_server) as sock:
        started = time.monotonic()

        def trickle():
            # One byte every 0.1 s: each recv is quick, the whole is too slow.
            try:
                for byte in head[:30]:
                    sock.sendall(bytes([byte]))
                    time.sleep(0.1)
            except OSError:
                pass  # the server hung up, as it should

        sender = threading.Thread(target=trickle, daemon=True)
        sender.start()
        status, _, answer = _read_answer(sock)
        sender.join(10)
        assert (status, _error(answer)[0]) == (408, "OTSRequestTimeout")
        assert "headers not received within 0.5 s" in _error(answer)[1]
        assert _closed_by_server(sock, 5)
        assert time.monotonic() - started < 5
    assert _list_tables_ok(quick_server) == []


def test_stalled_body_times_out_with_408(quick_server):
    raw = RawClient(quick_server)
    with _connect(quick_server) as sock:
        sock.sendall(_head(raw, "/PutRow", b"x" * 100, "Content-Length: 100\r\n") + b"x" * 10)
        status, _, answer = _read_answer(sock)
        assert (status, _error(answer)[0]) == (408, "OTSRequestTimeout")
        assert _closed_by_server(sock, 5)
    raw.close()


def test_silent_and_idle_connections_are_closed(quick_server):
    with _connect(quick_server) as silent:
        assert _closed_by_server(silent, 5)
    raw = RawClient(quick_server)
    assert raw.post("/ListTable")[0] == 200
    started = time.monotonic()
    assert _closed_by_server(raw.conn.sock, 5)
    assert 0.8 < time.monotonic() - started < 4  # idle_timeout_s, not the header timeout
    raw.close()


def test_keep_alive_within_the_idle_timeout_reuses_the_connection(quick_server):
    raw = RawClient(quick_server)
    assert raw.post("/ListTable")[0] == 200
    sock = raw.conn.sock
    for _ in range(3):
        time.sleep(0.3)
        assert raw.post("/ListTable")[0] == 200
    assert raw.conn.sock is sock
    raw.close()


# --- connection cap --------------------------------------------------------


def test_stalled_connections_cannot_take_more_threads_than_the_cap():
    with EmulatorServer(max_connections=8, header_timeout_s=30, body_timeout_s=30) as server:
        raw = RawClient(server)
        head = _head(raw, "/PutRow", b"x" * 1000, "Content-Length: 1000\r\n")
        raw.close()
        before = threading.active_count()
        stalled = []
        try:
            for _ in range(40):
                sock = _connect(server)
                sock.sendall(head + b"x")  # a body that never completes
                stalled.append(sock)
            time.sleep(0.5)
            assert server._httpd.connection_count <= 8
            assert threading.active_count() <= before + 8
            # The stalled ones are busy, not idle: a newcomer is told to come back.
            with _connect(server) as sock:
                status, _, answer = _read_answer(sock)
                assert (status, _error(answer)[0]) == (503, "OTSServerBusy")
                assert "limit of 8 connections" in _error(answer)[1]
        finally:
            for sock in stalled:
                sock.close()
        deadline = time.monotonic() + 10
        while server._httpd.connection_count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _list_tables_ok(server) == []


def test_at_the_cap_the_longest_idle_connection_makes_room():
    from tunnel_kit import ots_client

    with EmulatorServer(max_connections=3) as server:
        ots = ots_client(server)  # the official SDK, no retries
        assert ots.list_table() == ()
        clients = [RawClient(server) for _ in range(3)]
        for client in clients:
            assert client.post("/ListTable")[0] == 200
        assert server._httpd.connection_count <= 3
        # An idle connection (the SDK's, the oldest, unless its handler had
        # not yet gone idle) was closed to make room; the SDK's pool notices
        # and reconnects, evicting an idle raw connection in turn.
        assert ots.list_table() == ()
        assert server._httpd.connection_count <= 3
        closed = [_closed_by_server(client.conn.sock, 1) for client in clients]
        assert closed.count(True) >= 1, closed
        for client in clients:
            client.close()


@pytest.mark.parametrize(
    "option, value",
    [("max_connections", 0), ("header_timeout_s", 0), ("body_timeout_s", -1), ("idle_timeout_s", float("inf"))],
)
def test_limits_are_validated(option, value):
    with pytest.raises(ValueError, match=option):
        EmulatorServer(**{option: value})
