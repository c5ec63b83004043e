"""Channel tokens: the cursor a ReadRecords call reads from.

A token is standard base64 (padded) of a protobuf ``Token`` with
``version = 2`` whose ``content`` is a serialized ``TokenContentV2``
(tunnel-protocol.md §2.4). The official SDKs look inside tokens to pick a
backoff mode, so the format matters even though users treat tokens as opaque:

* a **base** (full-data) token carries ``primary_key``: a PlainBuffer row
  holding only the primary key to scan from next, header included;
* a **stream** token carries ``iterator``: base64 of an opaque binary shard
  iterator (here: :class:`StreamIterator`, the emulator's own layout);
* ``total_count`` is the number of records read through the channel so far;
* the literal :data:`FINISHED` (not base64) means the channel has ended.

Clients should only ever classify tokens (:func:`is_stream_token`); the
iterator layout is private to the service that issued it.

Usage::

    token = encode_token(TokenContent(iterator=encode_stream_iterator(it)))
    content = decode_token(token)
"""

from __future__ import annotations

import base64
import binascii
import struct
import zlib
from typing import NamedTuple, Optional

from google.protobuf.message import DecodeError

from beam_tunnel.errors import ProtocolError
from beam_tunnel.protocol import tunnel_pb2
from beam_tunnel.protocol.rows import SequenceInfo

__all__ = [
    "FINISHED",
    "TOKEN_VERSION",
    "TokenError",
    "TokenContent",
    "StreamIterator",
    "encode_token",
    "decode_token",
    "is_finished",
    "is_stream_token",
    "encode_stream_iterator",
    "decode_stream_iterator",
]

FINISHED = "finished"
"""The next_token / checkpoint value that marks a channel's data as ended."""

TOKEN_VERSION = 2
"""``Token.version`` this module writes; version 1 (``TokenContent``) is read too."""

# Longest token text quoted back in an error message.
_QUOTE_LIMIT = 64


class TokenError(ProtocolError, ValueError):
    """A token or stream iterator that cannot be parsed."""


class TokenContent(NamedTuple):
    """The decoded content of a token.

    Attributes:
      primary_key: PlainBuffer bytes of the next primary key to scan (base
        channels), or None.
      iterator: the stream iterator string (stream channels), or None.
      timestamp: the ``timestamp`` field as sent (0 when unset).
      total_count: records read through the channel so far (0 when unset).
      version: the ``Token.version`` the token was written with.
    """

    primary_key: Optional[bytes] = None
    iterator: Optional[str] = None
    timestamp: int = 0
    total_count: int = 0
    version: int = TOKEN_VERSION


def _quote(text: str) -> str:
    if len(text) <= _QUOTE_LIMIT:
        return repr(text)
    return repr(text[:_QUOTE_LIMIT]) + f"... ({len(text)} chars)"


def encode_token(content: TokenContent) -> str:
    """The token string for ``content``, always as version 2.

    Raises:
      TokenError: when both or neither of primary_key and iterator are set.
    """
    if (content.primary_key is None) == (content.iterator is None):
        raise TokenError(
            "a token carries exactly one of primary_key and iterator, got "
            f"primary_key={content.primary_key!r} iterator={content.iterator!r}"
        )
    inner = tunnel_pb2.TokenContentV2(timestamp=content.timestamp, total_count=content.total_count)
    if content.primary_key is not None:
        inner.primary_key = content.primary_key
    else:
        inner.iterator = content.iterator
    outer = tunnel_pb2.Token(version=TOKEN_VERSION, content=inner.SerializeToString())
    return base64.b64encode(outer.SerializeToString()).decode("ascii")


def decode_token(token: str) -> TokenContent:
    """Parse a token string (version 1 or 2).

    Raises:
      TokenError: naming the token, when it is :data:`FINISHED`, not base64,
        not a ``Token`` message, of an unknown version, or carries neither a
        primary key nor an iterator.
    """
    if not isinstance(token, str):
        raise TokenError(f"a token is a str, got {type(token).__name__} {token!r}")
    if token == FINISHED:
        raise TokenError(f"token {FINISHED!r} marks an ended channel and has no content")
    try:
        raw = base64.b64decode(token.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise TokenError(f"token {_quote(token)} is not base64") from None
    try:
        outer = tunnel_pb2.Token.FromString(raw)
    except DecodeError:
        raise TokenError(f"token {_quote(token)} is not a Token message") from None
    if outer.version == 1:
        inner_type = tunnel_pb2.TokenContent
    elif outer.version == 2:
        inner_type = tunnel_pb2.TokenContentV2
    else:
        raise TokenError(f"token {_quote(token)} has unknown version {outer.version}; expected 1 or 2")
    try:
        inner = inner_type.FromString(outer.content)
    except DecodeError:
        raise TokenError(f"token {_quote(token)} has unparsable content") from None
    primary_key = inner.primary_key if inner.HasField("primary_key") else None
    iterator = inner.iterator if inner.HasField("iterator") and inner.iterator else None
    if (primary_key is None) == (iterator is None):
        raise TokenError(f"token {_quote(token)} carries neither or both of primary_key and iterator")
    return TokenContent(
        primary_key=primary_key,
        iterator=iterator,
        timestamp=inner.timestamp,
        total_count=getattr(inner, "total_count", 0),
        version=outer.version,
    )


def is_finished(token: Optional[str]) -> bool:
    """True when ``token`` is the literal :data:`FINISHED`."""
    return token == FINISHED


def is_stream_token(token: Optional[str]) -> bool:
    """Classify a token the way the official SDKs do: True when it parses and
    carries a non-empty iterator. :data:`FINISHED`, None and unparsable tokens
    are not stream tokens."""
    if not token or token == FINISHED:
        return False
    try:
        return decode_token(token).iterator is not None
    except TokenError:
        return False


# ---- stream iterator --------------------------------------------------------

_ITERATOR_MAGIC = b"BTI"
_ITERATOR_FORMAT = 1
_HAS_POSITION = 0x01
# epoch, write time µs, row index; unsigned epoch and index, as PlainBuffer reads them
_POSITION = struct.Struct("<IqI")
_LENGTH = struct.Struct("<H")
_CRC = struct.Struct("<I")


class StreamIterator(NamedTuple):
    """Where a stream channel's reader stands in its shard's log.

    Attributes:
      stream_id: the table's stream id; an iterator from another stream (the
        stream was disabled and enabled again) is rejected by the service.
      shard_id: the partition (= stream channel) the iterator belongs to.
      position: the sequence of the last record consumed; the next read
        returns records strictly after it. None means "from the first record
        still in the log".
    """

    stream_id: str
    shard_id: str
    position: Optional[SequenceInfo] = None


def _pack_text(name: str, text: str) -> bytes:
    data = text.encode("utf-8")
    if len(data) > 0xFFFF:
        raise TokenError(f"stream iterator {name} is {len(data)} bytes long; at most 65535 fit")
    return _LENGTH.pack(len(data)) + data


def encode_stream_iterator(iterator: StreamIterator) -> str:
    """The iterator string (base64 of the binary layout below).

    Layout: ``"BTI"``, format byte, u16 length + stream id, u16 length + shard
    id, flags byte, [uint32 epoch, int64 timestamp µs, uint32 row index], and a
    CRC-32 of everything before it, all little-endian.
    """
    body = bytearray(_ITERATOR_MAGIC)
    body.append(_ITERATOR_FORMAT)
    body += _pack_text("stream id", iterator.stream_id)
    body += _pack_text("shard id", iterator.shard_id)
    if iterator.position is None:
        body.append(0)
    else:
        body.append(_HAS_POSITION)
        body += _POSITION.pack(*iterator.position)
    body += _CRC.pack(zlib.crc32(body))
    return base64.b64encode(bytes(body)).decode("ascii")


def decode_stream_iterator(text: str) -> StreamIterator:
    """Parse an iterator string written by :func:`encode_stream_iterator`.

    Raises:
      TokenError: naming the iterator, when it is not base64, fails its
        checksum, or does not follow the layout.
    """
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError, AttributeError):
        raise TokenError(f"stream iterator {_quote(str(text))} is not base64") from None
    if len(raw) < len(_ITERATOR_MAGIC) + 1 + _CRC.size or not raw.startswith(_ITERATOR_MAGIC):
        raise TokenError(f"stream iterator {_quote(text)} was not issued by this service")
    body, (crc,) = raw[: -_CRC.size], _CRC.unpack(raw[-_CRC.size :])
    if zlib.crc32(body) != crc:
        raise TokenError(f"stream iterator {_quote(text)} fails its checksum")
    if body[3] != _ITERATOR_FORMAT:
        raise TokenError(f"stream iterator {_quote(text)} has unknown format {body[3]}")
    try:
        offset = 4
        texts = []
        for _ in range(2):
            (length,) = _LENGTH.unpack_from(body, offset)
            offset += _LENGTH.size
            if offset + length > len(body):
                raise struct.error("text runs past the end")
            texts.append(body[offset : offset + length].decode("utf-8"))
            offset += length
        flags = body[offset]
        offset += 1
        position = None
        if flags & _HAS_POSITION:
            position = SequenceInfo(*_POSITION.unpack_from(body, offset))
            offset += _POSITION.size
    except (struct.error, IndexError, UnicodeDecodeError):
        raise TokenError(f"stream iterator {_quote(text)} is truncated or corrupt") from None
    if offset != len(body):
        raise TokenError(f"stream iterator {_quote(text)} has {len(body) - offset} trailing bytes")
    return StreamIterator(stream_id=texts[0], shard_id=texts[1], position=position)
