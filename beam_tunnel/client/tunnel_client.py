"""TunnelClient: one method per Tunnel Service call, plain Python in and out.

Usage::

    from beam_tunnel.client import TunnelClient, TunnelType

    with TunnelClient("https://inst.cn-hangzhou.ots.aliyuncs.com", "inst") as client:
        tunnel_id = client.create_tunnel("orders", "orders-sync", TunnelType.BASE_AND_STREAM)
        client_id = client.connect(tunnel_id)
        for channel in client.heartbeat(tunnel_id, client_id, []):
            token, seq = client.get_checkpoint(tunnel_id, client_id, channel.channel_id)
            result = client.read_records(tunnel_id, client_id, channel.channel_id, token)

Idempotency, which decides what is retried after an ambiguous failure (see
:mod:`beam_tunnel.client.retry`):

==================  ==========  =============================================
Call                Idempotent  Why
==================  ==========  =============================================
list/describe,      yes         read-only
get_rpo*,
get_checkpoint,
read_records
heartbeat           yes         re-reporting the same versions changes nothing;
                                the answer is the current assignment
shutdown            yes         releasing released channels changes nothing
schedule            yes         sets statuses; setting them again is a no-op
create_tunnel       no          a replay fails with OTSTunnelExist
delete_tunnel       no          a replay finds no tunnel to delete
connect             no          every call makes a new client id (a lease)
checkpoint          no          a replay fails with OTSSequenceNumberNotMatch
==================  ==========  =============================================
"""

from __future__ import annotations

import logging
import socket
from typing import Iterable, List, Mapping, Optional

import requests

from beam_tunnel.client import _calls, _convert
from beam_tunnel.client._control_plane import _ControlPlaneCalls
from beam_tunnel.client.auth import OtsV2Auth
from beam_tunnel.client.config import DEFAULT_API_VERSION, DEFAULT_POOL_SIZE, DEFAULT_TIMEOUT, Timeout, TunnelConfig
from beam_tunnel.client.models import Channel, CheckpointInfo, ReadResult
from beam_tunnel.client.retry import RetryPolicy
from beam_tunnel.client.transport import HttpTransport
from beam_tunnel.errors import ConfigError, TunnelError
from beam_tunnel.protocol import tunnel_pb2 as pb
from beam_tunnel.records import decode_records, decode_records_keeping_corrupt

__all__ = ["TunnelClient"]

_LOGGER = logging.getLogger(__name__)

# Seconds the service waits for a heartbeat before it takes a client's
# channels back; 300 is the default of the Go and Java SDKs.
_DEFAULT_CLIENT_TIMEOUT_S = 300


class TunnelClient(_ControlPlaneCalls):
    """A client of the Tablestore Tunnel Service (all 13 calls).

    Arguments not given are read from the environment: ``TABLESTORE_ENDPOINT``,
    ``TABLESTORE_INSTANCE``, and, when ``access_key_id`` is None,
    ``ALIBABA_CLOUD_ACCESS_KEY_ID``, ``ALIBABA_CLOUD_ACCESS_KEY_SECRET`` and
    ``ALIBABA_CLOUD_SECURITY_TOKEN``. Everything is validated here, before
    any request.

    Answers are checked before they are believed: one cut short (headers,
    body against its Content-Length or chunks) raises
    TruncatedResponseError, never an empty success; one over 64 MiB or
    1,000,000 entries raises ResponseTooLargeError without being held (see
    :mod:`beam_tunnel.client.transport`).

    The client may be shared between threads. It pickles as its
    :attr:`config` (credentials included) and is rebuilt with a fresh
    connection pool; a client built with ``session=`` refuses to pickle, as
    its session cannot travel. Use it as a context manager or call
    :meth:`close` to release its connections.

    Args:
      endpoint: ``http(s)://host[:port]`` of the instance, no path.
      instance_name: the instance name.
      access_key_id: AccessKey id; None to use the environment.
      access_key_secret: AccessKey secret (required with ``access_key_id``).
      sts_token: STS security token for temporary credentials, or None.
      timeout: seconds, or a ``(connect, read)`` pair; default (10, 60).
        Each attempt connects and sends its request within the connect
        timeout, and receives the whole answer within the read timeout
        (wall clock: a server sending slowly is cut off, not just a silent
        one).
      retry_deadline: seconds after the first attempt of a call past which no
        retry starts; None keeps the policies' deadlines (75 s for
        ReadRecords, 35 s otherwise, as the Go SDK). 0 means no retry. A call
        returns or raises within ``retry_deadline + connect + read`` seconds.
      read_retry: RetryPolicy of ReadRecords (default: 16 ms to 3 s backoff).
      meta_retry: RetryPolicy of the other calls (default: 100 ms to 2 s).
      api_version: ``x-ots-apiversion``; default "2018-04-01".
      pool_size: connections kept open to the endpoint; default 16.
      session: a ``requests.Session`` to send with (proxies, certificates);
        it is not closed by :meth:`close`. Default: a new pooled session.

    Raises:
      ConfigError: naming the bad argument (never a secret).
    """

    def __init__(
        self,
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
        session: Optional[requests.Session] = None,
    ) -> None:
        config = TunnelConfig.resolve(
            endpoint,
            instance_name,
            access_key_id,
            access_key_secret,
            sts_token,
            timeout=timeout,
            retry_deadline=retry_deadline,
            read_retry=read_retry,
            meta_retry=meta_retry,
            api_version=api_version,
            pool_size=pool_size,
        )
        self._setup(config, session)

    @classmethod
    def from_config(cls, config: TunnelConfig, session: Optional[requests.Session] = None) -> "TunnelClient":
        """A client for an existing :class:`TunnelConfig` (no environment lookup)."""
        if not isinstance(config, TunnelConfig):
            raise ConfigError(f"config must be a TunnelConfig, got {type(config).__name__}")
        client = cls.__new__(cls)
        client._setup(config, session)
        return client

    def _setup(self, config: TunnelConfig, session: Optional[requests.Session]) -> None:
        if session is not None and not isinstance(session, requests.Session):
            raise ConfigError(f"session must be a requests.Session, got {type(session).__name__}")
        self._config = config
        auth = OtsV2Auth(config.credentials, config.instance_name, config.api_version)
        self._transport = HttpTransport(
            config.endpoint,
            auth,
            connect_timeout_s=config.connect_timeout_s,
            read_timeout_s=config.read_timeout_s,
            pool_size=config.pool_size,
            session=session,
        )
        self._closed = False

    @property
    def config(self) -> TunnelConfig:
        """The client's settings (picklable; build a twin with :meth:`from_config`)."""
        return self._config

    def __repr__(self) -> str:
        return (
            f"TunnelClient(endpoint={self._config.endpoint!r}, instance_name={self._config.instance_name!r}, "
            f"access_key_id={self._config.credentials.access_key_id!r})"
        )

    def __reduce__(self):
        if not self._transport.owns_session:
            raise TypeError(
                "a TunnelClient built with session= cannot be pickled; pickle client.config and "
                "rebuild with TunnelClient.from_config(config, session=...)"
            )
        return (TunnelClient.from_config, (self._config,))

    def close(self) -> None:
        """Release pooled connections; later calls raise TunnelError. Idempotent."""
        if not self._closed:
            self._closed = True
            self._transport.close()

    def __enter__(self) -> "TunnelClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ---- plumbing -----------------------------------------------------------

    def _call(self, op: _calls.Op, request, policy: Optional[RetryPolicy] = None):
        if self._closed:
            raise TunnelError(f"{op.name}: this TunnelClient is closed; create a new one")
        policy = policy or self._config.meta_retry
        return policy.run(
            lambda: self._transport.call(op.name, op.path, request, op.response),
            idempotent=op.idempotent,
            description=op.name,
        )

    # ---- data plane -----------------------------------------------------------
    # (The control-plane calls, create_tunnel to schedule, are inherited from
    # beam_tunnel.client._control_plane.)

    def connect(
        self, tunnel_id: str, timeout_s: int = _DEFAULT_CLIENT_TIMEOUT_S, client_tag: Optional[str] = None
    ) -> str:
        """Join a tunnel as a new client. Not idempotent: each call is a new lease.

        Args:
          tunnel_id: the tunnel.
          timeout_s: seconds without a heartbeat after which the service takes
            this client's channels back; default 300 (as the Go/Java SDKs).
          client_tag: a label the service folds into the client id; default
            this machine's host name (as the Go SDK).

        Returns:
          The client id the data-plane calls take.
        """
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, int) or timeout_s <= 0:
            raise ConfigError(f"timeout_s must be an int > 0 (seconds), got {timeout_s!r}")
        tag = socket.gethostname() if client_tag is None else client_tag
        if not isinstance(tag, str):
            raise ConfigError(f"client_tag must be a string or None, got {client_tag!r}")
        request = pb.ConnectRequest(
            tunnel_id=_convert.require_text("tunnel_id", tunnel_id),
            client_config=pb.ClientConfig(timeout=timeout_s, client_tag=tag),
        )
        response, _ = self._call(_calls.CONNECT, request)
        _LOGGER.info("[client] connected to tunnel %s as client %s", tunnel_id, response.client_id)
        return response.client_id

    def heartbeat(self, tunnel_id: str, client_id: str, channels: Iterable[Channel]) -> List[Channel]:
        """Report the channels this client knows; get the ones it should hold.

        Idempotent. Every channel the client knows goes in ``channels`` (none
        on the first heartbeat); a channel left out of the answer is revoked.

        Returns:
          The channels the service assigns to this client, with its versions
          and statuses.

        Raises:
          ResourceGoneError: the lease is gone; connect again.
        """
        request = pb.HeartbeatRequest(
            tunnel_id=_convert.require_text("tunnel_id", tunnel_id),
            client_id=_convert.require_text("client_id", client_id),
        )
        if isinstance(channels, (str, bytes, Mapping)):
            raise ConfigError(f"channels must be an iterable of Channel, got {channels!r}")
        for channel in channels:
            _convert.channel_to_pb(channel, request.channels.add())
        response, _ = self._call(_calls.HEARTBEAT, request)
        return [_convert.channel_from_pb(c) for c in response.channels]

    def shutdown(self, tunnel_id: str, client_id: str) -> None:
        """Leave the tunnel, releasing this client's channels now rather than
        after the heartbeat timeout. Idempotent."""
        request = pb.ShutdownRequest(
            tunnel_id=_convert.require_text("tunnel_id", tunnel_id),
            client_id=_convert.require_text("client_id", client_id),
        )
        self._call(_calls.SHUTDOWN, request)
        _LOGGER.info("[client] shut down client %s of tunnel %s", client_id, tunnel_id)

    def get_checkpoint(self, tunnel_id: str, client_id: str, channel_id: str) -> CheckpointInfo:
        """A channel's stored checkpoint. Idempotent.

        Returns:
          ``(checkpoint, sequence_number)``: the token to read from and the
          stored sequence number (the next checkpoint sends it plus one).
        """
        request = pb.GetCheckpointRequest(
            tunnel_id=_convert.require_text("tunnel_id", tunnel_id),
            client_id=_convert.require_text("client_id", client_id),
            channel_id=_convert.require_text("channel_id", channel_id),
        )
        response, _ = self._call(_calls.GET_CHECKPOINT, request)
        return CheckpointInfo(response.checkpoint, response.sequence_number)

    def checkpoint(
        self, tunnel_id: str, client_id: str, channel_id: str, checkpoint: str, sequence_number: int
    ) -> None:
        """Store a channel's checkpoint. Not idempotent: a replay after a lost
        answer fails with OTSSequenceNumberNotMatch, so an ambiguous failure
        is raised rather than retried.

        Args:
          checkpoint: the token to resume from (``"finished"`` once the
            channel's reads returned it).
          sequence_number: the stored sequence number plus one.

        Raises:
          SequenceNumberMismatchError: the sequence number is not stored + 1;
            re-read it with :meth:`get_checkpoint`.
        """
        if isinstance(sequence_number, bool) or not isinstance(sequence_number, int) or sequence_number < 0:
            raise ConfigError(f"sequence_number must be an int >= 0, got {sequence_number!r}")
        request = pb.CheckpointRequest(
            tunnel_id=_convert.require_text("tunnel_id", tunnel_id),
            client_id=_convert.require_text("client_id", client_id),
            channel_id=_convert.require_text("channel_id", channel_id),
            checkpoint=_convert.require_text("checkpoint", checkpoint),
            sequence_number=sequence_number,
        )
        self._call(_calls.CHECKPOINT, request)
        _LOGGER.debug("[client] checkpoint %s/%s seq=%d", tunnel_id, channel_id, sequence_number)

    def read_records(
        self, tunnel_id: str, client_id: str, channel_id: str, token: str, *, keep_corrupt: bool = False
    ) -> ReadResult:
        """Read the records after ``token`` in a channel. Idempotent for a
        given token; retried with the ReadRecords policy.

        Args:
          keep_corrupt: return undecodable records in ``ReadResult.corrupt``
            (as ``beam_tunnel.records.CorruptRecord``) instead of raising.

        Returns:
          The decoded records, the next token (``"finished"`` at the end of
          the channel), the service's more-records hint and the body size.
          An empty batch is normal for a stream channel with no new data.

        Raises:
          PlainBufferError: a record's bytes are corrupt.
        """
        request = pb.ReadRecordsRequest(
            tunnel_id=_convert.require_text("tunnel_id", tunnel_id),
            client_id=_convert.require_text("client_id", client_id),
            channel_id=_convert.require_text("channel_id", channel_id),
            token=_convert.require_text("token", token),
        )
        response, info = self._call(_calls.READ_RECORDS, request, self._config.read_retry)
        corrupt = ()
        if not response.records:
            records = []
        elif keep_corrupt:
            records, corrupt = decode_records_keeping_corrupt(response.records, channel_id, token)
        else:
            records = decode_records(response.records, channel_id)
        return ReadResult(
            records=tuple(records),
            corrupt=tuple(corrupt),
            next_token=response.next_token,
            may_more_record=response.may_more_record if response.HasField("may_more_record") else None,
            size_bytes=info.size_bytes,
        )
