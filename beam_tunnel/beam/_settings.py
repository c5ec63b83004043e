"""The validated, picklable settings every stage of ReadFromTunnel shares.

Built once by ``ReadFromTunnel.__init__`` (which validates every value and
names it in the error) and carried by each DoFn; nothing here holds a secret
or a live object, so the DoFns stay picklable.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple, Union

from beam_tunnel.beam._credentials import CredentialSource
from beam_tunnel.client.config import TunnelConfig
from beam_tunnel.client.models import StartOffset, TunnelType
from beam_tunnel.client.tunnel_client import TunnelClient


@dataclasses.dataclass(frozen=True)
class ReadSettings:
    """Everything a slot needs besides its restriction.

    Attributes (see ``ReadFromTunnel`` for meanings and defaults):
      endpoint, instance: where the service is.
      credentials: where the AccessKey comes from (no secret inside).
      timeout: the client's (connect, read) timeouts in seconds.
      table, tunnel, tunnel_type: the tunnel to read (created when missing).
      start_offset, end_offset_ns: stream offsets for a new Stream tunnel.
      num_slots: fixed number of reader slots, or None for one per channel
        seen at start, capped by ``max_slots``.
      heartbeat_interval_s, heartbeat_timeout_s: the lease timing.
      max_bundle_records, max_bundle_bytes, max_bundle_seconds: when a
        ``process()`` call returns and checkpoints.
      idle_wait_s: how long one call polls idle channels before returning.
      closing_grace_s: how long an answer to CLOSING waits for the channel's
        last emitted batch to be committed.
      watermark_refresh_s: how often the tunnel's consume points are polled.
      stop_at_us: bounded read: end each channel at its first record written
        at or after this time (µs since the epoch), or None.
      stop_when_caught_up: bounded read: end when every channel delivered
        everything written before the read began.
      dead_letter: route undecodable records to a tagged output.
      client_tag: the label sent with ConnectTunnel.
    """

    endpoint: str
    instance: str
    credentials: CredentialSource
    timeout: Tuple[float, float]
    table: str
    tunnel: str
    tunnel_type: TunnelType
    start_offset: Union[StartOffset, int, None] = None
    end_offset_ns: Optional[int] = None
    num_slots: Optional[int] = None
    max_slots: int = 16
    heartbeat_interval_s: float = 2.0
    heartbeat_timeout_s: float = 300.0
    max_bundle_records: int = 10_000
    max_bundle_bytes: int = 64 << 20
    max_bundle_seconds: float = 2.0
    idle_wait_s: float = 1.0
    closing_grace_s: float = 10.0
    watermark_refresh_s: float = 1.0
    stop_at_us: Optional[int] = None
    stop_when_caught_up: bool = False
    dead_letter: bool = False
    client_tag: str = "beam"

    @property
    def bounded(self) -> bool:
        """True when the read ends on its own on every runner."""
        return (
            self.tunnel_type is TunnelType.BASE_DATA
            or self.stop_at_us is not None
            or self.stop_when_caught_up
        )

    def new_client(self) -> TunnelClient:
        """A client for this worker (the credentials are resolved here)."""
        credentials = self.credentials.resolve()
        config = TunnelConfig.resolve(
            self.endpoint,
            self.instance,
            credentials.access_key_id,
            credentials.access_key_secret,
            credentials.sts_token,
            timeout=self.timeout,
        )
        return TunnelClient.from_config(config)
