"""Fixtures for client tests: a scripted server over loopback and a client
whose retries use a fake clock, so backoff never really sleeps."""

from __future__ import annotations

import pytest

from _client_support import ACCESS_KEY_ID, INSTANCE, SECRET, FakeClock, policy
from _scripted_server import ScriptedTunnelServer
from beam_tunnel.client import TunnelClient

_ENV_TO_CLEAR = (
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
    "http_proxy", "https_proxy", "all_proxy", "no_proxy",
    "ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN",
    "TABLESTORE_ENDPOINT", "TABLESTORE_INSTANCE",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    # The host's proxy or cloud settings must not leak into the tests.
    for name in _ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def server():
    with ScriptedTunnelServer(instance_name=INSTANCE, access_key_id=ACCESS_KEY_ID, access_key_secret=SECRET) as srv:
        yield srv
    assert srv.unscripted == [], f"requests with no scripted reply: {srv.unscripted}"


@pytest.fixture
def client(server, clock):
    with TunnelClient(
        server.endpoint,
        INSTANCE,
        ACCESS_KEY_ID,
        SECRET,
        timeout=(2.0, 5.0),
        read_retry=policy(clock),
        meta_retry=policy(clock),
    ) as c:
        yield c
