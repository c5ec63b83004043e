"""Request and response compression, with requests built the way the Java
SDK builds them (enableRequestCompression / enableResponseCompression):
the protobuf body deflated by java.util.zip.Deflater's defaults (a zlib
stream, the same bytes as Python's zlib.compress), its length before
compression in x-ots-request-compress-size, x-ots-contentmd5 over the bytes
sent, every x-ots-* header signed."""

import base64
import hashlib
import tracemalloc
import zlib

import pytest

from beam_tunnel.emulator import EmulatorServer
from beam_tunnel.protocol import plainbuffer, signing, table_pb2
from beam_tunnel.protocol.rows import INF_MAX, INF_MIN, Cell, Row

from wire_kit import RawClient


def _error(body):
    error = table_pb2.Error.FromString(body)
    return error.code, error.message


def _md5(data):
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def _java_post(raw, path, message, *, compress_request=True, compress_response=False, extra=None, body=None):
    """POST ``message`` as the Java SDK would with compression switched on."""
    plain = message.SerializeToString()
    headers = {}
    if compress_request:
        wire = zlib.compress(plain) if body is None else body
        headers.update({"x-ots-request-compress-type": "deflate", "x-ots-request-compress-size": str(len(plain))})
    else:
        wire = plain
    if compress_response:
        headers["x-ots-response-compress-type"] = "deflate"
    headers.update(extra or {})
    return raw.post(path, wire, headers=raw.headers(path, wire, extra=headers))


def _inflate(headers, body):
    assert headers["x-ots-response-compress-type"] == "deflate"
    plain = zlib.decompress(body)
    assert int(headers["x-ots-response-compress-size"]) == len(plain)
    return plain


def _put_request(key, value):
    request = table_pb2.PutRowRequest(table_name="t", row=plainbuffer.encode_row(
        Row((("id", key),), (Cell("v", value),))))
    request.condition.row_existence = table_pb2.IGNORE
    return request


@pytest.fixture
def table(server, ots):
    import tablestore

    ots.create_table(tablestore.TableMeta("t", [("id", "STRING")]), tablestore.TableOptions(),
                     tablestore.ReservedThroughput(tablestore.CapacityUnit(0, 0)))
    return "t"


def test_compressed_writes_are_stored_and_read_back_plain(server, raw, ots, table):
    for index in range(3):
        status, _, body = _java_post(raw, "/PutRow", _put_request(f"k{index}", "v" * 500))
        assert status == 200, _error(body)
    _, row, _ = ots.get_row(table, [("id", "k1")], max_version=1)
    assert row.attribute_columns[0][:2] == ("v", "v" * 500)


def test_compressed_answers_carry_size_md5_of_the_plain_body_and_a_valid_signature(server, raw, table):
    for index in range(20):
        assert _java_post(raw, "/PutRow", _put_request(f"k{index:02}", "x" * 200))[0] == 200
    request = table_pb2.GetRangeRequest(
        table_name="t", direction=table_pb2.FORWARD, max_versions=1,
        inclusive_start_primary_key=plainbuffer.encode_primary_key((("id", INF_MIN),)),
        exclusive_end_primary_key=plainbuffer.encode_primary_key((("id", INF_MAX),)),
    )
    status, headers, body = _java_post(raw, "/GetRange", request, compress_response=True)
    assert status == 200
    plain = _inflate(headers, body)
    assert len(body) < len(plain) / 4  # 20 rows of repeated bytes
    assert headers["x-ots-contentmd5"] == _md5(plain)
    signed = {k: v for k, v in headers.items() if k.startswith("x-ots-")}
    assert "x-ots-response-compress-size" in signed
    assert headers["authorization"] == signing.sign_response(
        "/GetRange", signed, server.access_key_id, server.access_key_secret)
    rows = table_pb2.GetRangeResponse.FromString(plain).rows
    assert len(plainbuffer.decode_rows(rows)) == 20


def test_errors_are_compressed_when_asked_and_empty_bodies_never(raw):
    status, headers, body = _java_post(raw, "/DescribeTable", table_pb2.DescribeTableRequest(table_name="nope"),
                                       compress_response=True)
    assert (status, _error(_inflate(headers, body))[0]) == (404, "OTSObjectNotExist")
    # ListTable of no tables is an empty message: nothing to compress.
    status, headers, body = _java_post(raw, "/ListTable", table_pb2.ListTableRequest(), compress_response=True)
    assert (status, body) == (200, b"") and "x-ots-response-compress-type" not in headers


def _plain_put():
    return _put_request("k", "v" * 100)


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"x-ots-request-compress-type": "gzip"}, "'gzip' is not supported"),
        ({"x-ots-request-compress-size": "-1"}, "'-1' is not a non-negative integer"),
        ({"x-ots-request-compress-size": "12abc"}, "'12abc'"),
        ({"x-ots-request-compress-size": str(len(_plain_put().SerializeToString()) + 1)}, "not the"),
        ({"x-ots-request-compress-size": "10"}, "more than the 10 bytes declared"),
        ({"x-ots-request-compress-size": "6000000"}, "exceeds the request body limit"),
        ({"x-ots-response-compress-type": "br"}, "'br' is not supported"),
    ],
)
def test_bad_compression_headers_are_named(raw, change, needle):
    status, _, body = _java_post(raw, "/PutRow", _plain_put(), extra=change)
    code, message = _error(body)
    assert (status, code) == (400, "OTSParameterInvalid") and needle in message, message


def test_missing_size_header(raw):
    wire = zlib.compress(_plain_put().SerializeToString())
    headers = raw.headers("/PutRow", wire, extra={"x-ots-request-compress-type": "deflate"})
    status, _, body = raw.post("/PutRow", wire, headers=headers)
    assert status == 400 and "x-ots-request-compress-size is missing" in _error(body)[1]


@pytest.mark.parametrize(
    "mangle, needle",
    [
        (lambda wire: b"not deflate at all", "not a valid deflate"),
        (lambda wire: wire[:-6], "truncated deflate stream"),
        (lambda wire: wire + b"extra", "after the end of its deflate stream"),
    ],
)
def test_bad_compressed_bodies_are_named(raw, mangle, needle):
    wire = mangle(zlib.compress(_plain_put().SerializeToString()))
    status, _, body = _java_post(raw, "/PutRow", _plain_put(), body=wire)
    code, message = _error(body)
    assert (status, code) == (400, "OTSParameterInvalid") and needle in message, message


def test_md5_covers_the_compressed_bytes_as_sent(raw):
    plain = _plain_put().SerializeToString()
    wire = zlib.compress(plain)
    headers = raw.headers("/PutRow", plain, extra={  # MD5 of the wrong (plain) body
        "x-ots-request-compress-type": "deflate", "x-ots-request-compress-size": str(len(plain))})
    status, _, body = raw.post("/PutRow", wire, headers=headers)
    assert (status, _error(body)[0]) == (400, "OTSParameterInvalid") and "contentmd5" in _error(body)[1]


def test_a_deflate_bomb_costs_at_most_the_body_limit():
    with EmulatorServer(max_body_bytes=1 << 20) as server:
        raw = RawClient(server)
        bomb = zlib.compress(b"\x00" * (64 << 20), 9)  # 64 MiB of zeros in ~64 KiB
        assert len(bomb) < 1 << 20
        headers = raw.headers("/PutRow", bomb, extra={
            "x-ots-request-compress-type": "deflate", "x-ots-request-compress-size": str(1 << 20)})
        tracemalloc.start()
        try:
            status, _, body = raw.post("/PutRow", bomb, headers=headers)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert (status, _error(body)[0]) == (400, "OTSParameterInvalid")
        assert "more than the 1048576 bytes declared" in _error(body)[1]
        assert peak < 16 << 20, peak
        assert raw.post("/ListTable")[0] == 200
        raw.close()
