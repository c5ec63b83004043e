"""Request and response body compression, as the Java SDK uses it.

With ``enableRequestCompression`` the Java SDK deflates the serialised
request (``java.util.zip.Deflater`` defaults: a zlib stream), and sends
``x-ots-request-compress-type: deflate`` and
``x-ots-request-compress-size: <length before compression>``; its
``x-ots-contentmd5`` is the MD5 of the bytes it sends, the compressed ones
(tunnel-protocol.md §1.1; the Java SDK's ``OperationLauncher``).

With ``enableResponseCompression`` it sends
``x-ots-response-compress-type: deflate``; a compressed answer carries the
same header plus ``x-ots-response-compress-size: <length before
compression>`` (the Java SDK refuses a compressed answer without it, or with
a size <= 0, so empty bodies are never compressed). The Java SDK inflates
the answer before its optional MD5 check, so the answer's
``x-ots-contentmd5`` is the MD5 of the uncompressed body.

Decompression is bounded: the declared size must be within the body limit
and is never exceeded while inflating, so a deflate bomb costs at most
``limit`` bytes of memory.
"""

from __future__ import annotations

import re
import zlib
from typing import Mapping, Optional, Tuple

from . import errors

__all__ = [
    "REQUEST_TYPE_HEADER",
    "REQUEST_SIZE_HEADER",
    "RESPONSE_TYPE_HEADER",
    "RESPONSE_SIZE_HEADER",
    "decompress_request",
    "wants_compressed_response",
    "compress_response",
]

REQUEST_TYPE_HEADER = "x-ots-request-compress-type"
REQUEST_SIZE_HEADER = "x-ots-request-compress-size"
RESPONSE_TYPE_HEADER = "x-ots-response-compress-type"
RESPONSE_SIZE_HEADER = "x-ots-response-compress-size"
_DEFLATE = "deflate"
_SIZE = re.compile(r"[0-9]{1,19}")


def _check_type(header: str, value: str) -> None:
    if value.strip().lower() != _DEFLATE:
        raise errors.parameter_invalid(
            f"{header} {value.strip()[:64]!r} is not supported; the only accepted value is 'deflate'."
        )


def decompress_request(headers: Mapping[str, str], body: bytes, limit: int) -> bytes:
    """The request body after undoing request compression (unchanged without it).

    Args:
      headers: the request headers, names lower-cased.
      body: the body as received (what ``x-ots-contentmd5`` covers).
      limit: the largest accepted decompressed body, in bytes.

    Raises:
      ServiceError: OTSParameterInvalid for an unsupported type, a missing,
        malformed or over-limit declared size, a body that is not a zlib
        stream, or one that inflates to another size than declared.
    """
    kind = headers.get(REQUEST_TYPE_HEADER)
    if kind is None:
        return body
    _check_type(REQUEST_TYPE_HEADER, kind)
    size_text = headers.get(REQUEST_SIZE_HEADER)
    if size_text is None:
        raise errors.parameter_invalid(f"{REQUEST_TYPE_HEADER} is set but {REQUEST_SIZE_HEADER} is missing.")
    size_text = size_text.strip()
    if not _SIZE.fullmatch(size_text):
        raise errors.parameter_invalid(f"{REQUEST_SIZE_HEADER} {size_text[:64]!r} is not a non-negative integer.")
    declared = int(size_text)
    if declared > limit:
        raise errors.parameter_invalid(
            f"{REQUEST_SIZE_HEADER} {declared} exceeds the request body limit of {limit} bytes."
        )
    inflater = zlib.decompressobj()
    try:
        # One byte more than declared is enough to tell "too long" apart.
        plain = inflater.decompress(body, declared + 1)
    except zlib.error as err:
        raise errors.parameter_invalid(
            f"Request body of {len(body)} bytes is not a valid deflate (zlib) stream: {err}."
        ) from None
    if len(plain) > declared:
        raise errors.parameter_invalid(
            f"Request body inflates to more than the {declared} bytes declared in {REQUEST_SIZE_HEADER}."
        )
    if not inflater.eof:
        raise errors.parameter_invalid(
            f"Request body is a truncated deflate stream: it inflates to {len(plain)} bytes and does not end."
        )
    if inflater.unused_data:
        raise errors.parameter_invalid(
            f"Request body has {len(inflater.unused_data)} bytes after the end of its deflate stream."
        )
    if len(plain) != declared:
        raise errors.parameter_invalid(
            f"Request body inflates to {len(plain)} bytes, not the {declared} declared in {REQUEST_SIZE_HEADER}."
        )
    return plain


def wants_compressed_response(headers: Mapping[str, str]) -> bool:
    """True when the client asked for a deflated answer.

    Raises:
      ServiceError: OTSParameterInvalid for a compression type other than deflate.
    """
    kind = headers.get(RESPONSE_TYPE_HEADER)
    if kind is None:
        return False
    _check_type(RESPONSE_TYPE_HEADER, kind)
    return True


def compress_response(body: bytes) -> Tuple[bytes, Optional[Tuple[Tuple[str, str], ...]]]:
    """``(wire body, extra headers)`` for an answer to a client that asked
    for compression; an empty body stays uncompressed (no extra headers)."""
    if not body:
        return body, None
    return zlib.compress(body), ((RESPONSE_TYPE_HEADER, _DEFLATE), (RESPONSE_SIZE_HEADER, str(len(body))))
