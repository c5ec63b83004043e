"""ReadFromTunnel: every change of a Tablestore table as a Beam PCollection.

Status: experimental; the API may change.

Usage::

    import apache_beam as beam
    from beam_tunnel import ReadFromTunnel

    with beam.Pipeline(options=options) as pipeline:
        changes = pipeline | ReadFromTunnel(
            endpoint="https://my-instance.cn-hangzhou.ots.aliyuncs.com",
            instance="my-instance",
            table="orders",
            tunnel="orders-sync",
            tunnel_type="BaseAndStream",   # created with this type when missing
        )

Architecture: ``Impulse -> PlanSlots -> Reshuffle -> ReadSlots (SDF)``.
PlanSlots finds or creates the tunnel and emits K reader slots; each slot is
one tunnel client holding the channels the service assigns to it (the
service balances channels over all clients of the tunnel, and opens stream
and child channels only when their predecessors finished, which is what keeps
the order). See ``_read_fn`` for the SDF rules and README "ReadFromTunnel"
for event time, watermark and delivery.
"""

from __future__ import annotations

import datetime
import math
from typing import Callable, Optional, Union

import apache_beam as beam
from apache_beam.options.pipeline_options import DirectOptions, StandardOptions
from apache_beam.transforms.display import DisplayDataItem
from apache_beam.utils.timestamp import Timestamp

from beam_tunnel.beam._credentials import CredentialSource
from beam_tunnel.beam._plan import PlanSlotsFn
from beam_tunnel.beam._read_fn import DEAD_LETTER_TAG, RECORDS_TAG, ReadBoundedSlotsFn, ReadSlotsFn
from beam_tunnel.beam._settings import ReadSettings
from beam_tunnel.client.config import DEFAULT_TIMEOUT, TunnelConfig
from beam_tunnel.client.credentials import Credentials
from beam_tunnel.client.models import StartOffset, TunnelType
from beam_tunnel.errors import ConfigError
from beam_tunnel.records import ChangeRecord, CorruptRecord

__all__ = ["ReadFromTunnel"]

_LOCAL_RUNNERS = ("DirectRunner", "SwitchingDirectRunner", "FnApiRunner", "BundleBasedDirectRunner")
"""Runners that (may) execute the pipeline on FnApiRunner, whose
``direct_num_workers > 1`` silently drops SDF residuals."""


class ReadFromTunnel(beam.PTransform):
    """Read a Tablestore tunnel: full data, incremental changes, or both.

    Output: a ``PCollection`` of :class:`~beam_tunnel.records.ChangeRecord`,
    each timestamped with its event time: the write time for stream records,
    the tunnel's creation time for full-data records. With
    ``dead_letter=True`` the result has two outputs, ``result.records`` and
    ``result.dead_letter`` (:class:`~beam_tunnel.records.CorruptRecord`).

    Unbounded for Stream and BaseAndStream tunnels; bounded (it ends on every
    runner) for BaseData tunnels, with ``stop_at`` or with
    ``stop_when_caught_up``.

    Args:
      table: the table the tunnel reads.
      tunnel: the tunnel's name.
      tunnel_type: "BaseData", "Stream" or "BaseAndStream" (default): the
        tunnel is created with this type when it does not exist; an existing
        tunnel of another type fails the pipeline, naming both.
      endpoint: ``http(s)://host[:port]``; default ``$TABLESTORE_ENDPOINT``.
      instance: the instance name; default ``$TABLESTORE_INSTANCE``.
      access_key_id, access_key_secret, sts_token: the AccessKey. Given
        here, the secret stays in this process (never in the pipeline graph):
        good for DirectRunner, Prism and Flink in LOOPBACK mode. Default: the
        ``ALIBABA_CLOUD_ACCESS_KEY_ID``/``..._SECRET``/``..._SECURITY_TOKEN``
        variables, read on each worker.
      credentials: instead of keys, a picklable callable returning
        ``beam_tunnel.client.credentials.Credentials`` on the worker.
      start_offset: where a new Stream tunnel starts: "LATEST" (service
        default), "EARLIEST", or an aware datetime.
      end_offset: an aware datetime at which a new Stream tunnel ends.
      stop_at: bounded read: end each channel before its first record
        written at or after this time (an aware datetime, a Beam
        ``Timestamp`` or seconds since the epoch). Full data is read whole.
      stop_when_caught_up: bounded read: end once every channel delivered
        everything written before the read began.
      num_slots: reader slots (tunnel clients); default one per channel
        seen at start, at most ``max_slots`` (default 16).
      heartbeat_interval_s: seconds between heartbeats (default 2: a channel the
        service moves is answered within one interval; heartbeats are cheap).
      heartbeat_timeout_s: lease timeout in seconds (default 300): how long
        the service keeps a silent slot's channels before giving them to
        others. A killed pipeline's channels wait this long.
      max_bundle_records, max_bundle_bytes, max_bundle_seconds: a
        ``process()`` call returns and checkpoints after this much (default
        10,000 records, 64 MiB, 2 s); shorter means more frequent commits.
      idle_wait_s: how long one call polls idle channels (default 1 s).
      closing_grace_s: how long a channel the service takes back waits for
        its last batch's commit before it is released (default 10 s).
      watermark_refresh_s: how often consume points are polled (default 1 s).
      dead_letter: route undecodable records to the ``dead_letter`` output
        instead of failing the pipeline (default False).
      timeout: the client's (connect, read) timeouts in seconds.
      client_tag: the label sent with ConnectTunnel (default "beam").

    Raises:
      ConfigError (a ValueError): at construction, naming the bad value.
    """

    def __init__(
        self,
        *,
        table: str,
        tunnel: str,
        tunnel_type: Union[TunnelType, str] = TunnelType.BASE_AND_STREAM,
        endpoint: Optional[str] = None,
        instance: Optional[str] = None,
        access_key_id: Optional[str] = None,
        access_key_secret: Optional[str] = None,
        sts_token: Optional[str] = None,
        credentials: Optional[Callable[[], Credentials]] = None,
        start_offset: Union[StartOffset, str, datetime.datetime, None] = None,
        end_offset: Optional[datetime.datetime] = None,
        stop_at: Union[datetime.datetime, Timestamp, float, None] = None,
        stop_when_caught_up: bool = False,
        num_slots: Optional[int] = None,
        max_slots: int = 16,
        heartbeat_interval_s: float = 2.0,
        heartbeat_timeout_s: float = 300.0,
        max_bundle_records: int = 10_000,
        max_bundle_bytes: int = 64 << 20,
        max_bundle_seconds: float = 2.0,
        idle_wait_s: float = 1.0,
        closing_grace_s: float = 10.0,
        watermark_refresh_s: float = 1.0,
        dead_letter: bool = False,
        timeout=DEFAULT_TIMEOUT,
        client_tag: str = "beam",
    ) -> None:
        super().__init__()
        source = CredentialSource.from_arguments(access_key_id, access_key_secret, sts_token, credentials)
        # Validates endpoint, instance and timeout with the client's own
        # messages; the throwaway credentials keep the secret out of it.
        config = TunnelConfig.resolve(endpoint, instance, "validation-only", "x", timeout=timeout)
        kind = TunnelType.parse(tunnel_type, "tunnel_type")
        _text("table", table)
        _text("tunnel", tunnel)
        _text("client_tag", client_tag)
        if start_offset is not None or end_offset is not None:
            if kind is not TunnelType.STREAM:
                raise ConfigError(
                    f"start_offset/end_offset apply to Stream tunnels only, got tunnel_type {kind.value!r}"
                )
        if stop_at is not None and stop_when_caught_up:
            raise ConfigError(f"pass stop_at or stop_when_caught_up, not both (got stop_at={stop_at!r})")
        if not isinstance(stop_when_caught_up, bool):
            raise ConfigError(f"stop_when_caught_up must be a bool, got {stop_when_caught_up!r}")
        if not isinstance(dead_letter, bool):
            raise ConfigError(f"dead_letter must be a bool, got {dead_letter!r}")
        if num_slots is not None:
            _int("num_slots", num_slots, 1)
        _int("max_slots", max_slots, 1)
        _positive("heartbeat_interval_s", heartbeat_interval_s)
        _positive("heartbeat_timeout_s", heartbeat_timeout_s)
        if heartbeat_timeout_s <= heartbeat_interval_s:
            raise ConfigError(
                f"heartbeat_timeout_s must exceed heartbeat_interval_s, got {heartbeat_timeout_s!r} "
                f"<= {heartbeat_interval_s!r}"
            )
        self._settings = ReadSettings(
            endpoint=config.endpoint,
            instance=config.instance_name,
            credentials=source,
            timeout=(config.connect_timeout_s, config.read_timeout_s),
            table=table,
            tunnel=tunnel,
            tunnel_type=kind,
            start_offset=_start_offset(start_offset),
            end_offset_ns=None if end_offset is None else _datetime_us(end_offset, "end_offset") * 1000,
            num_slots=num_slots,
            max_slots=max_slots,
            heartbeat_interval_s=float(heartbeat_interval_s),
            heartbeat_timeout_s=float(heartbeat_timeout_s),
            max_bundle_records=_int("max_bundle_records", max_bundle_records, 1),
            max_bundle_bytes=_int("max_bundle_bytes", max_bundle_bytes, 1),
            max_bundle_seconds=_positive("max_bundle_seconds", max_bundle_seconds),
            idle_wait_s=_positive("idle_wait_s", idle_wait_s, allow_zero=True),
            closing_grace_s=_positive("closing_grace_s", closing_grace_s, allow_zero=True),
            watermark_refresh_s=_positive("watermark_refresh_s", watermark_refresh_s, allow_zero=True),
            stop_at_us=None if stop_at is None else _time_us(stop_at),
            stop_when_caught_up=stop_when_caught_up,
            dead_letter=dead_letter,
            client_tag=client_tag,
        )

    @property
    def bounded(self) -> bool:
        """True when this read ends on its own."""
        return self._settings.bounded

    def expand(self, pbegin):
        _refuse_dropping_runner(pbegin.pipeline)
        settings = self._settings
        slots = (
            pbegin
            | "Impulse" >> beam.Impulse()
            | "PlanSlots" >> beam.ParDo(PlanSlotsFn(settings))
            | "DistributeSlots" >> beam.Reshuffle()
        )
        read_fn = ReadBoundedSlotsFn(settings) if settings.bounded else ReadSlotsFn(settings)
        read = beam.ParDo(read_fn)
        if not settings.dead_letter:
            return slots | "ReadSlots" >> read.with_output_types(ChangeRecord)
        outputs = slots | "ReadSlots" >> read.with_outputs(DEAD_LETTER_TAG, main=RECORDS_TAG)
        outputs[RECORDS_TAG].element_type = ChangeRecord
        outputs[DEAD_LETTER_TAG].element_type = CorruptRecord
        return outputs

    def display_data(self):
        settings = self._settings
        return {
            "endpoint": settings.endpoint,
            "instance": settings.instance,
            "table": settings.table,
            "tunnel": settings.tunnel,
            "tunnel_type": settings.tunnel_type.value,
            "credentials": settings.credentials.describe(),
            "bounded": DisplayDataItem(settings.bounded, label="Bounded read"),
        }

    def default_label(self) -> str:
        return f"ReadFromTunnel({self._settings.table}/{self._settings.tunnel})"


def _refuse_dropping_runner(pipeline) -> None:
    options = pipeline.options
    runner = options.view_as(StandardOptions).runner
    runner_name = runner if isinstance(runner, str) else type(pipeline.runner).__name__
    if runner is None:
        runner_name = type(pipeline.runner).__name__ if pipeline.runner is not None else "DirectRunner"
    if not any(runner_name.endswith(name) for name in _LOCAL_RUNNERS):
        return
    workers = options.view_as(DirectOptions).direct_num_workers
    if workers != 1:
        raise ConfigError(
            f"ReadFromTunnel cannot run on {runner_name} with direct_num_workers={workers}: FnApiRunner "
            "silently drops a splittable DoFn's residuals when it runs more than one worker, so records "
            "would be lost. Use --direct_num_workers=1 (the default), or Prism/Flink for parallelism."
        )


def _text(name: str, value) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def _positive(name: str, value, allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name} must be a finite number of seconds {'>= 0' if allow_zero else '> 0'}, "
                          f"got {value!r}")
    return float(value)


def _datetime_us(value: datetime.datetime, name: str) -> int:
    if value.tzinfo is None:
        raise ConfigError(f"{name} must be timezone-aware (e.g. tzinfo=datetime.timezone.utc), got {value!r}")
    delta = value - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _time_us(value) -> int:
    if isinstance(value, datetime.datetime):
        return _datetime_us(value, "stop_at")
    if isinstance(value, Timestamp):
        return value.micros
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return int(value * 1_000_000)
    raise ConfigError(
        f"stop_at must be an aware datetime, a Beam Timestamp or seconds since the epoch, got {value!r}"
    )


def _start_offset(value):
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        return _datetime_us(value, "start_offset") * 1000
    if isinstance(value, (StartOffset, str)):
        return StartOffset.parse(value, "start_offset")
    raise ConfigError(f"start_offset must be 'LATEST', 'EARLIEST' or an aware datetime, got {value!r}")
