"""A raw signed-request client for wire-level emulator tests.

Kept out of conftest.py so test modules can import it by a unique name.
"""

from __future__ import annotations

import datetime
import http.client
import urllib.parse

from beam_tunnel.protocol import signing


class RawClient:
    """Sends hand-made requests over one keep-alive connection."""

    def __init__(self, server, key_id=None, secret=None, instance=None):
        parsed = urllib.parse.urlsplit(server.endpoint)
        self.conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
        self.key_id = key_id or server.access_key_id
        self.secret = secret or server.access_key_secret
        self.instance = instance or server.instance_name

    def headers(self, path, body, *, date=None, api_version="2015-12-31", extra=None, sign=True):
        when = date or datetime.datetime.now(datetime.timezone.utc)
        headers = {
            "x-ots-date": signing.format_date(when) if isinstance(when, datetime.datetime) else when,
            "x-ots-apiversion": api_version,
            "x-ots-accesskeyid": self.key_id,
            "x-ots-instancename": self.instance,
            "x-ots-contentmd5": signing.content_md5(body),
        }
        headers.update(extra or {})
        if sign:
            headers["x-ots-signature"] = signing.sign_request(path, headers, self.secret)
        return headers

    def post(self, path, body=b"", headers=None, **kwargs):
        """POST and return (status, lower-cased headers, body)."""
        if headers is None:
            headers = self.headers(path, body, **kwargs)
        self.conn.request("POST", path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data

    def close(self):
        self.conn.close()
