"""No secret (AccessKey secret, STS token) in a repr, an error or a log line."""

from __future__ import annotations

import logging
import pickle

import pytest

from _client_support import ACCESS_KEY_ID, INSTANCE, SECRET, STS_TOKEN, policy
from _scripted_server import Drop, Fail, Ok, Raw, ScriptedTunnelServer
from beam_tunnel import errors
from beam_tunnel.client import Credentials, TunnelClient
from beam_tunnel.client.auth import OtsV2Auth
from beam_tunnel.protocol import tunnel_pb2 as pb

SECRETS = (SECRET, STS_TOKEN)


def assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def test_reprs_hide_secrets(clock):
    client = TunnelClient("http://127.0.0.1:9", INSTANCE, ACCESS_KEY_ID, SECRET, STS_TOKEN, meta_retry=policy(clock))
    credentials = client.config.credentials

    for text in (repr(client), str(client), repr(client.config), repr(credentials),
                 repr(OtsV2Auth(credentials, INSTANCE, "2018-04-01"))):
        assert_clean(text)
    assert ACCESS_KEY_ID in repr(credentials) and "***" in repr(credentials)
    # The secret does travel in a pickle (workers need it) and survives it.
    assert pickle.loads(pickle.dumps(credentials)).access_key_secret == SECRET


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(access_key_secret=SECRET + "\n"),
        dict(access_key_secret=12345),
        dict(sts_token=STS_TOKEN + " with space"),
    ],
)
def test_config_errors_about_secrets_do_not_show_them(kwargs):
    values = dict(access_key_id=ACCESS_KEY_ID, access_key_secret=SECRET, sts_token=None)
    values.update(kwargs)
    with pytest.raises(errors.ConfigError) as caught:
        Credentials(**values)
    assert_clean(str(caught.value))
    assert "12345" not in str(caught.value)
    assert ACCESS_KEY_ID in str(caught.value)


def test_errors_and_debug_logs_of_real_calls_are_clean(caplog, clock):
    caplog.set_level(logging.DEBUG)
    raised = []
    with ScriptedTunnelServer(instance_name=INSTANCE, access_key_id=ACCESS_KEY_ID,
                              access_key_secret=SECRET, sts_token=STS_TOKEN) as server:
        server.script("/tunnel/list", Ok(pb.ListTunnelResponse()))
        server.script("/tunnel/getcheckpoint",
                      Fail(503, "OTSTunnelServerUnavailable", "busy"), Drop(),
                      Ok(pb.GetCheckpointResponse(checkpoint="t", sequence_number=0)),
                      Fail(403, "OTSPermissionDenied", "nope"), Raw(502, b"<html/>"), Raw(404, b"?"),
                      Ok(pb.GetCheckpointResponse(checkpoint="t", sequence_number=0), md5="bad"))
        with TunnelClient(server.endpoint, INSTANCE, ACCESS_KEY_ID, SECRET, STS_TOKEN,
                          meta_retry=policy(clock)) as client:
            client.list_tunnels()
            client.get_checkpoint("tid", "cid", "ch")  # retried past 503 and a drop
        with TunnelClient(server.endpoint, INSTANCE, ACCESS_KEY_ID, SECRET, STS_TOKEN,
                          meta_retry=policy(clock, deadline_s=0)) as client:
            for _ in range(4):
                with pytest.raises(errors.TunnelError) as caught:
                    client.get_checkpoint("tid", "cid", "ch")
                raised.append(caught.value)
        with TunnelClient(server.endpoint, INSTANCE, ACCESS_KEY_ID, SECRET + "-wrong", STS_TOKEN,
                          meta_retry=policy(clock)) as wrong:
            with pytest.raises(errors.AuthFailedError) as caught:
                wrong.list_tunnels()
            raised.append(caught.value)
    # The tokens did go over the wire (so the test could have caught a leak).
    assert all(r.headers.get("x-ots-ststoken") == STS_TOKEN for r in server.received)
    assert len(raised) == 5 and caplog.records
    for err in raised:
        assert_clean(str(err))
        assert_clean(repr(err))
    assert_clean(caplog.text)
