"""A tiny splittable DoFn of our own that records what a runner does with it.

The element is a record count. ``process`` reads one record per call (or
all of them, without self-checkpoints, for ``resume_delay_s=None``): it
claims the next offset, emits it with event time ``offset * EVENT_SPACING_S``,
moves its ``ManualWatermarkEstimator`` to that time, registers a
bundle-finalization callback and self-checkpoints with
``defer_remainder(resume_delay_s)``. Every step is appended as a JSON line to
``journal``, a file (the SDK harness runs in the test process under LOOPBACK,
but a file works from any worker). ``read_journal`` turns it into ``Facts``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Dict, List, Optional

import apache_beam as beam
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.transforms import window
from apache_beam.utils.timestamp import Duration, Timestamp

EVENT_SPACING_S = 10
WINDOW_S = 30


def note(journal: str, **event) -> None:
    event["wall"] = time.time()
    line = (json.dumps(event) + "\n").encode()
    # One write with O_APPEND keeps concurrent small lines whole.
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


class _CheckpointOnlyTracker(OffsetRestrictionTracker):
    """Accepts only checkpoints (split at 0), as a stream reader must: if a
    runner split the range at a fraction, the residual's records would come
    out behind the primary's watermark and be dropped as late."""

    def try_split(self, fraction_of_remainder):
        if fraction_of_remainder > 0:
            return None
        return super().try_split(fraction_of_remainder)


class _Offsets(beam.transforms.core.RestrictionProvider):
    def initial_restriction(self, count):
        return OffsetRange(0, count)

    def create_tracker(self, restriction):
        return _CheckpointOnlyTracker(restriction)

    def restriction_size(self, count, restriction):
        return restriction.size()

    def truncate(self, count, restriction):
        return None


class BoundedProbe(beam.DoFn):
    """Reads the records with a self-checkpoint after each one, or all in one
    call when ``resume_delay_s`` is None."""

    def __init__(self, journal: str, resume_delay_s: Optional[float], pace_s: float = 0.0):
        self._journal = journal
        self._resume_delay_s = resume_delay_s
        self._pace_s = pace_s

    # Trap: BundleFinalizerParam must be declared before RestrictionParam and
    # WatermarkEstimatorParam. It is filled positionally and they by keyword,
    # so the other order fails with "got multiple values for argument".
    def process(
        self,
        count,
        finalizer=beam.DoFn.BundleFinalizerParam,
        tracker=beam.DoFn.RestrictionParam(_Offsets()),
        estimator=beam.DoFn.WatermarkEstimatorParam(ManualWatermarkEstimator.default_provider()),
    ):
        offset = tracker.current_restriction().start
        while True:
            note(self._journal, kind="process", offset=offset)
            # A bounded wait per record, as a poll with a timeout has: the
            # source then takes a while even where resume delays are ignored.
            time.sleep(self._pace_s)
            if not tracker.try_claim(offset):
                return
            event_time = Timestamp(offset * EVENT_SPACING_S)
            yield window.TimestampedValue(offset, event_time)
            current = estimator.current_watermark()
            if current is None or event_time > current:
                estimator.set_watermark(event_time)
            journal = self._journal
            finalizer.register(lambda offset=offset: note(journal, kind="finalized", offset=offset))
            if offset + 1 >= tracker.current_restriction().stop:
                return
            if self._resume_delay_s is not None:
                note(self._journal, kind="defer", offset=offset)
                tracker.defer_remainder(Duration.of(self._resume_delay_s))
                return
            offset += 1  # no self-checkpoint: read on within this call


class UnboundedProbe(BoundedProbe):
    """The same reader declared unbounded, as a streaming source is."""

    @beam.DoFn.unbounded_per_element()
    def process(
        self,
        count,
        finalizer=beam.DoFn.BundleFinalizerParam,
        tracker=beam.DoFn.RestrictionParam(_Offsets()),
        estimator=beam.DoFn.WatermarkEstimatorParam(ManualWatermarkEstimator.default_provider()),
    ):
        yield from super().process(count, finalizer, tracker=tracker, estimator=estimator)


class _NoteWindowCount(beam.DoFn):
    def __init__(self, journal: str):
        self._journal = journal

    def process(self, count, pane_window=beam.DoFn.WindowParam):
        note(self._journal, kind="window", end=float(pane_window.end), count=count)
        yield count


def windowed_counts(records, journal: str):
    """Counts records per fixed event-time window, noting when each fires."""
    return (
        records
        | "Window" >> beam.WindowInto(window.FixedWindows(WINDOW_S))
        | "Count" >> beam.combiners.Count.Globally().without_defaults()
        | "Note" >> beam.ParDo(_NoteWindowCount(journal))
    )


@dataclass(frozen=True)
class Facts:
    """What the journal shows a runner did."""

    processed: List[int]  # offsets claimed, in order of process calls
    resume_gaps_s: List[float]  # defer -> next process call, per checkpoint
    window_fired_s: Dict[float, float]  # window end -> wall time it fired
    window_counts: Dict[float, int]
    finalized: List[int]  # offsets whose bundle was finalized
    last_process_s: float  # wall time of the source's last process call

    @property
    def windows_before_source_end(self) -> int:
        return sum(1 for fired in self.window_fired_s.values() if fired < self.last_process_s)

    def summary(self, runner: str) -> str:
        gaps = sorted(self.resume_gaps_s)
        median = gaps[len(gaps) // 2] if gaps else float("nan")
        return (
            "%s: %d records, resume gap median %.2fs (min %.2f, max %.2f) over %d checkpoints; "
            "%d of %d windows fired before the source ended; %d of %d bundles finalized"
            % (
                runner,
                len(set(self.processed)),
                median,
                gaps[0] if gaps else float("nan"),
                gaps[-1] if gaps else float("nan"),
                len(gaps),
                self.windows_before_source_end,
                len(self.window_fired_s),
                len(set(self.finalized)),
                len(set(self.processed)),
            )
        )


# Summaries of the runs of this session, printed at the end by conftest.py.
MEASURED: List[str] = []


def read_journal(journal: str) -> Facts:
    events = []
    if os.path.exists(journal):
        with open(journal) as lines:
            events = [json.loads(line) for line in lines]
    events.sort(key=lambda event: event["wall"])
    processed, gaps, fired, counts, finalized = [], [], {}, {}, []
    deferred_at = None
    last_process = 0.0
    for event in events:
        kind = event["kind"]
        if kind == "process":
            processed.append(event["offset"])
            last_process = event["wall"]
            if deferred_at is not None:
                gaps.append(event["wall"] - deferred_at)
                deferred_at = None
        elif kind == "defer":
            deferred_at = event["wall"]
        elif kind == "window":
            fired.setdefault(event["end"], event["wall"])
            counts[event["end"]] = counts.get(event["end"], 0) + event["count"]
        elif kind == "finalized":
            finalized.append(event["offset"])
    return Facts(processed, gaps, fired, counts, finalized, last_process)
