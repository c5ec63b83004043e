"""Value types of the Tunnel API, shared by the client and the worker code.

Everything here is immutable, picklable and free of HTTP and protobuf, so the
pure worker state machine can import it without pulling in ``requests``.

Enums are ``str`` enums: ``ChannelStatus.OPEN == "OPEN"`` is true, so values
read from logs or configuration compare naturally. Fields the service sends as
free-form strings (``TunnelInfo.stage``, ``ChannelInfo.status`` ...) hold the
enum member when the value is known and the raw string otherwise, so a value
added to the service later does not break :meth:`TunnelClient.list_tunnels`.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import TYPE_CHECKING, Any, Mapping, NamedTuple, Optional, Tuple, Type, TypeVar, Union

from beam_tunnel.errors import ConfigError

if TYPE_CHECKING:  # records.py pulls in the PlainBuffer decoder; types only here
    from beam_tunnel.records import ChangeRecord

__all__ = [
    "FINISHED_TOKEN",
    "TunnelType",
    "TunnelStage",
    "ChannelType",
    "ChannelStatus",
    "StartOffset",
    "Channel",
    "ChannelInfo",
    "TunnelInfo",
    "TunnelDescription",
    "CheckpointInfo",
    "ReadResult",
    "RpoInfo",
]

FINISHED_TOKEN = "finished"
"""The ``next_token`` (and checkpoint) that marks a channel with no more data."""

_E = TypeVar("_E", bound="_StrEnum")


class _StrEnum(str, enum.Enum):
    """A str enum that parses its values and names, case-insensitively."""

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls: Type[_E], value: Any, what: Optional[str] = None) -> _E:
        """The member for ``value``: a member, its value or its name.

        Raises:
          ConfigError: naming ``value`` and the accepted values.
        """
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            wanted = value.strip().lower()
            for member in cls:
                if wanted in (member.value.lower(), member.name.lower()):
                    return member
        accepted = ", ".join(repr(m.value) for m in cls)
        raise ConfigError(f"{what or cls.__name__} must be one of {accepted}, got {value!r}")

    @classmethod
    def _lenient(cls, value: Optional[str]):
        """The member for a value read off the wire, or the raw string."""
        if value is None:
            return None
        for member in cls:
            if member.value == value:
                return member
        return value


class TunnelType(_StrEnum):
    """What a tunnel delivers: full data, incremental changes, or both in turn."""

    BASE_DATA = "BaseData"
    STREAM = "Stream"
    BASE_AND_STREAM = "BaseAndStream"


class TunnelStage(_StrEnum):
    """Where a tunnel is in its life (``TunnelInfo.stage``)."""

    INIT_BASE_DATA_AND_STREAM_SHARD = "InitBaseDataAndStreamShard"
    PROCESS_BASE_DATA = "ProcessBaseData"
    PROCESS_STREAM = "ProcessStream"


class ChannelType(_StrEnum):
    """Whether a channel carries full data or incremental changes."""

    BASE_DATA = "BaseData"
    STREAM = "Stream"


class ChannelStatus(_StrEnum):
    """A channel's status.

    ``WAIT`` appears only in :meth:`TunnelClient.describe_tunnel` (a channel
    whose predecessors are unfinished); heartbeats carry the other four.
    """

    WAIT = "WAIT"
    OPEN = "OPEN"
    CLOSING = "CLOSING"
    CLOSE = "CLOSE"
    TERMINATED = "TERMINATED"


class StartOffset(_StrEnum):
    """Where a new stream tunnel starts reading, when not at a point in time."""

    LATEST = "LATEST"
    EARLIEST = "EARLIEST"


@dataclasses.dataclass(frozen=True)
class Channel:
    """A channel as a heartbeat (or schedule) carries it.

    Attributes:
      channel_id: the channel's id.
      version: the channel's version; the higher version wins when the client
        and the service disagree.
      status: OPEN, CLOSING, CLOSE or TERMINATED (a string is parsed).
      detail: opaque bytes the protocol allows; neither official SDK uses them.
    """

    channel_id: str
    version: int
    status: ChannelStatus
    detail: Optional[bytes] = None

    def __post_init__(self) -> None:
        if not isinstance(self.channel_id, str) or not self.channel_id:
            raise ConfigError(f"Channel.channel_id must be a non-empty string, got {self.channel_id!r}")
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 0:
            raise ConfigError(f"Channel.version must be an int >= 0, got {self.version!r}")
        status = ChannelStatus.parse(self.status, "Channel.status")
        if status is ChannelStatus.WAIT:
            raise ConfigError(
                f"Channel.status WAIT only appears in DescribeTunnel; channel {self.channel_id!r} "
                "must be OPEN, CLOSING, CLOSE or TERMINATED"
            )
        object.__setattr__(self, "status", status)
        if self.detail is not None and not isinstance(self.detail, bytes):
            raise ConfigError(f"Channel.detail must be bytes or None, got {type(self.detail).__name__}")


@dataclasses.dataclass(frozen=True)
class ChannelInfo:
    """One channel as :meth:`TunnelClient.describe_tunnel` reports it.

    Attributes:
      channel_id: the channel's id.
      channel_type: BASE_DATA or STREAM (raw string if unknown; None if absent).
      status: a :class:`ChannelStatus` (raw string if unknown; None if absent).
      client_id: the client that holds the channel, or None.
      rpo_ns: the channel's consume point in ns since the epoch (a point in
        time, not a duration: lag = now - rpo_ns). The service reports 0 for
        full-data channels. The emulator reports "complete through T": every
        record the channel will still deliver from its checkpoint was
        written at or after T (stream: the next record's write time, or now
        when caught up; full data: the tunnel's creation time; finished:
        now), never going back.
      count: ``channel_count`` as the service sends it (its meaning is not
        documented consistently), or None.
    """

    channel_id: str
    channel_type: Union[ChannelType, str, None] = None
    status: Union[ChannelStatus, str, None] = None
    client_id: Optional[str] = None
    rpo_ns: Optional[int] = None
    count: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class TunnelInfo:
    """A tunnel as :meth:`TunnelClient.list_tunnels` and ``describe_tunnel`` report it.

    Attributes:
      tunnel_id: the service-assigned id that the data-plane calls take.
      tunnel_name: the name given at creation ("" if the service sent none).
      table_name: the table the tunnel reads.
      instance_name: the instance holding the table.
      tunnel_type: a :class:`TunnelType` (raw string if unknown).
      stage: a :class:`TunnelStage` (raw string if unknown).
      stream_id: the table's stream id ("" for full-data tunnels).
      expired: True when the service marked the tunnel expired.
      public: the service's ``public`` flag.
      create_time_ns: creation time in ns since the epoch, or None.
      start_offset: where the stream part starts: a :class:`StartOffset`, a
        time in ns since the epoch, or None when the service sent nothing.
      end_offset_ns: where the stream part ends, in ns since the epoch, or None.
    """

    tunnel_id: str
    tunnel_name: str
    table_name: str
    instance_name: str
    tunnel_type: Union[TunnelType, str]
    stage: Union[TunnelStage, str]
    stream_id: str = ""
    expired: bool = False
    public: bool = False
    create_time_ns: Optional[int] = None
    start_offset: Union[StartOffset, int, None] = None
    end_offset_ns: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class TunnelDescription:
    """The answer of :meth:`TunnelClient.describe_tunnel`.

    Attributes:
      tunnel: the tunnel itself.
      channels: its channels, in the service's order.
      tunnel_rpo_ns: the slowest stream channel's consume point in ns since
        the epoch (0 when not applicable), or None when absent. The emulator
        reports the smallest point of the unfinished channels, full-data
        ones included (now when every channel is finished).
    """

    tunnel: TunnelInfo
    channels: Tuple[ChannelInfo, ...] = ()
    tunnel_rpo_ns: Optional[int] = None


class CheckpointInfo(NamedTuple):
    """A channel's stored checkpoint; unpacks as ``(checkpoint, sequence_number)``.

    Attributes:
      checkpoint: the token to resume reading from (``"finished"`` for a
        completed channel).
      sequence_number: the stored sequence number; the next
        :meth:`TunnelClient.checkpoint` must send this plus one.
    """

    checkpoint: str
    sequence_number: int


@dataclasses.dataclass(frozen=True)
class ReadResult:
    """The answer of :meth:`TunnelClient.read_records`.

    Attributes:
      records: the decoded change records (``beam_tunnel.records.ChangeRecord``).
      next_token: the token for the next read; ``"finished"`` when the
        channel has no more data.
      may_more_record: the service's hint that more records are ready now,
        or None when the service did not say.
      size_bytes: size of the response body in bytes.
      corrupt: undecodable records (``beam_tunnel.records.CorruptRecord``),
        only when read with ``keep_corrupt=True``.
    """

    records: Tuple["ChangeRecord", ...]
    next_token: str
    may_more_record: Optional[bool] = None
    size_bytes: int = 0
    corrupt: Tuple[Any, ...] = ()

    @property
    def finished(self) -> bool:
        """True when the channel is exhausted (checkpoint ``"finished"`` next)."""
        return self.next_token == FINISHED_TOKEN


@dataclasses.dataclass(frozen=True)
class RpoInfo:
    """The answer of :meth:`TunnelClient.get_rpo` and ``get_rpo_by_offset``.

    The service sends two JSON documents whose schema is not published; they
    are decoded as they come (the Go SDK reads ``ChannelTyp``, ``Status``,
    ``TotalCount``, ``AccessTime`` and ``RpoTime`` keys from them).

    Attributes:
      rpo_infos: per-channel latency, decoded from JSON ({} when absent).
      tunnel_rpo_infos: per-tunnel latency, decoded from JSON ({} when absent).
      tunnel_id: the tunnel id the service echoed, or None.
    """

    rpo_infos: Mapping[str, Any]
    tunnel_rpo_infos: Mapping[str, Any]
    tunnel_id: Optional[str] = None
