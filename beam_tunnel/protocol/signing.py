"""Tablestore V2 request and response signatures (pure functions, no I/O).

Shared by the client (which signs requests and may check responses) and the
emulator (which verifies requests and signs responses), so both sides build
the string to sign in exactly one place.

Request string to sign (every line ends in ``\\n``)::

    <path>\\nPOST\\n\\n<name>:<value>\\n ... for each x-ots-* header but the signature

Response string to sign::

    <name>:<value>\\n ... for each x-ots-* header, then <path>
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
from typing import Iterable, Mapping, Optional, Tuple

__all__ = [
    "OTS_PREFIX",
    "SIGNATURE_HEADER",
    "content_md5",
    "format_date",
    "parse_date",
    "request_string_to_sign",
    "sign_request",
    "response_string_to_sign",
    "sign_response",
    "verify_request",
]

OTS_PREFIX = "x-ots-"
SIGNATURE_HEADER = "x-ots-signature"


def content_md5(body: bytes) -> str:
    """Base64 of the raw 16-byte MD5 of ``body`` (the ``x-ots-contentmd5`` value)."""
    return base64.b64encode(hashlib.md5(body).digest()).decode("ascii")


def format_date(when: datetime.datetime) -> str:
    """``x-ots-date`` value: UTC, millisecond fraction, ``Z`` suffix."""
    when = when.astimezone(datetime.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def parse_date(value: str) -> datetime.datetime:
    """Parse an ``x-ots-date`` value, tolerating any digits after the dot.

    The Go SDK's layout string puts month/day/hour digits into the fraction, so
    the fraction is ignored rather than validated.

    Raises:
      ValueError: naming the value, when the part before the dot is not an
        ISO-8601 UTC time.
    """
    malformed = f"x-ots-date {value!r} is not of the form YYYY-MM-DDTHH:MM:SS.fffZ"
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1]
    whole, _, fraction = text.partition(".")
    if fraction and not fraction.isdigit():
        raise ValueError(malformed)
    try:
        parsed = datetime.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        raise ValueError(malformed) from None
    return parsed.replace(tzinfo=datetime.timezone.utc)


def _canonical_headers(headers: Iterable[Tuple[str, str]], skip: str = "") -> str:
    lines = []
    for name, value in headers:
        name = name.lower()
        if name.startswith(OTS_PREFIX) and name != skip:
            lines.append(f"{name}:{value.strip()}")
    return "".join(line + "\n" for line in sorted(lines))


def _items(headers) -> Iterable[Tuple[str, str]]:
    return headers.items() if isinstance(headers, Mapping) else headers


def request_string_to_sign(path: str, headers) -> str:
    """The V2 request string to sign for ``path`` and the request's headers.

    ``headers`` is a mapping or an iterable of (name, value) pairs; names may
    be in any case. Every ``x-ots-*`` header except the signature is signed.
    """
    return f"{path}\nPOST\n\n" + _canonical_headers(_items(headers), skip=SIGNATURE_HEADER)


def _hmac_sha1_b64(secret: str, text: str) -> str:
    digest = hmac.new(secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def sign_request(path: str, headers, access_key_secret: str) -> str:
    """The ``x-ots-signature`` value for a request."""
    return _hmac_sha1_b64(access_key_secret, request_string_to_sign(path, headers))


def response_string_to_sign(path: str, headers) -> str:
    """The string a response's ``Authorization`` signature covers."""
    return _canonical_headers(_items(headers)) + path


def sign_response(path: str, headers, access_key_id: str, access_key_secret: str) -> str:
    """The ``Authorization`` header value for a response: ``OTS <id>:<sig>``."""
    return f"OTS {access_key_id}:{_hmac_sha1_b64(access_key_secret, response_string_to_sign(path, headers))}"


def verify_request(path: str, headers, access_key_secret: str, signature: Optional[str]) -> bool:
    """True when ``signature`` is the request's V2 signature (constant-time compare)."""
    if not signature:
        return False
    expected = sign_request(path, headers, access_key_secret)
    return hmac.compare_digest(expected.encode("ascii"), signature.strip().encode("ascii", "replace"))

