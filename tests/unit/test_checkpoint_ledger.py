"""The pure checkpoint sequence rule (beam_tunnel.worker.checkpoints):
stored + 1, one more per accepted commit, resync after a mismatch, and never
backwards (stale and repeated commits are dropped)."""

import pytest

from beam_tunnel.errors import ConfigError
from beam_tunnel.worker.checkpoints import CheckpointLedger, CheckpointRequest


def test_first_commit_sends_stored_plus_one():
    ledger = CheckpointLedger.from_stored("t0", 0)
    assert ledger.request("t1", 1) == CheckpointRequest("t1", 1, 1)
    assert CheckpointLedger.from_stored("tX", 41).request("t1", 1).sequence_number == 42


def test_each_accepted_commit_moves_the_sequence_by_one():
    ledger = CheckpointLedger.from_stored("t0", 7)
    sequences = []
    for position in (1, 2, 5):
        request = ledger.request(f"t{position}", position)
        sequences.append(request.sequence_number)
        ledger = ledger.committed(request)
    assert sequences == [8, 9, 10]
    assert ledger == CheckpointLedger("t5", 11, 5)


def test_stale_and_repeated_commits_are_dropped():
    ledger = CheckpointLedger.from_stored("t0", 0).committed(CheckpointRequest("t3", 1, 3))
    assert ledger.request("t2", 2) is None  # behind the committed position
    assert ledger.request("t3b", 3) is None  # at it
    assert ledger.request("t3", 4) is None  # same token: nothing new to store
    assert ledger.request("t4", 4) == CheckpointRequest("t4", 2, 4)


def test_a_late_answer_for_an_older_commit_does_not_move_the_ledger_back():
    ledger = CheckpointLedger.from_stored("t0", 0)
    old = ledger.request("t1", 1)
    ledger = ledger.committed(ledger.request("t2", 2)._replace(sequence_number=2))
    assert ledger.committed(old) == ledger


def test_resync_takes_the_service_sequence_and_keeps_our_position():
    ledger = CheckpointLedger.from_stored("t0", 3).committed(CheckpointRequest("t4", 4, 4))
    # Someone else committed twice meanwhile: we were told stored = 6.
    resynced = ledger.resynced("other", 6)
    assert resynced == CheckpointLedger("other", 7, 4)
    assert resynced.request("t3", 3) is None
    assert resynced.request("t5", 5).sequence_number == 7


def test_finished_token_is_committed_like_any_other():
    ledger = CheckpointLedger.from_stored("t0", 0)
    assert ledger.request("finished", 9) == CheckpointRequest("finished", 1, 9)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: CheckpointLedger.from_stored("t", -1), "stored sequence_number must be an int >= 0, got -1"),
        (lambda: CheckpointLedger("t", 1).request("u", -2), "checkpoint position must be an int >= 0, got -2"),
        (lambda: CheckpointLedger(None, 1), "token must be a string, got None"),
        (lambda: CheckpointLedger("t", True), "next_sequence must be an int >= 0, got True"),
    ],
)
def test_validation_names_the_bad_value(make, message):
    with pytest.raises(ConfigError) as err:
        make()
    assert message in str(err.value)
