"""Pieces the subcommands share: argument types and the service options.

Argument types raise ``argparse.ArgumentTypeError``, so argparse reports
the bad value next to the flag (``argument --heartbeat-interval: must be
> 0, got -1``) instead of a library error naming a Python parameter.
"""

from __future__ import annotations

import argparse
import os
import re
from typing import Dict, NamedTuple, Optional

from beam_tunnel.client.config import ENV_ENDPOINT, ENV_INSTANCE
from beam_tunnel.client.credentials import ENV_ACCESS_KEY_ID, ENV_ACCESS_KEY_SECRET, ENV_SECURITY_TOKEN
from beam_tunnel.emulator.config import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, DEFAULT_INSTANCE

__all__ = [
    "UsageError",
    "positive_number",
    "non_negative_number",
    "positive_int",
    "share",
    "add_service_options",
    "Service",
    "service_settings",
    "with_flag_names",
    "EMULATOR_ENDPOINT",
]

EMULATOR_ENDPOINT = "http://127.0.0.1:8080"
"""Where ``beam-tunnel emulator`` listens by default."""


class UsageError(Exception):
    """A bad command line; the message names the flag. Exit status 2."""


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def positive_number(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def non_negative_number(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def share(text: str) -> float:
    value = _number(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def add_service_options(parser: argparse.ArgumentParser, emulator_defaults: bool = False) -> None:
    """``--endpoint --instance --access-key-id --access-key-secret``.

    Each falls back to the environment variable TunnelClient reads; with
    ``emulator_defaults`` (the emulator's admin commands) then to the
    emulator's defaults.
    """
    group = parser.add_argument_group("service")
    fallback = f", else {EMULATOR_ENDPOINT}" if emulator_defaults else ""
    group.add_argument("--endpoint", help=f"http(s)://host[:port] (default: ${ENV_ENDPOINT}{fallback})")
    fallback = f", else {DEFAULT_INSTANCE}" if emulator_defaults else ""
    group.add_argument("--instance", help=f"instance name (default: ${ENV_INSTANCE}{fallback})")
    fallback = f", else the emulator's {DEFAULT_ACCESS_KEY_ID}" if emulator_defaults else ""
    group.add_argument("--access-key-id", metavar="ID", help=f"AccessKey id (default: ${ENV_ACCESS_KEY_ID}{fallback})")
    group.add_argument(
        "--access-key-secret", metavar="SECRET",
        help=f"AccessKey secret (default: ${ENV_ACCESS_KEY_SECRET}; prefer it: a flag shows in `ps`)",
    )


class Service(NamedTuple):
    """Where and as whom a command connects."""

    endpoint: str
    instance: str
    access_key_id: str
    access_key_secret: str
    sts_token: Optional[str]
    secret_source: str
    """Where the secret came from, for messages (never the secret)."""


def service_settings(args, emulator_defaults: bool = False, environ=None) -> Service:
    """The service from the flags of :func:`add_service_options` and the
    environment. An STS token (``$ALIBABA_CLOUD_SECURITY_TOKEN``) goes with
    an AccessKey from the environment only, as in TunnelClient.

    Raises:
      UsageError: something is missing; the message says which flag or
        variable gives it.
    """
    env = os.environ if environ is None else environ
    endpoint = args.endpoint or env.get(ENV_ENDPOINT) or (EMULATOR_ENDPOINT if emulator_defaults else None)
    if not endpoint:
        raise UsageError(
            f"no endpoint: pass --endpoint or set ${ENV_ENDPOINT} "
            f"(the emulator's is printed when it starts, by default {EMULATOR_ENDPOINT})"
        )
    instance = args.instance or env.get(ENV_INSTANCE) or (DEFAULT_INSTANCE if emulator_defaults else None)
    if not instance:
        raise UsageError(f"no instance: pass --instance or set ${ENV_INSTANCE} (the emulator's is {DEFAULT_INSTANCE})")
    key_id, secret, token = args.access_key_id, args.access_key_secret, None
    source = "--access-key-secret"
    if key_id is None and secret is not None:
        raise UsageError("--access-key-secret was given without --access-key-id")
    if key_id is None:
        key_id, secret = env.get(ENV_ACCESS_KEY_ID) or None, env.get(ENV_ACCESS_KEY_SECRET) or None
        token, source = env.get(ENV_SECURITY_TOKEN) or None, f"${ENV_ACCESS_KEY_SECRET}"
        if key_id is None and emulator_defaults:
            return Service(endpoint, instance, DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, None,
                           "the emulator's default pair")
        if key_id is None:
            raise UsageError(
                f"no AccessKey: pass --access-key-id (its secret in ${ENV_ACCESS_KEY_SECRET} or "
                f"--access-key-secret), or set ${ENV_ACCESS_KEY_ID} and ${ENV_ACCESS_KEY_SECRET}; "
                f"the emulator's default pair is {DEFAULT_ACCESS_KEY_ID} / {DEFAULT_ACCESS_KEY_SECRET}"
            )
    elif secret is None:
        secret, source = env.get(ENV_ACCESS_KEY_SECRET) or None, f"${ENV_ACCESS_KEY_SECRET}"
    if secret is None:
        raise UsageError(
            f"no secret for AccessKey {key_id!r}: set ${ENV_ACCESS_KEY_SECRET} or pass --access-key-secret"
        )
    return Service(endpoint, instance, key_id, secret, token, source)


def with_flag_names(message: str, flags: Dict[str, str]) -> str:
    """``message`` with Python parameter names replaced by the flags that
    set them (``heartbeat_interval_s`` -> ``--heartbeat-interval``)."""
    if not flags:
        return message
    pattern = re.compile(r"\b(" + "|".join(re.escape(name) for name in sorted(flags, key=len, reverse=True)) + r")\b")
    return pattern.sub(lambda match: flags[match.group(1)], message)

