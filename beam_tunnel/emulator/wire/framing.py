"""Reading one request body off a connection: strict framing, size limits.

HTTP/1.1 lets a body be framed by ``Content-Length`` or by
``Transfer-Encoding: chunked``. Anything ambiguous (both at once, two
different lengths, a transfer coding other than ``chunked``, a signed or
non-decimal length, a malformed chunk) is refused with a
:class:`FramingError` naming the bad value: a lenient parser here is how
request smuggling and unbounded reads start. The size limit applies to the
decoded body, however it is framed.

Reads go through the caller's ``rfile``; the connection's deadlines are
enforced by that file (see ``http.py``), so a slow peer surfaces here as
``TimeoutError``.
"""

from __future__ import annotations

import re
from typing import BinaryIO, List, Optional, Sequence

__all__ = ["FramingError", "read_body", "MAX_CHUNKS"]

_LENGTH = re.compile(r"[0-9]{1,19}")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,15}")
# A chunk-size line is a few hex digits plus an optional extension.
_MAX_CHUNK_LINE = 1024
# Trailers are read and dropped; bounded so they cannot stream forever.
_MAX_TRAILER_LINE = 8192
_MAX_TRAILERS = 32
# Real clients send chunks of kilobytes; a body cut into millions of tiny
# chunks only costs the server time.
MAX_CHUNKS = 65536


class FramingError(Exception):
    """The request's framing is invalid; ``str(err)`` says what and why."""


def _show(values: Sequence[str]) -> str:
    return ", ".join(repr(value[:64]) for value in values)


def read_body(rfile: BinaryIO, headers, limit: int) -> Optional[bytes]:
    """The decoded body of one request.

    Args:
      rfile: the connection's buffered reader, positioned after the headers.
      headers: the request's ``http.client.HTTPMessage`` (repeated headers
        are seen through ``get_all``).
      limit: the largest accepted decoded body, in bytes.

    Returns:
      The body (``b""`` without any framing header), or None when the peer
      closed the connection before the body was complete.

    Raises:
      FramingError: ambiguous or malformed framing, or a body over ``limit``.
      TimeoutError: the connection's read deadline passed.
    """
    encodings = headers.get_all("Transfer-Encoding") or []
    lengths = headers.get_all("Content-Length") or []
    if encodings:
        if lengths:
            raise FramingError(
                f"Content-Length ({_show(lengths)}) together with Transfer-Encoding ({_show(encodings)}) "
                f"is ambiguous framing; send one of them."
            )
        codings = [coding.strip().lower() for value in encodings for coding in value.split(",")]
        if codings != ["chunked"]:
            raise FramingError(
                f"Transfer-Encoding {_show(encodings)} is not supported; the only accepted value is 'chunked'."
            )
        return _read_chunked(rfile, limit)
    if not lengths:
        return b""
    distinct = sorted({value.strip() for value in lengths})
    if len(distinct) > 1:
        raise FramingError(f"Conflicting Content-Length headers: {_show(distinct)}.")
    if not _LENGTH.fullmatch(distinct[0]):
        raise FramingError(f"Content-Length {distinct[0][:64]!r} is not a non-negative decimal integer.")
    length = int(distinct[0])
    if length > limit:
        raise FramingError(f"Request body of {length} bytes exceeds the limit of {limit} bytes.")
    body = rfile.read(length) if length else b""
    return body if len(body) == length else None


def _read_chunked(rfile: BinaryIO, limit: int) -> Optional[bytes]:
    parts: List[bytes] = []
    total = 0
    for _ in range(MAX_CHUNKS):
        line = rfile.readline(_MAX_CHUNK_LINE + 1)
        if not line.endswith(b"\n"):
            if len(line) > _MAX_CHUNK_LINE:
                raise FramingError(f"Malformed chunked body: a chunk-size line is longer than {_MAX_CHUNK_LINE} bytes.")
            return None
        size_text = line.split(b";", 1)[0].strip(b" \t\r\n")
        if not _CHUNK_SIZE.fullmatch(size_text):
            raise FramingError(
                f"Malformed chunked body: chunk size {size_text[:32]!r} is not a hexadecimal number "
                f"of at most 15 digits."
            )
        size = int(size_text, 16)
        if size == 0:
            return b"".join(parts) if _skip_trailers(rfile) else None
        total += size
        if total > limit:
            raise FramingError(
                f"Chunked request body exceeds the limit of {limit} bytes (chunks announce {total} bytes so far)."
            )
        chunk = rfile.read(size)
        if len(chunk) != size:
            return None
        ending = rfile.read(2)
        if ending != b"\r\n":
            if len(ending) < 2 and ending in (b"", b"\r"):
                return None
            raise FramingError(
                f"Malformed chunked body: the chunk of {size} bytes is followed by {ending!r} instead of CRLF."
            )
        parts.append(chunk)
    raise FramingError(f"Chunked request body has more than {MAX_CHUNKS} chunks.")


def _skip_trailers(rfile: BinaryIO) -> bool:
    """Read up to the blank line ending the trailers; False at EOF."""
    for _ in range(_MAX_TRAILERS + 1):
        line = rfile.readline(_MAX_TRAILER_LINE + 1)
        if line in (b"\r\n", b"\n"):
            return True
        if not line.endswith(b"\n"):
            if len(line) > _MAX_TRAILER_LINE:
                raise FramingError(f"Malformed chunked body: a trailer line is longer than {_MAX_TRAILER_LINE} bytes.")
            return False
    raise FramingError(f"Malformed chunked body: more than {_MAX_TRAILERS} trailer lines.")
