"""The PlainBuffer codec against the official ``tablestore`` Python SDK.

Rows the SDK encodes from its own request objects must decode to what they
mean, and byte for byte match what our encoder writes for the same row;
rows we encode must decode with the SDK's pure-Python reader where it can
read them.
"""

import pytest

tablestore = pytest.importorskip("tablestore")

from tablestore.encoder import OTSProtoBufferEncoder  # noqa: E402
from tablestore.plainbuffer.plain_buffer_builder import PlainBufferBuilder  # noqa: E402
from tablestore.plainbuffer.plain_buffer_coded_stream import PlainBufferCodedInputStream  # noqa: E402
from tablestore.plainbuffer.plain_buffer_stream import PlainBufferInputStream  # noqa: E402

from beam_tunnel.protocol.plainbuffer import (  # noqa: E402
    decode_row,
    decode_rows,
    encode_primary_key,
    encode_row,
    encode_rows,
)
from beam_tunnel.protocol.rows import AUTO_INCREMENT, INF_MAX, INF_MIN, Cell, CellOp, Row  # noqa: E402

_IGNORE = tablestore.Condition(tablestore.RowExistenceExpectation.IGNORE)


@pytest.fixture(scope="module")
def sdk():
    # The pure-Python encoder: the native one may be missing, and we want the
    # reference behaviour, not a binary's.
    return OTSProtoBufferEncoder("utf-8", enable_native=False)


def _sdk_read_row(data):
    return PlainBufferCodedInputStream(PlainBufferInputStream(bytes(data))).read_row()


# The SDK writes bytes as STRING; a bytearray is how it writes BLOB.
_SDK_KEY = [("tenant", "t-1"), ("user", 42), ("blob", bytearray(b"\x00\x01"))]
_KEY = (("tenant", "t-1"), ("user", 42), ("blob", b"\x00\x01"))


def test_sdk_put_row_decodes(sdk):
    columns = [("name", "Ann"), ("age", 31, 1_700_000_000_000), ("score", 9.5, 1_700_000_000_001),
               ("vip", True), ("raw", bytearray(b"\xff"), 5)]
    request = sdk.encode_request("PutRow", "orders", tablestore.Row(_SDK_KEY, columns), _IGNORE, None, None)
    expected = Row(
        primary_key=_KEY,
        cells=(
            Cell("name", "Ann"),
            Cell("age", 31, 1_700_000_000_000),
            Cell("score", 9.5, 1_700_000_000_001),
            Cell("vip", True),
            Cell("raw", b"\xff", 5),
        ),
    )
    assert decode_row(request.row) == expected
    assert encode_row(expected) == request.row


def test_sdk_update_row_with_every_update_type_decodes(sdk):
    update = {
        "PUT": [("name", "Bob", 10), ("age", 32)],
        "DELETE": [("old", None, 20)],
        "DELETE_ALL": ["gone"],
        "INCREMENT": [("visits", 3)],
    }
    request = sdk.encode_request("UpdateRow", "orders", tablestore.Row(_SDK_KEY, update), _IGNORE, None, None)
    expected = Row(
        primary_key=_KEY,
        cells=(
            Cell("name", "Bob", 10),
            Cell("age", 32),
            Cell("old", None, 20, CellOp.DELETE_ONE_VERSION),
            Cell("gone", None, None, CellOp.DELETE_ALL_VERSIONS),
            Cell("visits", 3, None, CellOp.INCREMENT),
        ),
    )
    assert decode_row(request.row_change) == expected
    assert encode_row(expected) == request.row_change


def test_sdk_delete_row_carries_the_delete_marker(sdk):
    request = sdk.encode_request("DeleteRow", "orders", _SDK_KEY, _IGNORE, None, None)
    expected = Row(primary_key=_KEY, deleted=True)
    assert decode_row(request.primary_key) == expected
    assert encode_row(expected) == request.primary_key


def test_sdk_primary_keys_with_sentinels_decode():
    sdk_key = [("a", tablestore.INF_MIN), ("b", tablestore.INF_MAX), ("c", tablestore.PK_AUTO_INCR), ("d", "x")]
    data = PlainBufferBuilder.serialize_primary_key(sdk_key)
    key = (("a", INF_MIN), ("b", INF_MAX), ("c", AUTO_INCREMENT), ("d", "x"))
    assert decode_row(data) == Row(primary_key=key)
    assert encode_primary_key(key) == bytes(data)


def test_our_puts_decode_with_the_sdk_reader():
    # Restricted to puts (with and without timestamps), delete markers and no
    # extension: the SDK's reader has no EXTENSION tags, and on CELL_TYPE it
    # reads an undefined variable and never consumes the op byte
    # (tunnel-protocol.md §3.2), so it cannot read deletes or increments.
    rows = [
        Row(
            primary_key=(("tenant", "t-1"), ("user", 42), ("blob", b"\x00\x01")),
            cells=(
                Cell("s", "grüße"),
                Cell("i", -5, 1000),
                Cell("d", 0.25, 1001),
                Cell("b", False),
                Cell("x", b"\x02", 7),
            ),
        ),
        Row(primary_key=(("tenant", "t-2"), ("user", 0), ("blob", b"")), deleted=True),
    ]
    primary_key, columns = _sdk_read_row(encode_row(rows[0]))
    assert primary_key == [("tenant", "t-1"), ("user", 42), ("blob", bytearray(b"\x00\x01"))]
    assert columns == [
        ("s", "grüße", None),
        ("i", -5, 1000),
        ("d", 0.25, 1001),
        ("b", False, None),
        ("x", bytearray(b"\x02"), 7),
    ]

    sdk_rows = PlainBufferCodedInputStream(PlainBufferInputStream(encode_rows(rows))).read_rows()
    assert [row.primary_key for row in sdk_rows] == [
        [("tenant", "t-1"), ("user", 42), ("blob", bytearray(b"\x00\x01"))],
        [("tenant", "t-2"), ("user", 0), ("blob", bytearray(b""))],
    ]
    assert decode_rows(encode_rows(rows)) == rows
