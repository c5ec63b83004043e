"""How one change record moves one row of the target: pure, no database.

The target keeps, per source row, the newest version of each column (its
value and its cell timestamp) and the order of the last change applied.
A change applies only when its order is above the stored one, so a replayed
change (after a restart or a retried bundle) is skipped. The order of a stream
record is its sequence ``(epoch, timestamp, row_index)``, the protocol's order
within a partition (a split child's epoch is above its parent's, so a row that
moves to another partition keeps increasing); a full-data record has no
sequence and gets :data:`FULL_DATA_ORDER`, the lowest: it fills a row the
target has never seen and never overwrites anything a stream change wrote
(a deleted row keeps its order as a tombstone for the same reason).

Column rules, as the service applies them to a table that keeps one version
per column (``max_versions`` 1, the default):

* put: the row becomes exactly the record's columns;
* update, column put: the value replaces the stored one unless the stored
  version is newer (a put with an older explicit timestamp is invisible);
* update, delete one version: removes the column when that version is the
  stored one (with ``max_versions`` > 1 the service would then show an older
  version, which no change record carries, so the target cannot follow);
* update, delete all versions: removes the column;
* an update of a missing row creates it only when some column is left;
* delete: the row goes (its order stays, as a tombstone).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Tuple

from beam_tunnel.records import Action, ChangeRecord, ColumnOp

__all__ = ["FULL_DATA_ORDER", "RowState", "order_of", "apply_change"]

Order = Tuple[int, int, int]

FULL_DATA_ORDER: Order = (-1, -1, -1)
"""The order of a full-data record: below every stream sequence."""


@dataclasses.dataclass
class RowState:
    """One row as the target holds it.

    Attributes:
      exists: the row exists (False: never seen, or deleted).
      values: column name -> value (absent columns are not there).
      versions: column name -> cell timestamp (ms) of the stored value.
      order: the order of the last change applied; None when none was.
    """

    exists: bool = False
    values: Dict[str, Any] = dataclasses.field(default_factory=dict)
    versions: Dict[str, Optional[int]] = dataclasses.field(default_factory=dict)
    order: Optional[Order] = None


def order_of(record: ChangeRecord) -> Order:
    """The record's place in its row's history (see the module docstring)."""
    sequence = record.sequence
    return FULL_DATA_ORDER if sequence is None else (sequence.epoch, sequence.timestamp, sequence.row_index)


def _newer_or_same(timestamp: Optional[int], stored: Optional[int]) -> bool:
    return timestamp is None or stored is None or timestamp >= stored


def apply_change(state: RowState, record: ChangeRecord) -> bool:
    """Apply ``record`` to ``state`` in place; False (and no change) when
    the state already holds this change or a later one."""
    order = order_of(record)
    if state.order is not None and order <= state.order:
        return False
    state.order = order
    if record.action is Action.DELETE:
        state.exists = False
        state.values, state.versions = {}, {}
        return True
    if record.action is Action.PUT:
        state.exists = True
        state.values, state.versions = {}, {}
    for column in record.columns:
        name, stored = column.name, state.versions.get(column.name)
        if column.op is ColumnOp.PUT:
            if name not in state.values or _newer_or_same(column.timestamp_ms, stored):
                state.values[name] = column.value
                state.versions[name] = column.timestamp_ms
        elif column.op is ColumnOp.DELETE_ALL_VERSIONS or (
            column.op is ColumnOp.DELETE_ONE_VERSION and name in state.values and column.timestamp_ms == stored
        ):
            state.values.pop(name, None)
            state.versions.pop(name, None)
    if not state.exists and state.values:
        state.exists = True  # an update creates a missing row when a column is left
    return True
