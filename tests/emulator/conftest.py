"""Fixtures for emulator tests: a running EmulatorServer per test, the
official tablestore SDK pointed at it, and a raw signed-request helper for
wire-level tests."""

from __future__ import annotations

import datetime
import http.client
import os
import sys
import urllib.parse

import pytest

from beam_tunnel.emulator import EmulatorServer
from beam_tunnel.protocol import signing

_TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)


@pytest.fixture
def server():
    with EmulatorServer() as running:
        yield running


@pytest.fixture
def ots(server):
    """The official Python SDK client, without retries (errors surface at once)."""
    tablestore = pytest.importorskip("tablestore")
    client = tablestore.OTSClient(
        server.endpoint, server.access_key_id, server.access_key_secret, server.instance_name,
        retry_policy=tablestore.NoRetryPolicy(),
    )
    yield client


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


@pytest.fixture
def raw(server):
    client = RawClient(server)
    yield client
    client.close()
