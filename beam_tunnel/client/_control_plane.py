"""TunnelClient's control-plane calls: create, delete, list and describe
tunnels, read their consume points (RPO), schedule channels by hand.

A mixin, so that :class:`~beam_tunnel.client.TunnelClient` stays one class
with one method per call while its own module holds construction and the
data plane (connect, heartbeat, checkpoints, reads). Every call goes
through ``self._call``, which TunnelClient provides.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any, Iterable, List, Mapping, Optional, Union

from beam_tunnel.client import _calls, _convert
from beam_tunnel.client.models import Channel, RpoInfo, StartOffset, TunnelDescription, TunnelInfo, TunnelType
from beam_tunnel.client.retry import RetryPolicy
from beam_tunnel.errors import ConfigError
from beam_tunnel.protocol import tunnel_pb2 as pb

_LOGGER = logging.getLogger(__name__)


class _ControlPlaneCalls:
    """Tunnel management and RPO; all idempotent except create and delete."""

    def _call(self, op: _calls.Op, request, policy: Optional[RetryPolicy] = None):
        """Send ``request`` with retries; ``(response, CallInfo)``. Provided
        by TunnelClient."""
        raise NotImplementedError

    def create_tunnel(
        self,
        table_name: str,
        tunnel_name: str,
        tunnel_type: Union[TunnelType, str],
        *,
        start_offset: Union[StartOffset, str, int, datetime.datetime, None] = None,
        end_offset: Union[int, datetime.datetime, None] = None,
    ) -> str:
        """Create a tunnel on a table. Not idempotent (a replay: OTSTunnelExist).

        Args:
          table_name: the table to read.
          tunnel_name: a name unique among the table's tunnels.
          tunnel_type: BASE_DATA, STREAM or BASE_AND_STREAM (or "BaseData",
            "Stream", "BaseAndStream").
          start_offset: where the stream part starts: ``StartOffset.LATEST``,
            ``StartOffset.EARLIEST``, ns since the epoch, or an aware
            datetime. None leaves it to the service (which starts at the
            latest change).
          end_offset: ns since the epoch or an aware datetime at which the
            stream part ends; None for no end.

        Returns:
          The new tunnel's id.

        Raises:
          TunnelExistError: a tunnel with this name exists on the table.
          ConfigError: a bad argument, before anything is sent.
        """
        tunnel = pb.Tunnel(
            table_name=_convert.require_text("table_name", table_name),
            tunnel_name=_convert.require_text("tunnel_name", tunnel_name),
            tunnel_type=pb.TunnelType.Value(TunnelType.parse(tunnel_type, "tunnel_type").value),
        )
        config = _convert.stream_config(start_offset, end_offset)
        if config is not None:
            tunnel.stream_tunnel_config.CopyFrom(config)
        response, _ = self._call(_calls.CREATE, pb.CreateTunnelRequest(tunnel=tunnel))
        _LOGGER.info("[client] created tunnel %s (%s on table %s)", response.tunnel_id, tunnel_name, table_name)
        return response.tunnel_id

    def delete_tunnel(self, table_name: str, tunnel_name: str) -> None:
        """Delete a tunnel and its checkpoints. Not idempotent: a replay finds
        no tunnel (the emulator answers OTSParameterInvalid, the code the
        service uses for an invalid tunnel).

        Args:
          table_name: the tunnel's table.
          tunnel_name: the tunnel's name.
        """
        request = pb.DeleteTunnelRequest(
            table_name=_convert.require_text("table_name", table_name),
            tunnel_name=_convert.require_text("tunnel_name", tunnel_name),
        )
        self._call(_calls.DELETE, request)
        _LOGGER.info("[client] deleted tunnel %s on table %s", tunnel_name, table_name)

    def list_tunnels(self, table_name: Optional[str] = None) -> List[TunnelInfo]:
        """The tunnels of one table, or of every table when None. Idempotent."""
        request = pb.ListTunnelRequest()
        if table_name is not None:
            request.table_name = _convert.require_text("table_name", table_name)
        response, _ = self._call(_calls.LIST, request)
        return [_convert.tunnel_info_from_pb(info) for info in response.tunnels]

    def describe_tunnel(self, table_name: str, tunnel_name: str) -> TunnelDescription:
        """A tunnel with its channels and consume points. Idempotent."""
        request = pb.DescribeTunnelRequest(
            table_name=_convert.require_text("table_name", table_name),
            tunnel_name=_convert.require_text("tunnel_name", tunnel_name),
        )
        response, _ = self._call(_calls.DESCRIBE, request)
        return TunnelDescription(
            tunnel=_convert.tunnel_info_from_pb(response.tunnel),
            channels=tuple(_convert.channel_info_from_pb(c) for c in response.channels),
            tunnel_rpo_ns=response.tunnel_rpo if response.HasField("tunnel_rpo") else None,
        )

    def get_rpo(self, tunnel_id: str, *, limit: Optional[int] = None) -> RpoInfo:
        """Consumption latency of a tunnel's channels (JSON decoded). Idempotent.

        Args:
          tunnel_id: the tunnel.
          limit: the optional ``limit`` request field (int32), or None.
        """
        return self._rpo(_calls.GET_RPO, tunnel_id, limit)

    def get_rpo_by_offset(self, tunnel_id: str, *, limit: Optional[int] = None) -> RpoInfo:
        """Like :meth:`get_rpo`, on the service's by-offset path. Idempotent."""
        return self._rpo(_calls.GET_RPO_BY_OFFSET, tunnel_id, limit)

    def _rpo(self, op: _calls.Op, tunnel_id: str, limit: Optional[int]) -> RpoInfo:
        request = pb.GetRpoRequest(tunnel_id=_convert.require_text("tunnel_id", tunnel_id))
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit < 2**31:
                raise ConfigError(f"limit must be None or an int in [1, 2**31), got {limit!r}")
            request.limit = limit
        response, info = self._call(op, request)
        return RpoInfo(
            rpo_infos=_convert.decode_json_blob(op.name, "rpo_infos", response.rpo_infos, info.request_id),
            tunnel_rpo_infos=_convert.decode_json_blob(
                op.name, "tunnel_rpo_infos", response.tunnel_rpo_infos, info.request_id
            ),
            tunnel_id=response.tunnel_id if response.HasField("tunnel_id") else None,
        )

    def schedule(self, tunnel_id: str, channels: Union[Mapping[str, Any], Iterable[Channel]]) -> None:
        """Set channel statuses by hand: OPEN resumes, CLOSING suspends,
        TERMINATED ends a channel. Idempotent (setting a status twice is a no-op).

        Args:
          tunnel_id: the tunnel.
          channels: a mapping of channel id to status, or Channels (their
            versions are not used by the service; 0 is sent for a mapping).
        """
        request = pb.ScheduleRequest(tunnel_id=_convert.require_text("tunnel_id", tunnel_id))
        for channel in _convert.schedule_channels(channels):
            _convert.channel_to_pb(channel, request.channels.add())
        self._call(_calls.SCHEDULE, request)
