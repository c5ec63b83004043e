"""Token format: base64(Token{version, TokenContentV2}) and the stream iterator."""

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beam_tunnel.errors import ProtocolError
from beam_tunnel.protocol import tunnel_pb2
from beam_tunnel.protocol.rows import SequenceInfo
from beam_tunnel.protocol.tokens import (
    FINISHED,
    StreamIterator,
    TokenContent,
    TokenError,
    decode_stream_iterator,
    decode_token,
    encode_stream_iterator,
    encode_token,
    is_finished,
    is_stream_token,
)

# A base-data token's primary key as the real service writes it
# (tunnel-protocol.md §3.1, verified test vector): PK `key` = "5".
_REAL_PK = bytes.fromhex("75000000 01 03 04 03000000 6b6579 05 06000000 03 01000000 35 0a 20 09 ae".replace(" ", ""))


def _raw_token(version, content_msg):
    outer = tunnel_pb2.Token(version=version, content=content_msg.SerializeToString())
    return base64.b64encode(outer.SerializeToString()).decode("ascii")


def test_base_token_wire_layout_is_token_v2_with_primary_key():
    token = encode_token(TokenContent(primary_key=_REAL_PK, total_count=7))
    outer = tunnel_pb2.Token.FromString(base64.b64decode(token))
    assert outer.version == 2
    inner = tunnel_pb2.TokenContentV2.FromString(outer.content)
    assert inner.primary_key == _REAL_PK
    assert not inner.HasField("iterator")
    assert inner.total_count == 7


def test_decodes_token_built_by_another_writer():
    token = _raw_token(2, tunnel_pb2.TokenContentV2(primary_key=_REAL_PK, timestamp=0, total_count=0))
    assert decode_token(token) == TokenContent(primary_key=_REAL_PK, iterator=None, timestamp=0, total_count=0)


def test_decodes_version_1_tokens():
    token = _raw_token(1, tunnel_pb2.TokenContent(iterator="abc", timestamp=5))
    content = decode_token(token)
    assert content.iterator == "abc"
    assert content.timestamp == 5
    assert content.total_count == 0
    assert content.version == 1


def test_stream_token_round_trip_and_classification():
    iterator = encode_stream_iterator(StreamIterator("t_1700000000000000", "p0", SequenceInfo(1, 1700000000000001, 3)))
    token = encode_token(TokenContent(iterator=iterator, total_count=42))
    assert decode_token(token) == TokenContent(iterator=iterator, total_count=42)
    assert is_stream_token(token)
    assert not is_stream_token(encode_token(TokenContent(primary_key=_REAL_PK)))


@pytest.mark.parametrize("token", [FINISHED, "", None, "not base64 !", "AAAA"])
def test_unparsable_tokens_are_not_stream_tokens(token):
    assert not is_stream_token(token)


def test_finished_is_literal():
    assert is_finished("finished")
    assert not is_finished(encode_token(TokenContent(primary_key=_REAL_PK)))
    with pytest.raises(TokenError, match="ended channel"):
        decode_token(FINISHED)


@pytest.mark.parametrize(
    "token, message",
    [
        ("%%%garbage", "is not base64"),
        (base64.b64encode(b"\xff\xff\xff").decode(), "not a Token message"),
        (_raw_token(3, tunnel_pb2.TokenContentV2(iterator="x")), "unknown version 3"),
        (_raw_token(2, tunnel_pb2.TokenContentV2(total_count=1)), "neither or both"),
        (_raw_token(2, tunnel_pb2.TokenContentV2(primary_key=b"k", iterator="i")), "neither or both"),
    ],
)
def test_bad_tokens_raise_token_error_naming_the_token(token, message):
    with pytest.raises(TokenError, match=message) as info:
        decode_token(token)
    assert token[:20] in str(info.value)
    assert isinstance(info.value, ProtocolError) and isinstance(info.value, ValueError)


def test_long_bad_token_is_quoted_shortened():
    with pytest.raises(TokenError, match=r"\(500 chars\)"):
        decode_token("!" * 500)


def test_encode_requires_exactly_one_cursor():
    with pytest.raises(TokenError, match="exactly one"):
        encode_token(TokenContent())
    with pytest.raises(TokenError, match="exactly one"):
        encode_token(TokenContent(primary_key=b"k", iterator="i"))


_texts = st.text(max_size=40)
_positions = st.none() | st.builds(
    SequenceInfo,
    st.integers(0, 2**32 - 1),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(0, 2**32 - 1),
)


@given(_texts, _texts, _positions)
def test_stream_iterator_round_trip(stream_id, shard_id, position):
    iterator = StreamIterator(stream_id, shard_id, position)
    assert decode_stream_iterator(encode_stream_iterator(iterator)) == iterator


def test_stream_iterator_rejects_corruption():
    text = encode_stream_iterator(StreamIterator("s", "p", SequenceInfo(0, 10, 1)))
    raw = bytearray(base64.b64decode(text))
    raw[6] ^= 0x01
    with pytest.raises(TokenError, match="checksum"):
        decode_stream_iterator(base64.b64encode(bytes(raw)).decode())
    with pytest.raises(TokenError, match="not issued by this service"):
        decode_stream_iterator(base64.b64encode(b"somebody else's iterator").decode())
    with pytest.raises(TokenError, match="not base64"):
        decode_stream_iterator("~~~")
