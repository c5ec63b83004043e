"""Everything needed to build a :class:`TunnelClient`, as one picklable value.

Beam DoFns hold a :class:`TunnelConfig` (plain data: strings, numbers, the
credentials and two retry policies) and build the client lazily on the
worker, because sockets and connection pools cannot travel in a pickle.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Mapping, Optional, Tuple, Union
from urllib.parse import urlsplit

from beam_tunnel.client.credentials import Credentials, _is_header_safe
from beam_tunnel.client.retry import META_RETRY, READ_RECORDS_RETRY, RetryPolicy
from beam_tunnel.errors import ConfigError

__all__ = [
    "TunnelConfig",
    "ENV_ENDPOINT",
    "ENV_INSTANCE",
    "DEFAULT_API_VERSION",
    "DEFAULT_TIMEOUT",
    "DEFAULT_POOL_SIZE",
]

ENV_ENDPOINT = "TABLESTORE_ENDPOINT"
ENV_INSTANCE = "TABLESTORE_INSTANCE"

# The Go SDK and the Elixir SDK send 2018-04-01 on tunnel paths; the Java SDK
# sends 2015-12-31 and the service accepts both.
DEFAULT_API_VERSION = "2018-04-01"

# (connect, read) in seconds. 60 s read matches the Go SDK's request timeout:
# the service answers well within it, so hitting it means the connection is
# dead. 10 s to connect is ample for a regional endpoint and keeps a dead
# host from eating the retry deadline.
DEFAULT_TIMEOUT = (10.0, 60.0)

# Connections kept per client. A worker reads its channels from a few
# threads; 16 covers that with room, and extra requests beyond it open a
# throwaway connection instead of blocking.
DEFAULT_POOL_SIZE = 16

_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")

Timeout = Union[float, Tuple[float, float]]


def _positive_number(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"{name} must be a number > 0 (seconds), got {value!r}")
    return float(value)


def _normalise_endpoint(endpoint) -> str:
    if not isinstance(endpoint, str) or not endpoint.strip():
        raise ConfigError(
            f"endpoint must be a URL like 'https://<instance>.<region>.ots.aliyuncs.com', got {endpoint!r}"
        )
    text = endpoint.strip()
    try:
        parts = urlsplit(text)
        parts.port  # raises ValueError on a malformed port
    except ValueError as err:
        raise ConfigError(f"endpoint {endpoint!r} is not a valid URL: {err}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"endpoint must start with http:// or https:// and name a host, got {endpoint!r}"
        )
    if parts.username is not None or parts.password is not None:
        # Never echo the value: it holds a password.
        raise ConfigError("endpoint must not contain user:password@; pass the AccessKey separately")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        # The signature covers the request path, which must be /tunnel/...
        raise ConfigError(f"endpoint must have no path, query or fragment, got {endpoint!r}")
    return f"{parts.scheme}://{parts.netloc}"


@dataclasses.dataclass(frozen=True)
class TunnelConfig:
    """Settings of a :class:`TunnelClient`; frozen, validated, picklable.

    Build it with :meth:`resolve` (which reads the environment for what is
    not given) or directly. ``repr`` shows no secret; the pickle bytes do
    contain the credentials.

    Attributes:
      endpoint: ``http(s)://host[:port]`` of the instance, without a path.
      instance_name: the instance name sent in ``x-ots-instancename``.
      credentials: the AccessKey to sign with.
      connect_timeout_s: seconds to wait for a TCP/TLS connection.
      read_timeout_s: seconds to wait for the answer once connected.
      read_retry: retry policy of ReadRecords.
      meta_retry: retry policy of every other call.
      api_version: the ``x-ots-apiversion`` header value.
      pool_size: connections kept open to the endpoint.
    """

    endpoint: str
    instance_name: str
    credentials: Credentials
    connect_timeout_s: float = DEFAULT_TIMEOUT[0]
    read_timeout_s: float = DEFAULT_TIMEOUT[1]
    read_retry: RetryPolicy = READ_RECORDS_RETRY
    meta_retry: RetryPolicy = META_RETRY
    api_version: str = DEFAULT_API_VERSION
    pool_size: int = DEFAULT_POOL_SIZE

    def __post_init__(self) -> None:
        object.__setattr__(self, "endpoint", _normalise_endpoint(self.endpoint))
        name = self.instance_name
        if not isinstance(name, str) or not name or not _is_header_safe(name):
            raise ConfigError(
                f"instance_name must be a non-empty string of printable ASCII without spaces, got {name!r}"
            )
        if not isinstance(self.credentials, Credentials):
            raise ConfigError(
                f"credentials must be a Credentials, got {type(self.credentials).__name__}"
            )
        _positive_number("connect_timeout_s", self.connect_timeout_s)
        _positive_number("read_timeout_s", self.read_timeout_s)
        for field in ("read_retry", "meta_retry"):
            if not isinstance(getattr(self, field), RetryPolicy):
                raise ConfigError(f"{field} must be a RetryPolicy, got {getattr(self, field)!r}")
        if not isinstance(self.api_version, str) or not _API_VERSION.match(self.api_version):
            raise ConfigError(f"api_version must look like '2018-04-01', got {self.api_version!r}")
        size = self.pool_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError(f"pool_size must be an int >= 1, got {size!r}")

    @classmethod
    def resolve(
        cls,
        endpoint: Optional[str] = None,
        instance_name: Optional[str] = None,
        access_key_id: Optional[str] = None,
        access_key_secret: Optional[str] = None,
        sts_token: Optional[str] = None,
        *,
        timeout: Timeout = DEFAULT_TIMEOUT,
        retry_deadline: Optional[float] = None,
        read_retry: Optional[RetryPolicy] = None,
        meta_retry: Optional[RetryPolicy] = None,
        api_version: str = DEFAULT_API_VERSION,
        pool_size: int = DEFAULT_POOL_SIZE,
        environ: Optional[Mapping[str, str]] = None,
    ) -> "TunnelConfig":
        """A config from arguments, falling back to environment variables.

        Args: as :class:`TunnelClient`, plus ``environ`` (default
        ``os.environ``) for tests.

        Raises:
          ConfigError: naming the bad value (never a secret).
        """
        env = os.environ if environ is None else environ
        if endpoint is None:
            endpoint = env.get(ENV_ENDPOINT) or None
            if endpoint is None:
                raise ConfigError(f"endpoint is required: pass endpoint= or set {ENV_ENDPOINT}")
        if instance_name is None:
            instance_name = env.get(ENV_INSTANCE) or None
            if instance_name is None:
                raise ConfigError(f"instance_name is required: pass instance_name= or set {ENV_INSTANCE}")
        credentials = Credentials.resolve(access_key_id, access_key_secret, sts_token, environ=env)
        connect_s, read_s = _split_timeout(timeout)
        if retry_deadline is not None and (
            isinstance(retry_deadline, bool) or not isinstance(retry_deadline, (int, float)) or retry_deadline < 0
        ):
            raise ConfigError(f"retry_deadline must be a number >= 0 (seconds), got {retry_deadline!r}")
        config = cls(
            endpoint=endpoint,
            instance_name=instance_name,
            credentials=credentials,
            connect_timeout_s=connect_s,
            read_timeout_s=read_s,
            read_retry=read_retry if read_retry is not None else READ_RECORDS_RETRY,
            meta_retry=meta_retry if meta_retry is not None else META_RETRY,
            api_version=api_version,
            pool_size=pool_size,
        )
        if retry_deadline is None:
            return config
        # Applied to the validated policies, so a non-RetryPolicy has already
        # been refused with its own message.
        return dataclasses.replace(
            config,
            read_retry=config.read_retry.with_deadline(float(retry_deadline)),
            meta_retry=config.meta_retry.with_deadline(float(retry_deadline)),
        )


def _split_timeout(timeout) -> Tuple[float, float]:
    if isinstance(timeout, tuple):
        if len(timeout) != 2:
            raise ConfigError(f"timeout must be seconds or a (connect, read) pair, got {timeout!r}")
        return (
            _positive_number("timeout[0] (connect)", timeout[0]),
            _positive_number("timeout[1] (read)", timeout[1]),
        )
    seconds = _positive_number("timeout", timeout)
    return seconds, seconds
