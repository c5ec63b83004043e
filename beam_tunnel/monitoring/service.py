"""Reading lag from a live service: DescribeTunnel, DescribeTable and the
service's clock. Works against the real service and the emulator alike.

Usage::

    from beam_tunnel.client import TunnelConfig
    from beam_tunnel.monitoring import LagReader, Thresholds, evaluate

    with LagReader(TunnelConfig.resolve(endpoint, instance)) as reader:
        snapshot = reader.snapshot("orders", "orders-sync")
        print(snapshot.lag_s, snapshot.expiry.time_left_s, evaluate(snapshot, Thresholds()).level)

*Now* is the service's clock: every answer's ``x-ots-date`` (or HTTP
``Date``) header sets the offset between it and the local clock, so a lag
is measured on the same clock as the consume points it subtracts.
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

import requests
from requests.adapters import HTTPAdapter

from beam_tunnel.client.auth import OtsV2Auth
from beam_tunnel.client.config import TunnelConfig
from beam_tunnel.client.models import TunnelInfo
from beam_tunnel.client.transport import HttpTransport
from beam_tunnel.client.tunnel_client import TunnelClient
from beam_tunnel.errors import ConfigError, ServiceError
from beam_tunnel.protocol import signing, table_pb2

from .snapshot import LagSnapshot, Retention, build_snapshot

__all__ = ["ServiceClock", "LagReader"]

_LOGGER = logging.getLogger(__name__)

# What the official SDKs send on table paths; tunnel paths take 2018-04-01.
_TABLE_API_VERSION = "2015-12-31"

# Retention changes only by UpdateTable, which is rare; one DescribeTable a
# minute per table keeps the guard right without loading the service.
_RETENTION_REFRESH_S = 60.0

# The HTTP Date header has whole seconds: below this an offset is noise.
_HTTP_DATE_RESOLUTION_S = 2.0


class ServiceClock:
    """The service's time, learnt from the dates of its answers.

    Attach :meth:`observe` as a ``requests`` response hook; :meth:`now_ns` is
    the local clock plus the last offset seen (0 before any answer).
    """

    def __init__(self, local_ns: Callable[[], int] = time.time_ns) -> None:
        self._local_ns = local_ns
        self._lock = threading.Lock()
        self._offset_ns = 0

    def observe(self, response: requests.Response, *args, **kwargs) -> None:
        """Learn the offset from one answer's date headers (a response hook)."""
        received = self._local_ns()
        offset = self._offset_of(response.headers, received)
        if offset is not None:
            with self._lock:
                self._offset_ns = offset

    @staticmethod
    def _offset_of(headers, received_ns: int) -> Optional[int]:
        ots_date = headers.get("x-ots-date")
        if ots_date:
            try:
                server = signing.parse_date(ots_date)
            except ValueError:
                server = None
            if server is not None:
                return int(server.timestamp()) * 1_000_000_000 + _fraction_ns(ots_date) - received_ns
        http_date = headers.get("Date")
        if http_date:
            try:
                server = email.utils.parsedate_to_datetime(http_date)
            except (TypeError, ValueError):
                return None
            offset = int(server.timestamp() * 1e9) - received_ns
            return offset if abs(offset) > _HTTP_DATE_RESOLUTION_S * 1e9 else 0
        return None

    @property
    def offset_s(self) -> float:
        """Service time minus local time, in seconds."""
        with self._lock:
            return self._offset_ns / 1e9

    def now_ns(self) -> int:
        """The service's time now, in ns since the epoch."""
        with self._lock:
            offset = self._offset_ns
        return self._local_ns() + offset


def _fraction_ns(ots_date: str) -> int:
    # signing.parse_date drops the fraction (the Go SDK's request dates
    # garble it); the service's answers carry milliseconds, which a lag of
    # a fraction of a second needs.
    fraction = ots_date.strip().rstrip("Z").partition(".")[2]
    if not fraction.isdigit() or len(fraction) > 9:
        return 0
    return int(fraction.ljust(9, "0"))


class LagReader:
    """Takes :class:`LagSnapshot` s of tunnels; one per call, nothing cached
    but the stream retention (re-read every minute). Thread-safe.

    Args:
      config: endpoint, instance and credentials (see :class:`TunnelConfig`).
      retention_s: the stream retention in seconds, to skip DescribeTable
        (for an AccessKey not allowed to call it); None to read it.

    Attributes:
      clock: the :class:`ServiceClock` every answer updates.
    """

    def __init__(self, config: TunnelConfig, *, retention_s: Optional[float] = None) -> None:
        if not isinstance(config, TunnelConfig):
            raise ConfigError(f"config must be a TunnelConfig, got {type(config).__name__}")
        if retention_s is not None and (isinstance(retention_s, bool) or not isinstance(retention_s, (int, float))
                                        or not retention_s > 0):
            raise ConfigError(f"retention_s must be a number > 0 (seconds) or None, got {retention_s!r}")
        self._config = config
        self._retention_override = retention_s
        self.clock = ServiceClock()
        self._session = requests.Session()
        self._session.mount(config.endpoint + "/", HTTPAdapter(pool_maxsize=config.pool_size, max_retries=0))
        self._session.hooks["response"].append(self.clock.observe)
        self._client = TunnelClient.from_config(config, session=self._session)
        self._table_transport = HttpTransport(
            config.endpoint,
            OtsV2Auth(config.credentials, config.instance_name, _TABLE_API_VERSION),
            connect_timeout_s=config.connect_timeout_s,
            read_timeout_s=config.read_timeout_s,
            pool_size=config.pool_size,
            session=self._session,
        )
        self._lock = threading.Lock()
        self._retentions: Dict[str, Tuple[float, Retention]] = {}

    @property
    def client(self) -> TunnelClient:
        """The TunnelClient the reader calls the service with."""
        return self._client

    def snapshot(self, table_name: str, tunnel_name: str) -> LagSnapshot:
        """The lag of one tunnel now.

        Raises:
          TunnelError: DescribeTunnel failed (no such tunnel: OTSParameterInvalid).
        """
        description = self._client.describe_tunnel(table_name, tunnel_name)  # validates the names
        now_ns = self.clock.now_ns()
        return build_snapshot(description, now_ns, self.retention(table_name))

    def tunnels(self, table_name: Optional[str] = None) -> List[TunnelInfo]:
        """The tunnels of one table, or of the whole instance when None."""
        return self._client.list_tunnels(table_name)

    def retention(self, table_name: str) -> Retention:
        """The table's stream retention: ``--retention`` when given, else
        DescribeTable's (re-read once a minute); unknown when the service
        refuses DescribeTable (e.g. a RAM policy without ots:DescribeTable)."""
        if self._retention_override is not None:
            return Retention(float(self._retention_override), "--retention")
        with self._lock:
            cached = self._retentions.get(table_name)
        if cached is not None and time.monotonic() - cached[0] < _RETENTION_REFRESH_S:
            return cached[1]
        retention = self._describe_retention(table_name)
        with self._lock:
            self._retentions[table_name] = (time.monotonic(), retention)
        return retention

    def _describe_retention(self, table_name: str) -> Retention:
        request = table_pb2.DescribeTableRequest(table_name=table_name)
        try:
            response, _ = self._config.meta_retry.run(
                lambda: self._table_transport.call("DescribeTable", "/DescribeTable", request,
                                                   table_pb2.DescribeTableResponse),
                idempotent=True,
                description="DescribeTable",
            )
        except ServiceError as err:
            _LOGGER.warning("[monitor] stream retention of %s unknown: %s", table_name, err)
            return Retention(None, f"unknown: DescribeTable failed with {err.code}")
        if not response.HasField("stream_details") or not response.stream_details.enable_stream:
            return Retention(None, "stream off")
        hours = response.stream_details.expiration_time
        if hours <= 0:
            return Retention(None, "unknown: DescribeTable gave no stream expiration_time")
        return Retention(hours * 3600.0, "DescribeTable")

    def close(self) -> None:
        """Close the connections. Idempotent."""
        self._client.close()
        self._session.close()

    def __enter__(self) -> "LagReader":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
