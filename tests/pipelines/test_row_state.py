"""The per-row rules of sync_table (pipelines/_row_state.py): order by
sequence, full data lowest, column puts and deletes as the service applies
them to a one-version table."""

from __future__ import annotations

from beam_tunnel.protocol.rows import SequenceInfo
from beam_tunnel.records import Action, ChangeRecord, Column, ColumnOp
from pipelines._row_state import FULL_DATA_ORDER, RowState, apply_change

_KEY = (("id", "a"),)


def _record(action, columns=(), sequence=None):
    seq = None if sequence is None else SequenceInfo(*sequence)
    return ChangeRecord(action, _KEY, tuple(columns), (), seq, "channel-0")


def _put(name, value, ts):
    return Column(name, value, ts, ColumnOp.PUT)


def test_full_data_fills_a_new_row_and_never_overwrites_a_change():
    state = RowState()
    assert apply_change(state, _record(Action.PUT, [_put("x", 1, 100)]))
    assert state.exists and state.values == {"x": 1} and state.order == FULL_DATA_ORDER
    assert not apply_change(state, _record(Action.PUT, [_put("x", 1, 100)])), "a replayed full-data record"
    assert apply_change(state, _record(Action.UPDATE, [_put("x", 2, 200)], (0, 10, 0)))
    assert not apply_change(state, _record(Action.PUT, [_put("x", 1, 100)])), "full data after a change"
    assert state.values == {"x": 2}


def test_replayed_and_older_changes_are_skipped_a_later_epoch_wins():
    state = RowState()
    assert apply_change(state, _record(Action.PUT, [_put("x", 1, 1)], (0, 10, 1)))
    assert not apply_change(state, _record(Action.PUT, [_put("x", 9, 1)], (0, 10, 1)))
    assert not apply_change(state, _record(Action.PUT, [_put("x", 9, 1)], (0, 10, 0)))
    assert apply_change(state, _record(Action.UPDATE, [_put("y", 2, 2)], (0, 10, 2)))
    assert apply_change(state, _record(Action.UPDATE, [_put("y", 3, 3)], (1, 5, 0))), "a split child's epoch"
    assert state.values == {"x": 1, "y": 3}


def test_update_puts_and_deletes_only_its_columns():
    state = RowState()
    apply_change(state, _record(Action.PUT, [_put("x", 1, 100), _put("y", "b", 100), _put("z", 1.5, 100)], (0, 1, 0)))
    apply_change(state, _record(Action.UPDATE, [
        _put("x", 0, 50),  # an older explicit version: the newer stays visible
        Column("y", None, 99, ColumnOp.DELETE_ONE_VERSION),  # not the version held: no effect
        Column("z", None, None, ColumnOp.DELETE_ALL_VERSIONS),
        _put("w", b"\x00", 120),
    ], (0, 2, 0)))
    assert state.values == {"x": 1, "y": "b", "w": b"\x00"}
    apply_change(state, _record(Action.UPDATE, [Column("y", None, 100, ColumnOp.DELETE_ONE_VERSION)], (0, 3, 0)))
    assert state.values == {"x": 1, "w": b"\x00"}
    assert state.exists


def test_delete_leaves_a_tombstone_and_an_update_of_a_missing_row_needs_a_column():
    state = RowState()
    apply_change(state, _record(Action.PUT, [_put("x", 1, 1)], (0, 1, 0)))
    apply_change(state, _record(Action.DELETE, [], (0, 2, 0)))
    assert not state.exists and state.values == {} and state.order == (0, 2, 0)
    assert not apply_change(state, _record(Action.PUT, [_put("x", 1, 1)])), "full data cannot resurrect it"
    apply_change(state, _record(Action.UPDATE, [Column("x", None, None, ColumnOp.DELETE_ALL_VERSIONS)], (0, 3, 0)))
    assert not state.exists, "only deletes on a missing row: it stays missing"
    apply_change(state, _record(Action.UPDATE, [_put("x", 5, 5)], (0, 4, 0)))
    assert state.exists and state.values == {"x": 5}
