"""The wire layer, driven with hand-made requests: authentication, headers,
error bodies, hostile bodies, keep-alive, faults. After every hostile
request the server must still answer a normal one."""

import base64
import datetime
import hashlib
import hmac
import http.client
import os
import random
import socket
import urllib.parse
import zlib

import pytest

from beam_tunnel.emulator import EmulatorServer, FaultSettings, ManualClock
from beam_tunnel.protocol import signing, table_pb2

from wire_kit import RawClient


def _error(body):
    error = table_pb2.Error()
    error.ParseFromString(body)
    return error.code, error.message


def _list_tables_ok(raw):
    status, _, body = raw.post("/ListTable")
    assert status == 200
    return list(table_pb2.ListTableResponse.FromString(body).table_names)


def test_answers_carry_the_headers_the_sdk_checks(server, raw):
    status, headers, body = raw.post("/ListTable")
    assert status == 200
    assert headers["x-ots-contentmd5"] == base64.b64encode(hashlib.md5(body).digest()).decode()
    assert headers["x-ots-contenttype"] == "protocol buffer"
    assert headers["x-ots-requestid"]
    signing.parse_date(headers["x-ots-date"])
    signed = {k: v for k, v in headers.items() if k.startswith("x-ots-")}
    expected = signing.sign_response("/ListTable", signed, server.access_key_id, server.access_key_secret)
    assert headers["authorization"] == expected


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda h: h.pop("x-ots-signature"), "x-ots-signature"),
        (lambda h: h.update({"x-ots-signature": "AAAA"}), "Signature mismatch"),
        (lambda h: h.update({"x-ots-accesskeyid": "who"}), "'who'"),
        (lambda h: h.pop("x-ots-accesskeyid"), "x-ots-accesskeyid"),
        (lambda h: h.update({"x-ots-instancename": "other"}), "'other'"),
        (lambda h: h.pop("x-ots-date"), "x-ots-date"),
        (lambda h: h.update({"x-ots-date": "yesterday"}), "yesterday"),
        (lambda h: h.update({"x-ots-apiversion": "2099-01-01"}), "2099-01-01"),
    ],
)
def test_auth_failures_are_403_naming_the_problem(raw, mutate, needle):
    headers = raw.headers("/ListTable", b"")
    mutate(headers)
    status, _, body = raw.post("/ListTable", b"", headers=headers)
    code, message = _error(body)
    assert (status, code) == (403, "OTSAuthFailed")
    assert needle in message
    assert _list_tables_ok(raw) == []


def test_changed_header_after_signing_fails(raw):
    headers = raw.headers("/ListTable", b"")
    headers["x-ots-instancename"] = headers["x-ots-instancename"]  # same value: still fine
    headers["x-ots-trace-id"] = "added-after-signing"
    status, _, body = raw.post("/ListTable", b"", headers=headers)
    assert (status, _error(body)[0]) == (403, "OTSAuthFailed")


def test_date_skew_is_checked_against_the_emulator_clock():
    start_us = 1_700_000_000_000_000
    with EmulatorServer(clock=ManualClock(start_us)) as server:
        raw = RawClient(server)
        at = datetime.datetime.fromtimestamp(start_us / 1e6, tz=datetime.timezone.utc)
        assert raw.post("/ListTable", date=at + datetime.timedelta(minutes=14))[0] == 200
        status, _, body = raw.post("/ListTable", date=at - datetime.timedelta(minutes=16))
        code, message = _error(body)
        assert (status, code) == (403, "OTSAuthFailed") and "960 s" in message
        server.clock.advance(3600)
        assert raw.post("/ListTable", date=at + datetime.timedelta(hours=1))[0] == 200
        raw.close()


def test_go_style_date_fraction_header_case_and_both_api_versions(raw):
    # The Go SDK's layout string writes month/day/hour digits as the fraction.
    now = datetime.datetime.now(datetime.timezone.utc)
    go_date = now.strftime("%Y-%m-%dT%H:%M:%S.") + now.strftime("%m%d%H") + "Z"
    for version in ("2015-12-31", "2018-04-01"):
        headers = raw.headers("/ListTable", b"", date=go_date, api_version=version)
        shouty = {name.upper() if i % 2 else name.title(): value for i, (name, value) in enumerate(headers.items())}
        assert raw.post("/ListTable", b"", headers=shouty)[0] == 200


def test_several_access_keys_sign_for_themselves():
    keys = {"id-one": "secret-one", "id-two": "secret-two"}
    with EmulatorServer(access_keys=keys) as server:
        for key_id, secret in keys.items():
            raw = RawClient(server, key_id=key_id, secret=secret)
            status, headers, _ = raw.post("/ListTable")
            assert status == 200 and headers["authorization"].startswith(f"OTS {key_id}:")
            raw.close()
        raw = RawClient(server, key_id="id-one", secret="secret-two")
        assert raw.post("/ListTable")[0] == 403
        raw.close()


def test_empty_body_parses_as_default_message_and_missing_fields_are_named(raw):
    assert _list_tables_ok(raw) == []
    status, _, body = raw.post("/DescribeTable", b"")
    code, message = _error(body)
    assert (status, code) == (400, "OTSParameterInvalid") and "table_name" in message


@pytest.mark.parametrize("path", ["/PutRow", "/BatchWriteRow", "/GetRange", "/CreateTable", "/UpdateRow"])
def test_random_bytes_as_body_are_rejected(raw, path):
    rng = random.Random(zlib.crc32(path.encode()))
    for size in (1, 7, 64, 1000):
        body = bytes(rng.getrandbits(8) for _ in range(size))
        status, _, answer = raw.post(path, body)
        assert status in (400, 404), (path, size, body.hex())
        assert _error(answer)[0] in ("OTSParameterInvalid", "OTSObjectNotExist")
    assert _list_tables_ok(raw) == []


def test_wrong_wire_types_and_bad_plainbuffer(raw, ots):
    import tablestore

    ots.create_table(tablestore.TableMeta("t", [("id", "INTEGER")]), tablestore.TableOptions(),
                     tablestore.ReservedThroughput(tablestore.CapacityUnit(0, 0)))
    # table_name (field 1, a string) sent as a varint.
    status, _, body = raw.post("/DescribeTable", b"\x08\x05")
    assert (status, _error(body)[0]) == (400, "OTSParameterInvalid")
    request = table_pb2.PutRowRequest(table_name="t", row=b"\x75\x00\x00\x00\x01garbage")
    request.condition.row_existence = table_pb2.IGNORE
    status, _, body = raw.post("/PutRow", request.SerializeToString())
    code, message = _error(body)
    assert (status, code) == (400, "OTSParameterInvalid") and "PlainBuffer" in message


def test_unknown_path_and_method(server, raw):
    status, _, body = raw.post("/NoSuchApi")
    code, message = _error(body)
    assert (status, code) == (400, "OTSUnsupportOperation") and "/NoSuchApi" in message
    raw.conn.request("GET", "/ListTable")
    response = raw.conn.getresponse()
    assert response.status == 405 and _error(response.read())[0] == "OTSMethodNotAllowed"
    assert _list_tables_ok(raw) == []


def test_oversized_body_is_refused_without_reading_it():
    with EmulatorServer(max_body_bytes=1024) as server:
        raw = RawClient(server)
        body = b"\x00" * 4096
        status, headers, answer = raw.post("/PutRow", body)
        code, message = _error(answer)
        assert (status, code) == (400, "OTSParameterInvalid") and "4096" in message
        assert headers.get("connection") == "close"
        raw.close()
        raw = RawClient(server)
        assert _list_tables_ok(raw) == []
        raw.close()


def test_garbage_http_and_truncated_bodies_do_not_hurt(server, raw):
    parsed = urllib.parse.urlsplit(server.endpoint)
    for payload in (b"\x16\x03\x01\x02\x00garbage\r\n\r\n", b"POST /PutRow HTTP/1.1\r\nContent-Length: 100\r\n\r\nshort",
                    b"POST /PutRow HTTP/1.1\r\nContent-Length: -5\r\n\r\n", os.urandom(300)):
        with socket.create_connection((parsed.hostname, parsed.port), timeout=10) as sock:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):
                pass
    assert _list_tables_ok(raw) == []


def test_chunked_request_body_is_accepted(server):
    raw = RawClient(server)
    body = table_pb2.DescribeTableRequest(table_name="nope").SerializeToString()
    headers = raw.headers("/DescribeTable", body)
    headers["Transfer-Encoding"] = "chunked"
    raw.conn.putrequest("POST", "/DescribeTable")
    for name, value in headers.items():
        raw.conn.putheader(name, value)
    raw.conn.endheaders()
    raw.conn.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    response = raw.conn.getresponse()
    assert response.status == 404 and _error(response.read())[0] == "OTSObjectNotExist"
    raw.close()


def test_keep_alive_serves_many_requests_on_one_connection(raw):
    for _ in range(20):
        assert _list_tables_ok(raw) == []
    assert raw.conn.sock is not None


def test_faults_hit_tunnel_paths_by_default_and_all_paths_on_request(server, raw):
    server.faults.configure(error_rate=1.0, seed=3)
    assert raw.post("/ListTable")[0] == 200  # a table path: untouched
    status, _, body = raw.post("/tunnel/list", b"")
    assert (status, _error(body)[0]) == (503, "OTSTunnelServerUnavailable")
    server.faults.configure(scope="all")
    status, _, body = raw.post("/ListTable")
    assert (status, _error(body)[0]) == (503, "OTSTunnelServerUnavailable")
    server.faults.clear()
    assert _list_tables_ok(raw) == []


def test_dropped_connection_gets_no_answer(server):
    server.faults.configure(drop_rate=1.0, scope="all", seed=1)
    raw = RawClient(server)
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        raw.post("/ListTable")
    raw.close()
    server.faults.clear()
    raw = RawClient(server)
    assert _list_tables_ok(raw) == []
    raw.close()


def test_fault_decisions_replay_with_a_seed():
    from beam_tunnel.emulator.faults import FaultInjector

    def decisions(seed):
        injector = FaultInjector(FaultSettings(error_rate=0.3, drop_rate=0.2, jitter_s=0.01, seed=seed))
        return [injector.decide("tunnel") for _ in range(50)]

    first = decisions(42)
    assert first == decisions(42)
    assert any(d.fail for d in first) and any(d.drop for d in first) and not all(d.fail or d.drop for d in first)
    assert FaultInjector(FaultSettings(error_rate=1.0)).decide("admin").fail is False


def test_handler_bug_is_a_logged_500_and_the_server_lives_on(server, raw, monkeypatch, caplog):
    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(server.backend.tables, "list_tables", explode)
    status, _, body = raw.post("/ListTable")
    assert (status, _error(body)[0]) == (500, "OTSInternalServerError")
    assert "boom" in caplog.text
    monkeypatch.undo()
    assert _list_tables_ok(raw) == []


def test_signature_check_uses_hmac_sha1_over_the_documented_string(server, raw):
    # Independent of beam_tunnel.protocol.signing: build the V2 string by hand.
    headers = raw.headers("/ListTable", b"", sign=False)
    canonical = "".join(f"{k}:{v}\n" for k, v in sorted(headers.items()))
    text = "/ListTable\nPOST\n\n" + canonical
    digest = hmac.new(server.access_key_secret.encode(), text.encode(), hashlib.sha1).digest()
    headers["x-ots-signature"] = base64.b64encode(digest).decode()
    assert raw.post("/ListTable", b"", headers=headers)[0] == 200


def test_key_rows_followed_by_zero_padding_are_read_as_one_row(server, raw):
    # The Node SDK sends range bounds with spare zero bytes after the row.
    from beam_tunnel.emulator.model.tables import PkColumn
    from beam_tunnel.protocol.plainbuffer import encode_primary_key
    from beam_tunnel.protocol.rows import INF_MAX, INF_MIN

    server.backend.tables.create_table("t", [PkColumn("k", "INTEGER")])
    request = table_pb2.GetRangeRequest(
        table_name="t", direction=table_pb2.FORWARD, max_versions=1,
        inclusive_start_primary_key=encode_primary_key((("k", INF_MIN),)) + b"\x00\x00",
        exclusive_end_primary_key=encode_primary_key((("k", INF_MAX),)),
    )
    assert raw.post("/GetRange", request.SerializeToString())[0] == 200
    request.exclusive_end_primary_key += b"\x01"
    status, _, body = raw.post("/GetRange", request.SerializeToString())
    code, message = _error(body)
    assert (status, code) == (400, "OTSParameterInvalid") and "exclusive_end_primary_key" in message
    request.exclusive_end_primary_key = request.inclusive_start_primary_key
    status, _, body = raw.post("/GetRange", request.SerializeToString())
    assert (status, _error(body)[0]) == (400, "OTSParameterInvalid")
    assert "less than the end" in _error(body)[1]


def test_stream_settings_through_update_and_describe_table(server, raw):
    from beam_tunnel.emulator.model.tables import PkColumn
    from beam_tunnel.protocol.plainbuffer import decode_row

    server.backend.tables.create_table("t", [PkColumn("k", "INTEGER")], split_points=[5])
    request = table_pb2.UpdateTableRequest(table_name="t")
    request.stream_spec.enable_stream = True
    request.stream_spec.expiration_time = 48
    request.stream_spec.columns_to_get.extend(["a", "b"])
    status, _, body = raw.post("/UpdateTable", request.SerializeToString())
    assert status == 200
    details = table_pb2.UpdateTableResponse.FromString(body).stream_details
    assert (details.enable_stream, details.expiration_time, list(details.column_to_get)) == (True, 48, ["a", "b"])

    status, _, body = raw.post("/DescribeTable", table_pb2.DescribeTableRequest(table_name="t").SerializeToString())
    described = table_pb2.DescribeTableResponse.FromString(body)
    stream = described.stream_details
    assert stream.stream_id == f"t_{stream.last_enable_time}"
    assert described.table_status == table_pb2.ACTIVE
    assert [decode_row(split).primary_key for split in described.shard_splits] == [(("k", 5),)]

    request = table_pb2.UpdateTableRequest(table_name="t")
    request.stream_spec.enable_stream = False
    assert raw.post("/UpdateTable", request.SerializeToString())[0] == 200
    assert not server.backend.tables.describe_table("t").stream.enabled
