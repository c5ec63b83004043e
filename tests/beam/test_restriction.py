"""The reader-slot restriction: coder round trips and determinism, and the
checkpoint-only tracker."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beam_tunnel.beam._restriction import ChannelCursor, SlotRestriction, SlotRestrictionCoder, SlotTracker
from beam_tunnel.client.models import ChannelStatus
from beam_tunnel.worker.channels import ChannelState, Progress

_text = st.text(min_size=1, max_size=30)
_times = st.one_of(st.none(), st.floats(min_value=0, max_value=4e9, allow_nan=False))
_cursors = st.builds(
    ChannelCursor,
    state=st.builds(ChannelState, _text, st.integers(0, 2**40), st.sampled_from(list(ChannelStatus)[1:]),
                    st.sampled_from(list(Progress))),
    token=st.one_of(st.none(), st.text(max_size=200)),
    opened_ms=st.integers(0, 2**45),
    batches=st.integers(0, 2**30),
    stopped=st.booleans(),
    closing_since=_times,
    owes_answer=st.booleans(),
)
_slots = st.builds(
    SlotRestriction,
    tunnel_id=_text,
    slot=st.integers(0, 1000),
    client_id=st.text(max_size=40),
    last_heartbeat=_times,
    last_answered=_times,
    channels=st.lists(_cursors, max_size=6, unique_by=lambda c: c.channel_id).map(
        lambda cs: tuple(sorted(cs, key=lambda c: c.channel_id))),
    waiting_since=_times,
    done=st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(_slots)
def test_coder_round_trips_every_restriction(slot):
    coder = SlotRestrictionCoder()
    encoded = coder.encode(slot)
    assert coder.decode(encoded) == slot
    assert coder.encode(coder.decode(encoded)) == encoded, "deterministic: same value, same bytes"


def test_coder_is_deterministic_and_compact():
    coder = SlotRestrictionCoder()
    assert coder.is_deterministic()
    state = ChannelState("channel-1", 3, ChannelStatus.OPEN, Progress.READING)
    slot = SlotRestriction("tunnel", 0, "client", 1.5, 1.5, (ChannelCursor(state, "token", 1, 2),))
    assert len(coder.encode(slot)) < 150


@pytest.mark.parametrize("garbage", [b"", b"{}", b"[2]", b"\xff\xfe", b'[1,"t",0,"c",null,null,null,false,[[1]]]'])
def test_coder_refuses_garbage_with_a_clear_error(garbage):
    with pytest.raises(ValueError, match="not an encoded reader-slot restriction"):
        SlotRestrictionCoder().decode(garbage)


def test_tracker_claims_states_and_splits_only_at_a_checkpoint():
    slot = SlotRestriction("tunnel", 2)
    tracker = SlotTracker(slot, bounded=False)
    later = dataclasses.replace(slot, client_id="client")
    assert tracker.try_claim(later)
    assert tracker.current_restriction() == later
    assert tracker.try_split(0.5) is None, "a token cursor cannot be split by fraction"
    primary, residual = tracker.try_split(0)
    assert primary.done and not residual.done and residual == later
    assert not tracker.try_claim(dataclasses.replace(later, client_id="other")), "nothing after a checkpoint"
    tracker.check_done()
    assert not tracker.is_bounded()


def test_tracker_check_done_names_an_unfinished_slot():
    tracker = SlotTracker(SlotRestriction("tunnel-x", 4), bounded=True)
    with pytest.raises(ValueError, match="slot 4.*tunnel-x.*without finishing or checkpointing"):
        tracker.check_done()
    assert tracker.is_bounded()


def test_tracker_refuses_a_state_of_another_slot():
    tracker = SlotTracker(SlotRestriction("tunnel", 0), bounded=False)
    with pytest.raises(ValueError, match="cannot claim slot 1"):
        tracker.try_claim(SlotRestriction("tunnel", 1))
