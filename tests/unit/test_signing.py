"""Request signing: OtsV2Auth's headers and signature, cross-checked with the
official tablestore SDK's SignV2 (test-only import) and with
beam_tunnel.protocol.signing's verifier."""

from __future__ import annotations

import base64
import datetime
import hashlib

import pytest
import requests

from beam_tunnel.client.auth import OtsV2Auth
from beam_tunnel.client.credentials import Credentials
from beam_tunnel.protocol import signing

ts_auth = pytest.importorskip("tablestore.auth")
ts_credentials = pytest.importorskip("tablestore.credentials")

UTC = datetime.timezone.utc
WHEN = datetime.datetime(2024, 9, 13, 22, 59, 7, 913_456, tzinfo=UTC)


def signed(credentials, path="/tunnel/readrecords", body=b"", extra_headers=None, now=lambda: WHEN,
           api_version="2018-04-01"):
    request = requests.Request("POST", f"http://127.0.0.1:8080{path}", data=body, headers=extra_headers or {})
    auth = OtsV2Auth(credentials, "my-inst", api_version, now=now)
    return auth(request.prepare())


def official_signature(path, headers, credentials):
    """What the official SDK computes for the same x-ots-* headers."""
    to_sign = {k: v for k, v in headers.items() if k.startswith("x-ots-") and k != "x-ots-signature"}
    context = ts_auth.RequestContext(ts_credentials.Credentials(
        credentials.access_key_id, credentials.access_key_secret, credentials.sts_token))
    ts_auth.SignV2("utf-8").make_request_signature_and_add_headers(path, to_sign, context)
    return to_sign["x-ots-signature"]


@pytest.mark.parametrize(
    "credentials, path, body, extra",
    [
        (Credentials("LTAIid", "secret"), "/tunnel/readrecords", b"", None),
        (Credentials("LTAIid", "secret"), "/tunnel/create", b"\x0a\x05hello\x00\xff", None),
        (Credentials("LTAIid", "s\u00e9cr\u00eat-\u6f22\u5b57", "CAIS-token"), "/tunnel/heartbeat", b"x" * 1000, None),
        (Credentials("LTAIid", "secret"), "/tunnel/list", b"", {"x-ots-trace-id": "6f1c-uuid "}),
    ],
)
def test_signature_matches_official_sdk(credentials, path, body, extra):
    prepared = signed(credentials, path, body, extra)
    headers = {k.lower(): v for k, v in prepared.headers.items()}

    assert headers["x-ots-signature"] == official_signature(path, headers, credentials)
    assert signing.verify_request(path, headers, credentials.access_key_secret, headers["x-ots-signature"])


def test_headers_set():
    prepared = signed(Credentials("LTAIid", "secret", "CAIS-token"), body=b"abc", api_version="2015-12-31")
    headers = {k.lower(): v for k, v in prepared.headers.items()}

    assert headers["x-ots-date"] == "2024-09-13T22:59:07.913Z"
    assert headers["x-ots-apiversion"] == "2015-12-31"
    assert headers["x-ots-accesskeyid"] == "LTAIid"
    assert headers["x-ots-instancename"] == "my-inst"
    assert headers["x-ots-ststoken"] == "CAIS-token"
    assert headers["x-ots-contentmd5"] == base64.b64encode(hashlib.md5(b"abc").digest()).decode()
    # No content type: it is not signed and the service does not need it.
    assert "content-type" not in headers


def test_empty_body_gets_md5_of_empty_string_and_no_token_header():
    headers = signed(Credentials("LTAIid", "secret")).headers

    assert headers["x-ots-contentmd5"] == "1B2M2Y8AsgTpgAmY7PhCfg=="
    assert "x-ots-ststoken" not in headers


def test_known_signature_vector():
    # The value below was computed once with the official SDK's SignV2 (and
    # by hand with hmac); it is pinned so that a change in canonicalisation
    # shows up even if this library and the SDK changed together.
    headers = {
        "x-ots-date": "2024-09-13T22:59:07.913Z",
        "x-ots-apiversion": "2018-04-01",
        "x-ots-accesskeyid": "LTAIid",
        "x-ots-instancename": "my-inst",
        "x-ots-contentmd5": "1B2M2Y8AsgTpgAmY7PhCfg==",
    }
    expected = "8laqGmGc5oaVHB8SXBNeuOg++y4="
    assert official_signature("/tunnel/list", headers, Credentials("LTAIid", "secret")) == expected

    assert signed(Credentials("LTAIid", "secret"), "/tunnel/list").headers["x-ots-signature"] == expected
    assert signing.request_string_to_sign("/tunnel/list", headers) == (
        "/tunnel/list\nPOST\n\n"
        "x-ots-accesskeyid:LTAIid\nx-ots-apiversion:2018-04-01\nx-ots-contentmd5:1B2M2Y8AsgTpgAmY7PhCfg==\n"
        "x-ots-date:2024-09-13T22:59:07.913Z\nx-ots-instancename:my-inst\n"
    )


def test_tampering_breaks_the_signature():
    credentials = Credentials("LTAIid", "secret", "CAIS-token")
    headers = {k.lower(): v for k, v in signed(credentials, body=b"abc").headers.items()}
    signature = headers["x-ots-signature"]

    for name, value in (("x-ots-contentmd5", signing.content_md5(b"abd")), ("x-ots-ststoken", "other"),
                        ("x-ots-date", "2024-09-13T22:59:08.913Z")):
        changed = dict(headers, **{name: value})
        assert not signing.verify_request("/tunnel/readrecords", changed, "secret", signature), name
    assert not signing.verify_request("/tunnel/checkpoint", headers, "secret", signature)
    assert not signing.verify_request("/tunnel/readrecords", headers, "other-secret", signature)


def test_each_signing_takes_a_fresh_date():
    times = iter([WHEN, WHEN + datetime.timedelta(seconds=1)])
    credentials = Credentials("LTAIid", "secret")
    auth = OtsV2Auth(credentials, "my-inst", "2018-04-01", now=lambda: next(times))
    prepared = requests.Request("POST", "http://127.0.0.1:8080/tunnel/list", data=b"").prepare()

    first = dict(auth(prepared.copy()).headers)
    second = dict(auth(prepared.copy()).headers)

    assert first["x-ots-date"] != second["x-ots-date"]
    assert first["x-ots-signature"] != second["x-ots-signature"]
