"""The splittable DoFn that runs reader slots.

SDF rules this class keeps (beam-runners.md §5-§7, design.md §3-§6):

* The element is a :class:`SlotSpec`; the restriction is the slot's state
  (:class:`SlotRestriction`), claimed whole after every change, so a retried
  bundle restarts from the last persisted state, tokens included.
* ``process()`` returns on its own after bounded work (records, bytes, time)
  and self-checkpoints with ``defer_remainder``: no runner here asks an SDF
  to checkpoint. Idle channels are polled with backoff *inside* the call for
  at most ``idle_wait_s`` (FnApiRunner ignores resume delays; Flink turns
  sub-second delays into 0), then the call defers with a whole-second delay.
* After a failed ``try_claim`` (a runner-initiated checkpoint) nothing more
  is emitted.
* Checkpoints reach the service only from the bundle finalizer
  (:mod:`._commits`); never from ``process()``.
* The watermark is seeded from the plan, reported on every call and only
  moves forward, up to the tunnel-wide committed consume point
  (:mod:`._tunnel_view`), so a channel that moves here from another slot and
  is re-read from its last checkpoint is never behind it.
* The client is made in ``setup()`` (a runner may call methods on different
  deserialized copies); the DoFn itself holds only picklable settings.
* Parameter order: ``BundleFinalizerParam`` before ``RestrictionParam`` and
  ``WatermarkEstimatorParam`` (the latter are passed by keyword).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Dict

import apache_beam as beam
from apache_beam.coders import NullableCoder, TimestampCoder
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.metrics import Metrics
from apache_beam.transforms.core import RestrictionProvider, WatermarkEstimatorProvider
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Duration, Timestamp

from beam_tunnel.beam import _tunnel_view
from beam_tunnel.beam._commits import Commit, CommitOnFinalize, report_commit_metrics
from beam_tunnel.beam._plan import SlotSpec
from beam_tunnel.beam._prefetch import Prefetcher
from beam_tunnel.beam._restriction import SlotRestriction, SlotRestrictionCoder, SlotTracker
from beam_tunnel.beam._settings import ReadSettings
from beam_tunnel.beam._slot import SlotCall
from beam_tunnel.client.models import ChannelType, TunnelType
from beam_tunnel.errors import TunnelError
from beam_tunnel.worker.polling import PollBackoff

_LOGGER = logging.getLogger(__name__)

DEAD_LETTER_TAG = "dead_letter"
RECORDS_TAG = "records"

_NAMESPACE = "ReadFromTunnel"
_RESUME_DELAY = Duration(seconds=1)
"""Whole seconds: Flink rounds sub-second delays down to 0. Only used after
an idle call, which already waited ``idle_wait_s`` inside ``process()``."""

class _BusyMark:
    """When a slot of this process last emitted records."""

    _RECENT_S = 1.0

    def __init__(self) -> None:
        self._last = float("-inf")

    def mark(self) -> None:
        self._last = time.monotonic()

    def recent(self) -> bool:
        return time.monotonic() - self._last < self._RECENT_S


_BUSY = _BusyMark()

_NOTHING_TO_READ_WAIT_S = 0.2
"""Wait of a call that holds no readable channel: short, see _process."""

_IDLE_BACKOFF = PollBackoff(initial_s=0.02, multiplier=2.0, max_s=0.25, jitter=0.0)
"""Polls inside one idle call: first re-read after 20 ms, then up to 4/s."""


class _SlotRestrictionProvider(RestrictionProvider):
    def __init__(self, bounded: bool) -> None:
        self._bounded = bounded

    def initial_restriction(self, element: SlotSpec) -> SlotRestriction:
        return SlotRestriction(
            tunnel_id=element.tunnel_id, slot=element.slot, client_id=element.client_id,
            last_answered=element.connected_at if element.client_id else None,
        )

    def create_tracker(self, restriction: SlotRestriction) -> SlotTracker:
        return SlotTracker(restriction, self._bounded)

    def restriction_size(self, element, restriction) -> int:
        # Never 0: Prism divides by the size when it plans a split.
        return 1

    def restriction_coder(self):
        return SlotRestrictionCoder()

    def truncate(self, element, restriction):
        # Drain: stop reading. What was emitted is committed by the finalizers
        # already registered; leases end by timeout.
        return None


class _SeededWatermarkProvider(WatermarkEstimatorProvider):
    """A ManualWatermarkEstimator starting at the slot's planned seed."""

    def initial_estimator_state(self, element: SlotSpec, restriction) -> Timestamp:
        return Timestamp(micros=element.seed_us)

    def create_watermark_estimator(self, estimator_state) -> ManualWatermarkEstimator:
        return ManualWatermarkEstimator(estimator_state)

    def estimator_state_coder(self):
        return NullableCoder(TimestampCoder())


def _advance(estimator: ManualWatermarkEstimator, micros: int) -> None:
    current = estimator.current_watermark()
    candidate = Timestamp(micros=micros)
    if current is None or candidate > current:
        estimator.set_watermark(candidate)


class _ReadSlotFnBase(beam.DoFn):
    """Shared by the bounded and unbounded variants (they differ only in the
    ``unbounded_per_element`` marker, which Beam reads off ``process``)."""

    def __init__(self, settings: ReadSettings) -> None:
        self._settings = settings
        self._client = None
        self._prefetcher = None
        self._elements = Metrics.counter(_NAMESPACE, "elements_read")
        self._bytes = Metrics.counter(_NAMESPACE, "bytes_read")
        self._late = Metrics.counter(_NAMESPACE, "late_records")
        self._corrupt = Metrics.counter(_NAMESPACE, "corrupt_records")
        self._reconnects = Metrics.counter(_NAMESPACE, "reconnects")
        self._channels = Metrics.gauge(_NAMESPACE, "channels_owned")
        self._lag = Metrics.distribution(_NAMESPACE, "lag_ms")

    def setup(self) -> None:
        self._client = self._settings.new_client()
        self._prefetcher = Prefetcher(self._client)

    def teardown(self) -> None:
        if self._prefetcher is not None:
            self._prefetcher.close()
            self._prefetcher = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def _ensure_client(self):
        if self._client is None:
            self.setup()
        return self._client

    def _process(self, spec: SlotSpec, finalizer, tracker, estimator):
        report_commit_metrics()
        restriction = tracker.current_restriction()
        if restriction.done:
            return
        settings = self._settings
        client = self._ensure_client()
        call = SlotCall(client, settings, restriction, spec.snapshot_us, spec.stop_us, self._stream_channel,
                        self._prefetcher)
        claimed_commits: Dict[str, Commit] = {}
        pending: Dict[str, Commit] = {}
        straddles = []
        finished = False
        try:
            if not tracker.try_claim(call.start()):
                return
            if call.reconnected:
                self._reconnects.inc()
            self._channels.set(sum(1 for c in call.state.channels if c.readable))
            started = time.monotonic()
            deadline = started + settings.max_bundle_seconds
            records = size = idle_rounds = 0
            idle_deadline = None
            nothing_to_read = False
            while True:
                batch = call.next_batch()
                if batch is None:
                    now = time.monotonic()
                    if idle_deadline is None:
                        idle_deadline = min(deadline, now + self._idle_budget(settings.idle_wait_s))
                    if not call.own_work_left():
                        nothing_to_read = True
                        break
                    if now >= idle_deadline:
                        break
                    time.sleep(min(_IDLE_BACKOFF.delay(idle_rounds, 0.5), max(0.0, idle_deadline - now)))
                    idle_rounds += 1
                    continue
                idle_rounds, idle_deadline = 0, None
                if batch.commit is not None:
                    pending[batch.channel_id] = batch.commit
                if batch.records or batch.corrupt:
                    if not tracker.try_claim(batch.state):
                        return
                    claimed_commits.update(pending)
                    if batch.straddle is not None:
                        straddles.append(batch.straddle)
                    yield from self._emit(batch, estimator)
                    _BUSY.mark()
                    records += len(batch.records)
                    size += batch.size_bytes
                if (
                    records >= settings.max_bundle_records
                    or size >= settings.max_bundle_bytes
                    or time.monotonic() >= deadline
                ):
                    break
            finished = settings.bounded and self._bounded_done(call, spec)
            final = call.state if not finished else _done(call.state)
            if not finished and not tracker.try_claim(final):
                return
            claimed_commits.update(pending)
            self._advance_watermark(client, estimator)
            if not finished and nothing_to_read:
                # Nothing to read at all (no channel assigned yet, or a bounded
                # read waiting for others): wait a little, since FnApiRunner
                # ignores the resume delay and would call again at once. A
                # little: FnApiRunner runs the slots one after another, so this
                # wait holds up the slots that do have work.
                time.sleep(max(0.0, min(self._idle_budget(_NOTHING_TO_READ_WAIT_S), deadline - time.monotonic())))
        finally:
            # Registered on every call, even with nothing to commit: Prism
            # finalizes every bundle of a stage that can finalize, and the SDK
            # harness keeps a bundle for that only when it registered a callback.
            finalizer.register(CommitOnFinalize(
                self._ensure_client, call.state.tunnel_id, call.state.client_id,
                list(claimed_commits.values()), shutdown=finished, straddles=straddles,
            ))
        if finished:
            tracker.try_claim(_done(call.state))
            _LOGGER.info("[slot %d] bounded read of tunnel %s finished", spec.slot, spec.tunnel_id)
            return
        tracker.defer_remainder(_RESUME_DELAY if records == 0 else Duration(seconds=0))

    def _emit(self, batch, estimator):
        current = estimator.current_watermark()
        watermark_us = current.micros if current is not None else None
        now_us = time.time() * 1e6
        late = 0
        stamp_us, stamp = None, None
        for record, event_us in batch.records:
            if watermark_us is not None and event_us < watermark_us:
                late += 1
            if event_us != stamp_us:
                # Full-data records share one event time: one Timestamp serves.
                stamp_us, stamp = event_us, Timestamp(micros=event_us)
            yield TimestampedValue(record, stamp)
        if late:
            self._late.inc(late)
        if batch.records and batch.records[-1][0].sequence is not None:
            # Per batch, not per record: the lag of the newest change emitted.
            self._lag.update(int((now_us - batch.records[-1][1]) / 1000))
        self._elements.inc(len(batch.records))
        self._bytes.inc(batch.size_bytes)
        if batch.corrupt:
            self._corrupt.inc(len(batch.corrupt))
            stamp = Timestamp(micros=watermark_us) if watermark_us is not None else Timestamp(micros=int(now_us))
            for corrupt in batch.corrupt:
                yield beam.pvalue.TaggedOutput(DEAD_LETTER_TAG, TimestampedValue(corrupt, stamp))

    @staticmethod
    def _idle_budget(wait_s: float) -> float:
        """How long an idle call may wait. FnApiRunner runs the slots of a
        worker one after another, so while another slot of this process is
        emitting, an idle one must not hold it up; when none is, waiting is
        what keeps an idle source from spinning (that runner ignores resume
        delays)."""
        return 0.0 if _BUSY.recent() else wait_s

    def _stream_channel(self, channel_id: str) -> bool:
        settings = self._settings
        for refresh in (settings.watermark_refresh_s, 0.0):
            description = _tunnel_view.describe(self._ensure_client(), settings.table, settings.tunnel, refresh)
            for channel in description.channels:
                if channel.channel_id == channel_id:
                    return channel.channel_type == ChannelType.STREAM
        return settings.tunnel_type is TunnelType.STREAM

    def _advance_watermark(self, client, estimator) -> None:
        settings = self._settings
        try:
            description = _tunnel_view.describe(client, settings.table, settings.tunnel,
                                                settings.watermark_refresh_s)
        except TunnelError as error:
            # The watermark only waits; the records already emitted stand.
            _LOGGER.warning("[watermark] DescribeTunnel of %s failed (%s); watermark kept", settings.tunnel, error)
            return
        bound = _tunnel_view.watermark_bound_us(description)
        if bound is not None:
            _advance(estimator, bound)

    def _bounded_done(self, call: SlotCall, spec: SlotSpec) -> bool:
        if call.own_work_left():
            if call.state.waiting_since is not None:
                call.state = dataclasses.replace(call.state, waiting_since=None)
            return False
        settings = self._settings
        state = call.state
        description = _tunnel_view.describe(
            self._ensure_client(), settings.table, settings.tunnel, settings.watermark_refresh_s)
        waiting = _tunnel_view.uncovered(description, call.stop_us, state.client_id)
        if not waiting:
            return True
        now = time.time()
        if state.waiting_since is None:
            call.state = dataclasses.replace(state, waiting_since=now)
            return False
        # A slot holding a channel cut by stop_at (its checkpoint stays before
        # the cut, so consume points never show it covered) could wait forever
        # on a sibling slot that waits on it in turn. When everything it waits
        # for is held by siblings of this read (alive: they were connected by
        # the plan), it leaves after the grace period; whoever takes its
        # channels skips what it emitted (_commits.Straddle). Channels held by
        # any other client are waited for: a live one commits past the stop, a
        # dead one's lease ends and the channel comes to a live slot.
        holds_cut = settings.stop_at_us is not None and any(c.stopped for c in state.channels)
        siblings = tuple(peer for peer in spec.peers if peer != state.client_id)
        return (
            holds_cut
            and _tunnel_view.held_by(description, waiting, siblings)
            and now - state.waiting_since >= settings.closing_grace_s
        )


def _done(state: SlotRestriction) -> SlotRestriction:
    return dataclasses.replace(state, done=True)


class ReadSlotsFn(_ReadSlotFnBase):
    """Reader slots of an unbounded read (Stream and BaseAndStream tunnels)."""

    @beam.DoFn.unbounded_per_element()
    def process(
        self,
        spec: SlotSpec,
        finalizer=beam.DoFn.BundleFinalizerParam,
        tracker=beam.DoFn.RestrictionParam(_SlotRestrictionProvider(bounded=False)),
        estimator=beam.DoFn.WatermarkEstimatorParam(_SeededWatermarkProvider()),
    ):
        yield from self._process(spec, finalizer, tracker, estimator)


class ReadBoundedSlotsFn(_ReadSlotFnBase):
    """Reader slots of a bounded read (BaseData, stop_at, stop_when_caught_up)."""

    def process(
        self,
        spec: SlotSpec,
        finalizer=beam.DoFn.BundleFinalizerParam,
        tracker=beam.DoFn.RestrictionParam(_SlotRestrictionProvider(bounded=True)),
        estimator=beam.DoFn.WatermarkEstimatorParam(_SeededWatermarkProvider()),
    ):
        yield from self._process(spec, finalizer, tracker, estimator)
