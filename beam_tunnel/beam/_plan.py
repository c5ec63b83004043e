"""The first stage of ReadFromTunnel: find (or create) the tunnel, plan the slots.

Runs once, on a worker, from an Impulse: it resolves the tunnel by name,
creates it with the requested type when it does not exist, and emits one
:class:`SlotSpec` per reader slot. It runs on the worker rather than at
pipeline construction so that credentials are only ever resolved where the
pipeline runs.
"""

from __future__ import annotations

import logging
import time
from typing import NamedTuple, Optional, Tuple

import apache_beam as beam

from beam_tunnel.beam._settings import ReadSettings
from beam_tunnel.beam._tunnel_view import snapshot_us, watermark_bound_us
from beam_tunnel.client.models import TunnelDescription, TunnelType
from beam_tunnel.client.tunnel_client import TunnelClient
from beam_tunnel.errors import ConfigError, TunnelExistError

_LOGGER = logging.getLogger(__name__)


class SlotSpec(NamedTuple):
    """One reader slot to run: the SDF's element.

    Attributes:
      tunnel_id: the tunnel.
      slot: the slot's index.
      snapshot_us: event time of full-data records (the tunnel's creation).
      stop_us: for bounded reads, the time each channel is read up to.
      seed_us: the watermark the slot starts from.
      client_id: the tunnel client connected for the slot by the plan ("" to
        connect on first use), and ``connected_at`` when (wall seconds).
      peers: the client ids the plan connected for all slots of this read.
    """

    tunnel_id: str
    slot: int
    snapshot_us: int
    stop_us: Optional[int]
    seed_us: int
    client_id: str = ""
    connected_at: float = 0.0
    peers: Tuple[str, ...] = ()


def ensure_tunnel(client: TunnelClient, settings: ReadSettings) -> TunnelDescription:
    """The tunnel's description, creating the tunnel when it does not exist.

    Raises:
      ConfigError: the tunnel exists with another type (naming both).
    """
    existing = [t for t in client.list_tunnels(settings.table) if t.tunnel_name == settings.tunnel]
    if not existing:
        try:
            client.create_tunnel(
                settings.table,
                settings.tunnel,
                settings.tunnel_type,
                start_offset=settings.start_offset,
                end_offset=settings.end_offset_ns,
            )
            _LOGGER.info("[plan] created %s tunnel %r on table %r", settings.tunnel_type.value, settings.tunnel,
                         settings.table)
        except TunnelExistError:
            pass  # another pipeline created it meanwhile
    description = client.describe_tunnel(settings.table, settings.tunnel)
    actual = description.tunnel.tunnel_type
    if actual != settings.tunnel_type:
        shown = actual.value if isinstance(actual, TunnelType) else actual
        raise ConfigError(
            f"tunnel {settings.tunnel!r} on table {settings.table!r} exists with tunnel_type {shown!r}, "
            f"but ReadFromTunnel was given tunnel_type {settings.tunnel_type.value!r}; use another tunnel "
            "name or the existing type"
        )
    return description


def plan_slots(settings: ReadSettings, description: TunnelDescription, now_us: int):
    """The slot specs for a tunnel as it is now."""
    count = settings.num_slots
    if count is None:
        count = max(1, min(len(description.channels), settings.max_slots))
    snapshot = snapshot_us(description)
    if settings.stop_at_us is not None:
        stop = settings.stop_at_us
    elif settings.stop_when_caught_up:
        stop = now_us
    else:
        stop = None
    bound = watermark_bound_us(description)
    seed = snapshot if bound is None else bound
    if settings.tunnel_type is not TunnelType.STREAM:
        # Full-data records carry the snapshot time: start no later than it.
        seed = min(seed, snapshot)
    tunnel_id = description.tunnel.tunnel_id
    return [SlotSpec(tunnel_id, index, snapshot, stop, seed) for index in range(count)]


class PlanSlotsFn(beam.DoFn):
    """Impulse -> one SlotSpec per reader slot."""

    def __init__(self, settings: ReadSettings) -> None:
        self._settings = settings

    def process(self, unused_impulse):
        settings = self._settings
        with settings.new_client() as client:
            description = ensure_tunnel(client, settings)
            specs = plan_slots(settings, description, int(time.time() * 1e6))
            # Every slot's client joins before any of them heartbeats, so the
            # service spreads the channels evenly from the first assignment
            # instead of giving all to the first slot and moving them after.
            specs = [
                spec._replace(
                    client_id=client.connect(spec.tunnel_id, timeout_s=int(settings.heartbeat_timeout_s + 0.999),
                                             client_tag=f"{settings.client_tag}-slot{spec.slot}"),
                    connected_at=time.time(),
                )
                for spec in specs
            ]
            peers = tuple(spec.client_id for spec in specs)
            specs = [spec._replace(peers=peers) for spec in specs]
        _LOGGER.info("[plan] tunnel %s (%s): %d channels, %d reader slots", description.tunnel.tunnel_id,
                     self._settings.tunnel, len(description.channels), len(specs))
        yield from specs
