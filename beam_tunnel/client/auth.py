"""Request signing for the Tunnel Service, as a ``requests`` auth callable.

The transport never knows how to sign: it hands each prepared request to an
:class:`OtsV2Auth`, which adds the ``x-ots-*`` headers and the V2 signature.
The string to sign is built by :mod:`beam_tunnel.protocol.signing`, which the
emulator uses to verify, so both sides agree by construction.
"""

from __future__ import annotations

import datetime
from typing import Callable
from urllib.parse import urlsplit

import requests

from beam_tunnel.client.credentials import Credentials
from beam_tunnel.protocol import signing

__all__ = ["OtsV2Auth"]


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class OtsV2Auth(requests.auth.AuthBase):
    """Adds the Tablestore V2 authentication headers to a request.

    Headers set: ``x-ots-date``, ``x-ots-apiversion``, ``x-ots-accesskeyid``,
    ``x-ots-instancename``, ``x-ots-contentmd5`` (of the body; of the empty
    string for an empty body), ``x-ots-ststoken`` when the credentials carry
    one, and ``x-ots-signature`` over every ``x-ots-*`` header present.

    A fresh date is taken on every call, so a retried request is signed anew.

    Args:
      credentials: the AccessKey (and STS token) to sign with.
      instance_name: the instance every request addresses.
      api_version: the ``x-ots-apiversion`` value.
      now: clock returning an aware datetime (tests pin it).
    """

    def __init__(
        self,
        credentials: Credentials,
        instance_name: str,
        api_version: str,
        now: Callable[[], datetime.datetime] = _utc_now,
    ) -> None:
        self._credentials = credentials
        self._instance_name = instance_name
        self._api_version = api_version
        self._now = now

    @property
    def access_key_id(self) -> str:
        """The AccessKey id requests are signed with (not a secret)."""
        return self._credentials.access_key_id

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        headers = {
            "x-ots-date": signing.format_date(self._now()),
            "x-ots-apiversion": self._api_version,
            "x-ots-accesskeyid": self._credentials.access_key_id,
            "x-ots-instancename": self._instance_name,
            "x-ots-contentmd5": signing.content_md5(body),
        }
        if self._credentials.sts_token:
            headers["x-ots-ststoken"] = self._credentials.sts_token
        request.headers.update(headers)
        path = urlsplit(request.url).path or "/"
        request.headers[signing.SIGNATURE_HEADER] = signing.sign_request(
            path, request.headers, self._credentials.access_key_secret
        )
        return request

    def __repr__(self) -> str:
        return (
            f"OtsV2Auth(access_key_id={self._credentials.access_key_id!r}, "
            f"instance_name={self._instance_name!r}, api_version={self._api_version!r})"
        )
