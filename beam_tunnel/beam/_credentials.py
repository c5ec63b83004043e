"""How a slot on a worker gets its AccessKey without the secret in the graph.

A Beam pipeline graph (and with it every DoFn) is serialized and shipped to
the runner, shown in UIs and kept in job records, so no secret may be pickled
into it. Three sources, all picklable without a secret:

* the environment (default): the graph holds nothing; each worker reads
  ``ALIBABA_CLOUD_ACCESS_KEY_ID`` / ``..._SECRET`` / ``ALIBABA_CLOUD_SECURITY_TOKEN``.
* arguments given to ``ReadFromTunnel``: the secret stays in a registry of
  the launching process and the graph holds a random handle. That reaches
  every runner whose SDK harness runs in the launching process (DirectRunner,
  Prism and Flink in LOOPBACK mode); a remote worker gets an error saying how
  to provide credentials there.
* a provider: a picklable callable that returns :class:`Credentials` on the
  worker (from a secret manager, a mounted file...), for remote workers.
"""

from __future__ import annotations

import os
import secrets
import threading
from typing import Callable, Dict, Optional

from beam_tunnel.client.credentials import (
    ENV_ACCESS_KEY_ID,
    ENV_ACCESS_KEY_SECRET,
    ENV_SECURITY_TOKEN,
    Credentials,
)
from beam_tunnel.errors import ConfigError

_LOCAL_CREDENTIALS: Dict[str, Credentials] = {}
_LOCAL_LOCK = threading.Lock()


class CredentialSource:
    """A picklable recipe for credentials; resolves them where it runs."""

    def __init__(self, kind: str, access_key_id: Optional[str] = None, handle: Optional[str] = None,
                 provider: Optional[Callable[[], Credentials]] = None) -> None:
        self._kind = kind
        self._access_key_id = access_key_id
        self._handle = handle
        self._provider = provider

    @classmethod
    def from_arguments(
        cls,
        access_key_id: Optional[str],
        access_key_secret: Optional[str],
        sts_token: Optional[str],
        provider: Optional[Callable[[], Credentials]],
    ) -> "CredentialSource":
        """Validate what the user passed and pick the source.

        Raises:
          ConfigError: credentials incomplete or malformed (never showing the
            secret), or both explicit keys and a provider given.
        """
        if provider is not None:
            if access_key_id is not None or access_key_secret is not None or sts_token is not None:
                raise ConfigError("pass either credentials= or access_key_id/access_key_secret, not both")
            if not callable(provider):
                raise ConfigError(f"credentials must be a callable returning Credentials, got {provider!r}")
            return cls("provider", provider=provider)
        if access_key_id is None and access_key_secret is None and sts_token is None:
            # Checked now so a missing key fails at construction, not on a worker.
            Credentials.resolve()
            return cls("env", access_key_id=os.environ.get(ENV_ACCESS_KEY_ID))
        credentials = Credentials.resolve(access_key_id, access_key_secret, sts_token)
        handle = secrets.token_hex(16)
        with _LOCAL_LOCK:
            _LOCAL_CREDENTIALS[handle] = credentials
        return cls("local", access_key_id=credentials.access_key_id, handle=handle)

    def resolve(self) -> Credentials:
        """The credentials, on the machine where this runs."""
        if self._kind == "provider":
            credentials = self._provider()
            if not isinstance(credentials, Credentials):
                raise ConfigError(
                    f"the credentials provider {self._provider!r} returned a {type(credentials).__name__}, "
                    "not beam_tunnel.client.credentials.Credentials"
                )
            return credentials
        if self._kind == "env":
            return Credentials.resolve()
        with _LOCAL_LOCK:
            credentials = _LOCAL_CREDENTIALS.get(self._handle)
        if credentials is None:
            raise ConfigError(
                f"the AccessKey {self._access_key_id!r} given to ReadFromTunnel stays in the process that "
                "built the pipeline and this worker runs elsewhere: set "
                f"{ENV_ACCESS_KEY_ID}/{ENV_ACCESS_KEY_SECRET} (and {ENV_SECURITY_TOKEN} for STS) "
                "on the workers, or pass credentials=<a picklable callable returning Credentials>"
            )
        return credentials

    def describe(self) -> str:
        """For display data and logs: where the key comes from, never the secret."""
        if self._kind == "provider":
            return f"provider {getattr(self._provider, '__qualname__', type(self._provider).__name__)}"
        if self._kind == "env":
            return f"environment ({ENV_ACCESS_KEY_ID})"
        return f"AccessKey {self._access_key_id} (kept in the launching process)"

    def __repr__(self) -> str:
        return f"CredentialSource({self.describe()})"
