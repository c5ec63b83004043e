"""SqlTarget (pipelines/_sql_target.py) on SQLite: bad arguments are named,
a batch applied twice changes nothing, a value of another type than its
column stops with the row and column named and leaves the target as it was."""

from __future__ import annotations

import pytest

from beam_tunnel.errors import ConfigError
from beam_tunnel.protocol.rows import SequenceInfo
from beam_tunnel.records import Action, ChangeRecord, Column, ColumnOp
from pipelines._sql_target import ColumnTypeError, SqlTarget

_KEYS = (("region", "STRING"), ("order_id", "INTEGER"))


def _put(key, seq, **columns):
    cells = tuple(Column(name, value, 1000, ColumnOp.PUT) for name, value in columns.items())
    return ChangeRecord(Action.PUT, (("region", key[0]), ("order_id", key[1])), cells, (),
                        SequenceInfo(0, seq, 0), "c")


@pytest.mark.parametrize("url, table, keys, message", [
    ("", "t", _KEYS, "url must be a SQLAlchemy URL"),
    ("not a url", "t", _KEYS, "'not a url' is not a SQLAlchemy URL"),
    ("sqlite://", "", _KEYS, "table must be a non-empty string"),
    ("sqlite://", "t", (("id", "DOUBLE"),), "key_schema must be (name, INTEGER|STRING|BINARY) pairs"),
    ("sqlite://", "t", (("sync_epoch", "STRING"),), "clash with the sync state's own columns"),
])
def test_bad_arguments_are_named(url, table, keys, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("|", r"\|")):
        SqlTarget(url, table, keys)


def test_batch_applied_twice_changes_nothing(tmp_path):
    with SqlTarget(f"sqlite:///{tmp_path / 't.db'}", "orders", _KEYS) as target:
        batch = [_put(("eu", 1), 10, status="new", amount=2.5), _put(("us", 2), 11, paid=True, blob=b"\x01")]
        assert target.apply(batch) == 2
        first = target.rows()
        assert target.apply(batch) == 0
        assert target.rows() == first == {("eu", 1): {"status": "new", "amount": 2.5},
                                          ("us", 2): {"paid": True, "blob": b"\x01"}}


def test_a_value_of_another_type_names_row_and_column_and_changes_nothing(tmp_path):
    with SqlTarget(f"sqlite:///{tmp_path / 't.db'}", "orders", _KEYS) as target:
        target.apply([_put(("eu", 1), 10, qty=3)])
        with pytest.raises(ColumnTypeError, match=r"column 'qty' .* holds int values, but row "
                                                  r"\{'region': 'eu', 'order_id': 2\} has 'three' \(str\)"):
            target.apply([_put(("eu", 2), 11, qty="three", note="x")])
        assert target.rows() == {("eu", 1): {"qty": 3}}
        assert target.apply([_put(("eu", 2), 11, qty=4, note="x")]) == 1, "the column list was not polluted"
        assert target.rows()[("eu", 2)] == {"qty": 4, "note": "x"}


def test_a_key_that_does_not_match_is_named(tmp_path):
    record = ChangeRecord(Action.PUT, (("id", "x"),), (), (), SequenceInfo(0, 1, 0), "chan-7")
    with SqlTarget(f"sqlite:///{tmp_path / 't.db'}", "orders", _KEYS) as target:
        with pytest.raises(ValueError, match=r"channel 'chan-7' has primary key \(\('id', 'x'\),\)"):
            target.apply([record])
