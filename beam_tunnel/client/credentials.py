"""AccessKey credentials: validated once, never shown.

The secret and the STS token never appear in a repr, a log line or an error
message; the AccessKey id is an identifier (it travels in clear in the
``x-ots-accesskeyid`` header) and is shown so users can tell keys apart.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Mapping, Optional

from beam_tunnel.errors import ConfigError

__all__ = [
    "Credentials",
    "ENV_ACCESS_KEY_ID",
    "ENV_ACCESS_KEY_SECRET",
    "ENV_SECURITY_TOKEN",
]

ENV_ACCESS_KEY_ID = "ALIBABA_CLOUD_ACCESS_KEY_ID"
ENV_ACCESS_KEY_SECRET = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
ENV_SECURITY_TOKEN = "ALIBABA_CLOUD_SECURITY_TOKEN"


def _is_header_safe(text: str) -> bool:
    # Values that travel in HTTP headers: printable ASCII without spaces, so a
    # stray newline cannot split a header and http.client never has to guess
    # an encoding.
    return all("!" <= ch <= "~" for ch in text)


@dataclasses.dataclass(frozen=True, repr=False)
class Credentials:
    """An AccessKey pair, optionally with an STS security token.

    Picklable, so a Beam DoFn can carry it to workers: the pickle bytes do
    contain the secret, like any configuration that lets a worker sign.

    Attributes:
      access_key_id: the AccessKey id (printable ASCII, no spaces).
      access_key_secret: the AccessKey secret (any non-empty string).
      sts_token: the STS security token of temporary credentials, or None.

    Raises:
      ConfigError: when a value is missing or malformed. The message names
        the id but never the secret or the token.
    """

    access_key_id: str
    access_key_secret: str
    sts_token: Optional[str] = None

    def __post_init__(self) -> None:
        key_id = self.access_key_id
        if not isinstance(key_id, str) or not key_id or not _is_header_safe(key_id):
            raise ConfigError(
                f"access_key_id must be a non-empty string of printable ASCII without spaces, got {key_id!r}"
            )
        secret = self.access_key_secret
        if not isinstance(secret, str) or not secret or "\n" in secret or "\r" in secret:
            raise ConfigError(
                f"access_key_secret for AccessKey {key_id!r} must be a non-empty string without "
                f"line breaks (got a {type(secret).__name__}; the value is not shown)"
            )
        token = self.sts_token
        if token is not None and (not isinstance(token, str) or not token or not _is_header_safe(token)):
            raise ConfigError(
                f"sts_token for AccessKey {key_id!r} must be None or a non-empty string of printable "
                f"ASCII without spaces (got a {type(token).__name__}; the value is not shown)"
            )

    def __repr__(self) -> str:
        token = "'***'" if self.sts_token else "None"
        return f"Credentials(access_key_id={self.access_key_id!r}, access_key_secret='***', sts_token={token})"

    @classmethod
    def resolve(
        cls,
        access_key_id: Optional[str] = None,
        access_key_secret: Optional[str] = None,
        sts_token: Optional[str] = None,
        environ: Optional[Mapping[str, str]] = None,
    ) -> "Credentials":
        """Credentials from the arguments, else from the environment.

        The three values are taken as a group: when ``access_key_id`` is
        given, nothing is read from the environment (an STS token left in the
        environment by another tool must not be paired with an explicit
        long-term key). Otherwise all three come from
        ``ALIBABA_CLOUD_ACCESS_KEY_ID``, ``ALIBABA_CLOUD_ACCESS_KEY_SECRET``
        and ``ALIBABA_CLOUD_SECURITY_TOKEN`` (the token is optional).

        Args:
          access_key_id: the AccessKey id, or None to use the environment.
          access_key_secret: the secret; required when ``access_key_id`` is given.
          sts_token: the STS token, or None.
          environ: the environment to read (default ``os.environ``).

        Raises:
          ConfigError: when the credentials are incomplete or malformed.
        """
        if access_key_id is None:
            if access_key_secret is not None or sts_token is not None:
                raise ConfigError(
                    "access_key_secret/sts_token were given without access_key_id; pass all of "
                    f"them, or none and set {ENV_ACCESS_KEY_ID} and {ENV_ACCESS_KEY_SECRET}"
                )
            env = os.environ if environ is None else environ
            access_key_id = env.get(ENV_ACCESS_KEY_ID) or None
            access_key_secret = env.get(ENV_ACCESS_KEY_SECRET) or None
            sts_token = env.get(ENV_SECURITY_TOKEN) or None
            if access_key_id is None or access_key_secret is None:
                missing = [
                    name
                    for name, value in ((ENV_ACCESS_KEY_ID, access_key_id), (ENV_ACCESS_KEY_SECRET, access_key_secret))
                    if value is None
                ]
                raise ConfigError(
                    "no AccessKey: pass access_key_id and access_key_secret, or set "
                    f"{ENV_ACCESS_KEY_ID} and {ENV_ACCESS_KEY_SECRET} (not set: {', '.join(missing)})"
                )
        elif access_key_secret is None:
            raise ConfigError(f"access_key_secret is required with access_key_id {access_key_id!r}")
        return cls(access_key_id, access_key_secret, sts_token)
