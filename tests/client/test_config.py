"""Construction: arguments and environment, validation messages, pickling,
sessions, STS tokens and the API version header."""

from __future__ import annotations

import datetime
import pickle

import pytest
import requests

from _client_support import ACCESS_KEY_ID, INSTANCE, SECRET, STS_TOKEN, policy
from _scripted_server import Ok, ScriptedTunnelServer
from beam_tunnel import errors
from beam_tunnel.client import Channel, Credentials, TunnelClient, TunnelConfig, TunnelType
from beam_tunnel.protocol import tunnel_pb2 as pb

LIST_OK = Ok(pb.ListTunnelResponse())


def make(**overrides):
    kwargs = dict(endpoint="http://127.0.0.1:9", instance_name=INSTANCE,
                  access_key_id=ACCESS_KEY_ID, access_key_secret=SECRET)
    kwargs.update(overrides)
    return TunnelClient(**kwargs)


# ---- where settings come from ----------------------------------------------------


def test_everything_from_the_environment(monkeypatch):
    monkeypatch.setenv("TABLESTORE_ENDPOINT", "https://inst.cn-hangzhou.ots.aliyuncs.com/")
    monkeypatch.setenv("TABLESTORE_INSTANCE", "inst")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "env-id")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "env-secret")
    monkeypatch.setenv("ALIBABA_CLOUD_SECURITY_TOKEN", "env-token")

    config = TunnelClient().config

    assert config.endpoint == "https://inst.cn-hangzhou.ots.aliyuncs.com"
    assert config.instance_name == "inst"
    assert config.credentials == Credentials("env-id", "env-secret", "env-token")


def test_explicit_key_ignores_environment_token(monkeypatch):
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "env-id")
    monkeypatch.setenv("ALIBABA_CLOUD_SECURITY_TOKEN", "env-token")

    config = make().config

    assert config.credentials == Credentials(ACCESS_KEY_ID, SECRET, None)


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (dict(endpoint=None), "set TABLESTORE_ENDPOINT"),
        (dict(instance_name=None), "set TABLESTORE_INSTANCE"),
        (dict(access_key_id=None, access_key_secret=None),
         "not set: ALIBABA_CLOUD_ACCESS_KEY_ID, ALIBABA_CLOUD_ACCESS_KEY_SECRET"),
        (dict(access_key_secret=None), f"access_key_secret is required with access_key_id '{ACCESS_KEY_ID}'"),
        (dict(access_key_id=None), "were given without access_key_id"),
    ],
)
def test_missing_settings_name_the_fix(overrides, expected):
    with pytest.raises(errors.ConfigError) as caught:
        make(**overrides)
    assert expected in str(caught.value)


@pytest.mark.parametrize(
    "overrides, shown",
    [
        (dict(endpoint="ftp://host"), "'ftp://host'"),
        (dict(endpoint="inst.ots.aliyuncs.com"), "'inst.ots.aliyuncs.com'"),
        (dict(endpoint="http://host/prefix"), "'http://host/prefix'"),
        (dict(endpoint="http://host:99999"), "'http://host:99999'"),
        (dict(endpoint=""), "''"),
        (dict(instance_name="my inst"), "'my inst'"),
        (dict(instance_name=7), "7"),
        (dict(access_key_id="id with space"), "'id with space'"),
        (dict(timeout=0), "0"),
        (dict(timeout=(1, -2)), "-2"),
        (dict(timeout=(1, 2, 3)), "(1, 2, 3)"),
        (dict(retry_deadline=-1), "-1"),
        (dict(api_version="v2"), "'v2'"),
        (dict(pool_size=0), "0"),
        (dict(session="not a session"), "str"),
    ],
)
def test_bad_settings_are_refused_with_the_value(overrides, shown):
    with pytest.raises(errors.ConfigError) as caught:
        make(**overrides)
    assert shown in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_endpoint_password_is_not_echoed():
    with pytest.raises(errors.ConfigError) as caught:
        make(endpoint="http://user:hunter2@host")
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    "call, shown",
    [
        (lambda c: c.create_tunnel("t", "n", "Streaming"), "'Streaming'"),
        (lambda c: c.create_tunnel("t", "n", "Stream", start_offset=1_700_000_000_000), "1700000000000"),
        (lambda c: c.create_tunnel("t", "n", "Stream", start_offset=datetime.datetime(2024, 1, 1)),
         "datetime.datetime(2024, 1, 1, 0, 0)"),
        (lambda c: c.create_tunnel("t", "n", "Stream", start_offset="NEWEST"), "'NEWEST'"),
        (lambda c: c.create_tunnel("t", "n", "Stream", start_offset=1_800_000_000_000_000_000,
                                   end_offset=1_700_000_000_000_000_000), "1700000000000000000"),
        (lambda c: c.create_tunnel("", "n", "Stream"), "table_name must be a non-empty string, got ''"),
        (lambda c: c.read_records("t", "c", None, "tok"), "channel_id must be a non-empty string, got None"),
        (lambda c: c.checkpoint("t", "c", "ch", "tok", -1), "-1"),
        (lambda c: c.connect("t", timeout_s=0), "0"),
        (lambda c: c.heartbeat("t", "c", [("ch", 1, "OPEN")]), "('ch', 1, 'OPEN')"),
        (lambda c: c.heartbeat("t", "c", "ch-1"), "'ch-1'"),
        (lambda c: c.schedule("t", {"ch": "SLEEPING"}), "'SLEEPING'"),
        (lambda c: c.get_rpo("t", limit=0), "0"),
    ],
)
def test_bad_call_arguments_fail_before_sending(server, client, call, shown):
    with pytest.raises(errors.ConfigError) as caught:
        call(client)
    assert shown in str(caught.value)
    assert server.received == []


def test_channel_value_type_validates():
    with pytest.raises(errors.ConfigError, match="WAIT only appears in DescribeTunnel"):
        Channel("ch", 1, "WAIT")
    with pytest.raises(errors.ConfigError, match="got -1"):
        Channel("ch", -1, "OPEN")
    assert Channel("ch", 1, "open").status == "OPEN"


def test_tunnel_type_accepts_values_and_names():
    assert TunnelType.parse("BaseAndStream") is TunnelType.BASE_AND_STREAM
    assert TunnelType.parse("base_data") is TunnelType.BASE_DATA
    assert str(TunnelType.STREAM) == "Stream"


# ---- API version, STS, sessions -------------------------------------------------------


def test_api_version_header(server, clock):
    server.script("/tunnel/list", LIST_OK)
    with make(endpoint=server.endpoint, api_version="2015-12-31", meta_retry=policy(clock)) as client:
        client.list_tunnels()
    assert server.received[0].headers["x-ots-apiversion"] == "2015-12-31"


def test_sts_token_is_sent_and_signed(clock):
    with ScriptedTunnelServer(instance_name=INSTANCE, access_key_id=ACCESS_KEY_ID,
                              access_key_secret=SECRET, sts_token=STS_TOKEN) as server:
        server.script("/tunnel/list", LIST_OK)
        with make(endpoint=server.endpoint, sts_token=STS_TOKEN, meta_retry=policy(clock)) as client:
            assert client.list_tunnels() == []
        (sent,) = server.received
    assert sent.rejection is None and sent.headers["x-ots-ststoken"] == STS_TOKEN


def test_user_session_is_used_and_not_picklable(server, clock):
    server.script("/tunnel/list", LIST_OK)
    session = requests.Session()
    session.headers["X-Test-Marker"] = "from-user-session"
    with make(endpoint=server.endpoint, session=session, meta_retry=policy(clock)) as client:
        client.list_tunnels()
        with pytest.raises(TypeError, match="pickle client.config"):
            pickle.dumps(client)
    assert server.received[0].headers["x-test-marker"] == "from-user-session"
    session.close()


def test_client_pickles_as_its_config_and_works_after(server):
    server.script("/tunnel/list", LIST_OK)
    with make(endpoint=server.endpoint, retry_deadline=0) as client:
        copy = pickle.loads(pickle.dumps(client))
    with copy:
        assert copy.config == client.config
        assert copy.list_tunnels() == []
    assert len(server.received) == 1


def test_config_pickles_and_builds_clients(server):
    server.script("/tunnel/list", LIST_OK)
    config = TunnelConfig.resolve(server.endpoint, INSTANCE, ACCESS_KEY_ID, SECRET, retry_deadline=1.5)
    assert config.read_retry.deadline_s == config.meta_retry.deadline_s == 1.5

    restored = pickle.loads(pickle.dumps(config))

    assert restored == config
    with TunnelClient.from_config(restored) as client:
        assert client.list_tunnels() == []
