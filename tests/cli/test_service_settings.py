"""Where the CLI finds the service and the AccessKey: flags first, then the
variables TunnelClient reads; errors name the flag and the variable."""

import argparse

import pytest

from beam_tunnel.cli._common import UsageError, service_settings

_ENV = {
    "TABLESTORE_ENDPOINT": "http://127.0.0.1:1", "TABLESTORE_INSTANCE": "i",
    "ALIBABA_CLOUD_ACCESS_KEY_ID": "env-id", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "env-secret",
    "ALIBABA_CLOUD_SECURITY_TOKEN": "env-token",
}


def _args(**flags):
    values = dict(endpoint=None, instance=None, access_key_id=None, access_key_secret=None)
    values.update(flags)
    return argparse.Namespace(**values)


def test_everything_from_the_environment_including_the_sts_token():
    service = service_settings(_args(), environ=_ENV)
    assert (service.endpoint, service.instance, service.access_key_id, service.access_key_secret,
            service.sts_token) == ("http://127.0.0.1:1", "i", "env-id", "env-secret", "env-token")
    assert service.secret_source == "$ALIBABA_CLOUD_ACCESS_KEY_SECRET"


def test_a_key_id_flag_takes_its_secret_from_the_environment_but_never_the_token():
    service = service_settings(_args(access_key_id="flag-id"), environ=_ENV)
    assert (service.access_key_id, service.access_key_secret, service.sts_token) == ("flag-id", "env-secret", None)


def test_flags_win():
    service = service_settings(_args(endpoint="http://h:2", instance="j", access_key_id="a", access_key_secret="b"),
                               environ=_ENV)
    assert service[:5] == ("http://h:2", "j", "a", "b", None) and service.secret_source == "--access-key-secret"


def test_the_emulator_commands_fall_back_to_the_emulator_defaults():
    service = service_settings(_args(), emulator_defaults=True, environ={})
    assert service[:4] == ("http://127.0.0.1:8080", "beam-tunnel", "emulator-access-key-id", "emulator-access-key-secret")


@pytest.mark.parametrize("flags, env, message", [
    ({}, {}, "no endpoint: pass --endpoint or set $TABLESTORE_ENDPOINT"),
    ({"endpoint": "http://h"}, {}, "no instance: pass --instance or set $TABLESTORE_INSTANCE"),
    ({"endpoint": "http://h", "instance": "i"}, {}, "no AccessKey: pass --access-key-id"),
    ({"endpoint": "http://h", "instance": "i", "access_key_secret": "s"}, {}, "--access-key-secret was given without --access-key-id"),
    ({"endpoint": "http://h", "instance": "i", "access_key_id": "a"}, {}, "no secret for AccessKey 'a': set $ALIBABA_CLOUD_ACCESS_KEY_SECRET"),
])
def test_what_is_missing_is_named_by_flag_and_variable(flags, env, message):
    with pytest.raises(UsageError, match=message.replace("$", r"\$").replace("(", r"\(")):
        service_settings(_args(**flags), environ=env)
