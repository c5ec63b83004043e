"""The pure channel state machine (beam_tunnel.worker.channels).

Covers the version rules of tunnel-protocol.md §4.2: the status reaction
table row by row, the Go SDK's state_test.go sequence replayed step by step
(expected reports and live-reader counts), stale replies, revocation, late
reader events, and randomized invariants.
"""

import pytest
from hypothesis import given, settings, strategies as st

from beam_tunnel.client.models import Channel, ChannelStatus
from beam_tunnel.errors import ConfigError
from beam_tunnel.worker.channels import (
    ChannelState,
    Progress,
    heartbeat_channels,
    mark_finished,
    mark_reading,
    mark_stopped,
    merge_heartbeat,
)

OPEN, CLOSING, CLOSE, TERMINATED = (
    ChannelStatus.OPEN,
    ChannelStatus.CLOSING,
    ChannelStatus.CLOSE,
    ChannelStatus.TERMINATED,
)


def ch(cid, version, status):
    return Channel(cid, version, status)


def reading(cid, version=0):
    return ChannelState(cid, version, OPEN, Progress.READING)


# --- the status reaction table, row by row ---------------------------------


def test_new_open_channel_is_opened_and_reported_as_is():
    plan = merge_heartbeat({}, [ch("a", 0, OPEN)])
    assert plan.open == ("a",)
    assert plan.channels["a"] == ChannelState("a", 0, OPEN, Progress.NEW)
    assert plan.answer == ()
    assert heartbeat_channels(plan.channels) == [ch("a", 0, OPEN)]


def test_open_channel_being_read_is_kept_and_takes_the_service_version():
    plan = merge_heartbeat({"a": reading("a", 3)}, [ch("a", 4, OPEN)])
    assert plan.keep == ("a",)
    assert plan.open == plan.close == ()
    assert plan.channels["a"] == ChannelState("a", 4, OPEN, Progress.READING)


def test_open_channel_still_opening_is_not_opened_twice():
    table = merge_heartbeat({}, [ch("a", 0, OPEN)]).channels
    plan = merge_heartbeat(table, [ch("a", 0, OPEN)])
    assert plan.open == ()
    assert plan.keep == ("a",)
    assert plan.channels["a"].progress is Progress.NEW


def test_failed_reader_reports_close_v_plus_1():
    table = mark_stopped({"a": reading("a", 0)}, "a")
    assert table["a"] == ChannelState("a", 1, CLOSE, Progress.STOPPED)
    # The in-flight reply still says OPEN 0: stale, the answer stands.
    plan = merge_heartbeat(table, [ch("a", 0, OPEN)])
    assert heartbeat_channels(plan.channels) == [ch("a", 1, CLOSE)]
    assert plan.open == plan.keep == plan.close == ()


def test_finished_reader_reports_terminated_v_plus_1():
    table = mark_finished({"a": reading("a", 0)}, "a")
    assert table["a"] == ChannelState("a", 1, TERMINATED, Progress.FINISHED)
    plan = merge_heartbeat(table, [ch("a", 0, OPEN)])
    assert heartbeat_channels(plan.channels) == [ch("a", 1, TERMINATED)]


def test_closing_while_reading_stops_the_reader_before_answering():
    plan = merge_heartbeat({"a": reading("a", 0)}, [ch("a", 1, CLOSING)])
    assert plan.close == ("a",)
    # No answer until the reader has stopped and flushed its checkpoint.
    assert plan.answer == ()
    assert plan.channels["a"] == ChannelState("a", 1, CLOSING, Progress.READING)
    table = mark_stopped(plan.channels, "a")
    assert heartbeat_channels(table) == [ch("a", 2, CLOSE)]


def test_closing_while_reading_answers_terminated_if_the_reader_finished():
    plan = merge_heartbeat({"a": reading("a", 5)}, [ch("a", 6, CLOSING)])
    table = mark_finished(plan.channels, "a")
    assert heartbeat_channels(table) == [ch("a", 7, TERMINATED)]


def test_closing_a_finished_channel_answers_terminated_v_plus_1():
    table = {"a": ChannelState("a", 1, TERMINATED, Progress.FINISHED)}
    plan = merge_heartbeat(table, [ch("a", 2, CLOSING)])
    assert plan.answer == (ch("a", 3, TERMINATED),)
    assert plan.close == ()


def test_closing_a_channel_never_seen_answers_close_v_plus_1():
    plan = merge_heartbeat({}, [ch("a", 1, CLOSING)])
    assert plan.answer == (ch("a", 2, CLOSE),)
    assert plan.channels["a"].progress is Progress.STOPPED
    assert plan.open == plan.close == ()


def test_closing_a_channel_still_opening_answers_at_once_and_cancels_the_open():
    table = merge_heartbeat({}, [ch("a", 0, OPEN)]).channels
    plan = merge_heartbeat(table, [ch("a", 1, CLOSING)])
    assert plan.answer == (ch("a", 2, CLOSE),)
    assert plan.close == ("a",)
    # The opener must not start reading now.
    table, ok = mark_reading(plan.channels, "a")
    assert not ok
    assert table["a"] == ChannelState("a", 2, CLOSE, Progress.STOPPED)


@pytest.mark.parametrize("status", [CLOSE, TERMINATED])
def test_service_close_or_terminate_stops_the_reader_and_is_echoed(status):
    plan = merge_heartbeat({"a": reading("a", 0)}, [ch("a", 1, status)])
    assert plan.close == ("a",)
    assert plan.answer == ()
    assert heartbeat_channels(plan.channels) == [ch("a", 1, status)]
    # The reader's late exit changes nothing.
    assert mark_stopped(plan.channels, "a") == plan.channels
    assert mark_finished(plan.channels, "a") == plan.channels


@pytest.mark.parametrize("status, progress", [(CLOSE, Progress.STOPPED), (TERMINATED, Progress.FINISHED)])
def test_unknown_closed_channels_are_tracked_not_read(status, progress):
    plan = merge_heartbeat({}, [ch("a", 4, status)])
    assert plan.channels["a"] == ChannelState("a", 4, status, progress)
    assert plan.open == plan.close == plan.answer == ()


def test_stale_entry_is_ignored():
    table = {"a": reading("a", 5)}
    plan = merge_heartbeat(table, [ch("a", 4, CLOSING)])
    assert plan.channels == table
    assert plan.keep == ("a",)
    assert plan.close == ()


def test_channel_handed_out_again_after_we_closed_it_is_opened_afresh():
    table = {"a": ChannelState("a", 2, CLOSE, Progress.STOPPED)}
    for version in (2, 3):
        plan = merge_heartbeat(table, [ch("a", version, OPEN)])
        assert plan.open == ("a",)
        assert plan.channels["a"] == ChannelState("a", version, OPEN, Progress.NEW)


def test_finished_channel_handed_out_again_is_opened_afresh():
    # Its checkpoint says "finished", so the reader ends at once; reopening
    # is what the Go SDK does and costs one GetCheckpoint.
    table = {"a": ChannelState("a", 1, TERMINATED, Progress.FINISHED)}
    plan = merge_heartbeat(table, [ch("a", 1, OPEN)])
    assert plan.open == ("a",)


def test_channel_missing_from_the_reply_is_dropped():
    table = {"a": reading("a"), "b": ChannelState("b", 2, CLOSE, Progress.STOPPED)}
    plan = merge_heartbeat(table, [])
    assert plan.channels == {}
    assert set(plan.drop) == {"a", "b"}
    assert heartbeat_channels(plan.channels) == []


def test_mark_reading_only_for_new_open_channels():
    table = merge_heartbeat({}, [ch("a", 0, OPEN)]).channels
    table, ok = mark_reading(table, "a")
    assert ok and table["a"].progress is Progress.READING
    # Twice, or for an unknown id: refused, table unchanged.
    again, ok = mark_reading(table, "a")
    assert not ok and again == table
    unknown, ok = mark_reading(table, "zz")
    assert not ok and unknown == table


def test_late_events_for_dropped_channels_change_nothing():
    assert mark_stopped({}, "a") == {}
    assert mark_finished({}, "a") == {}


def test_functions_never_modify_their_input():
    table = {"a": reading("a")}
    snapshot = dict(table)
    merge_heartbeat(table, [ch("a", 1, CLOSING)])
    mark_stopped(table, "a")
    mark_finished(table, "a")
    mark_reading(table, "a")
    assert table == snapshot


def test_duplicate_ids_in_a_reply_are_rejected():
    with pytest.raises(ConfigError, match="'a' twice"):
        merge_heartbeat({}, [ch("a", 0, OPEN), ch("a", 1, OPEN)])


def test_state_validation_names_the_bad_value():
    with pytest.raises(ConfigError, match="-1"):
        ChannelState("a", -1, OPEN)
    with pytest.raises(ConfigError, match="'BOGUS'"):
        ChannelState("a", 0, "BOGUS")


def test_state_is_plain_data():
    state = ChannelState("a", 3, "CLOSING", "reading")
    assert state.status is CLOSING and state.progress is Progress.READING
    # What a restriction coder would store: strings and ints.
    assert (state.channel_id, state.version, state.status.value, state.progress.value) == (
        "a",
        3,
        "CLOSING",
        "reading",
    )


# --- the Go SDK's state_test.go sequence ------------------------------------


class _Driver:
    """Plays the readers' part: opens succeed unless the id says otherwise."""

    def __init__(self):
        self.table = {}
        self.finished = set()

    def heartbeat(self, reply):
        plan = merge_heartbeat(self.table, reply)
        table = plan.channels
        for cid in plan.open:
            if cid == "cid-getCheckpointFailed":
                table = mark_stopped(table, cid)
                continue
            table, ok = mark_reading(table, cid)
            assert ok
            if cid == "cid-bad":  # the processor fails on the first batch
                table = mark_stopped(table, cid)
        for cid in plan.close:
            table = mark_stopped(table, cid)
        for cid in sorted(self.finished):
            table = mark_finished(table, cid)
        self.table = table

    def live_readers(self):
        return sum(1 for s in self.table.values() if s.active)


_GO_STEPS = [
    (  # two open, two closing
        [ch("cid-1", 0, OPEN), ch("cid-2", 0, OPEN), ch("cid-3", 1, CLOSING), ch("cid-4", 1, CLOSING)],
        [ch("cid-1", 0, OPEN), ch("cid-2", 0, OPEN), ch("cid-3", 2, CLOSE), ch("cid-4", 2, CLOSE)],
        2,
        [],
    ),
    (  # one open, one closing, two new (cid-4 handed back to us)
        [ch("cid-1", 0, OPEN), ch("cid-2", 1, CLOSING), ch("cid-4", 2, OPEN), ch("cid-5", 0, OPEN)],
        [ch("cid-1", 0, OPEN), ch("cid-2", 2, CLOSE), ch("cid-4", 2, OPEN), ch("cid-5", 0, OPEN)],
        3,
        [],
    ),
    (  # three open, one bad new, one new
        [
            ch("cid-1", 0, OPEN),
            ch("cid-4", 2, OPEN),
            ch("cid-5", 0, OPEN),
            ch("cid-bad", 0, OPEN),
            ch("cid-6", 0, OPEN),
        ],
        [
            ch("cid-1", 0, OPEN),
            ch("cid-4", 2, OPEN),
            ch("cid-5", 0, OPEN),
            ch("cid-bad", 1, CLOSE),
            ch("cid-6", 0, OPEN),
        ],
        4,
        [],
    ),
    (  # four open, one old version
        [ch("cid-1", 0, OPEN), ch("cid-4", 1, CLOSING), ch("cid-5", 0, OPEN), ch("cid-6", 0, OPEN)],
        [ch("cid-1", 0, OPEN), ch("cid-4", 2, OPEN), ch("cid-5", 0, OPEN), ch("cid-6", 0, OPEN)],
        4,
        [],
    ),
    (  # four open, one finished
        [ch("cid-1", 0, OPEN), ch("cid-4", 2, OPEN), ch("cid-5", 0, OPEN), ch("cid-6", 0, OPEN)],
        [ch("cid-1", 0, OPEN), ch("cid-4", 2, OPEN), ch("cid-5", 0, OPEN), ch("cid-6", 1, TERMINATED)],
        3,
        ["cid-6"],
    ),
    (  # one missing, one whose GetCheckpoint fails
        [ch("cid-1", 0, OPEN), ch("cid-4", 2, OPEN), ch("cid-getCheckpointFailed", 1, OPEN)],
        [ch("cid-1", 0, OPEN), ch("cid-4", 2, OPEN), ch("cid-getCheckpointFailed", 2, CLOSE)],
        2,
        [],
    ),
    (  # all finished
        [ch("cid-1", 0, OPEN), ch("cid-4", 2, OPEN)],
        [ch("cid-1", 1, TERMINATED), ch("cid-4", 3, TERMINATED)],
        0,
        ["cid-1", "cid-4"],
    ),
]


def test_go_sdk_state_sequence():
    driver = _Driver()
    driver.heartbeat([ch(f"cid-{i}", 0, OPEN) for i in range(1, 5)])
    assert driver.live_readers() == 4
    for step, (reply, expected, live, finished) in enumerate(_GO_STEPS, 1):
        driver.finished = set(finished)
        driver.heartbeat(reply)
        driver.heartbeat(reply)  # asked again, as the Go test does
        assert heartbeat_channels(driver.table) == sorted(expected, key=lambda c: c.channel_id), step
        assert driver.live_readers() == live, step


# --- randomized invariants ---------------------------------------------------

_ids = st.sampled_from(["a", "b", "c"])
_entry = st.builds(ch, _ids, st.integers(0, 6), st.sampled_from([OPEN, CLOSING, CLOSE, TERMINATED]))
_reply = st.lists(_entry, max_size=3, unique_by=lambda c: c.channel_id)
_event = st.tuples(st.sampled_from(["read", "stop", "finish"]), _ids)
_round = st.tuples(_reply, st.lists(_event, max_size=4))


@settings(max_examples=300, deadline=None)
@given(st.lists(_round, max_size=8))
def test_invariants_hold_for_any_sequence(rounds):
    table = {}
    for reply, events in rounds:
        before = table
        plan = merge_heartbeat(table, reply)
        table = plan.channels
        by_id = {c.channel_id: c for c in reply}
        # Exactly the reply's ids survive; nothing else is reported.
        assert set(table) == set(by_id)
        assert set(plan.drop) == set(before) - set(by_id)
        for cid, state in table.items():
            entry, old = by_id[cid], before.get(cid)
            # Versions never go back, and an answer is exactly service v+1.
            assert state.version >= entry.version
            if old is not None:
                assert state.version >= old.version
            assert state.version <= max(entry.version + 1, old.version if old else 0)
            if state.active:
                assert state.status in (OPEN, CLOSING)
        for cid in plan.open:
            assert table[cid].progress is Progress.NEW and table[cid].status is OPEN
        for answer in plan.answer:
            assert answer.version == by_id[answer.channel_id].version + 1
            assert answer.status in (CLOSE, TERMINATED)
        for kind, cid in events:
            old = table.get(cid)
            if kind == "read":
                table, _ = mark_reading(table, cid)
            elif kind == "stop":
                table = mark_stopped(table, cid)
            else:
                table = mark_finished(table, cid)
            new = table.get(cid)
            if old is not None and old.active and kind != "read":
                assert new.version == old.version + 1 and not new.active
            elif kind != "read":
                assert new == old
