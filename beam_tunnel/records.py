"""The change records a tunnel delivers, as typed immutable values.

A tunnel ``ReadRecords`` answer carries protobuf ``Record`` messages, each an
action type plus PlainBuffer bytes. :func:`decode_records` turns a batch of
them into :class:`ChangeRecord` values in one pass; everything else here is
the vocabulary of those values.

Full-data records (read while a tunnel scans the table) carry no sequence
info: their ``sequence`` and ``write_time_us`` are ``None`` and
``is_full_data`` is True. Stream records carry the position of the change in
its partition's log; ``write_time_us`` is the log write time in microseconds.

All types here are immutable NamedTuples: cheap to build, picklable, equal
by value. Usage::

    for record in decode_records(response.records, channel_id):
        if record.action is Action.DELETE:
            cache.pop(tuple(record.key.values()), None)
        else:
            cache[tuple(record.key.values())] = {c.name: c.value for c in record.columns}
"""

from __future__ import annotations

import base64
import enum
import math
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Tuple

from beam_tunnel.errors import PlainBufferError, ProtocolError
from beam_tunnel.protocol import _pbdecode
from beam_tunnel.protocol.rows import CellOp, PrimaryKey, SequenceInfo, Value

__all__ = [
    "Action",
    "ColumnOp",
    "Column",
    "ChangeRecord",
    "CorruptRecord",
    "decode_records",
    "decode_records_keeping_corrupt",
]


class Action(str, enum.Enum):
    """What happened to the row (the tunnel ``ActionType``)."""

    PUT = "put"
    """The row was written whole (PutRow); also every full-data record."""
    UPDATE = "update"
    """Some columns were put or deleted (UpdateRow)."""
    DELETE = "delete"
    """The row was deleted (DeleteRow); ``columns`` is empty."""


class ColumnOp(str, enum.Enum):
    """What a change did to one column."""

    PUT = "put"
    """A value was written at ``timestamp_ms``."""
    DELETE_ONE_VERSION = "delete_one_version"
    """The version at ``timestamp_ms`` was deleted; there is no value."""
    DELETE_ALL_VERSIONS = "delete_all_versions"
    """Every version was deleted; there is no value and no timestamp."""


class Column(NamedTuple):
    """One column of a change.

    Attributes:
      name: the column name.
      value: int, float, bool, str or bytes; None for deletes.
      timestamp_ms: the cell version, milliseconds since the epoch; None for
        DELETE_ALL_VERSIONS.
      op: what the change did to the column.
    """

    name: str
    value: Optional[Value]
    timestamp_ms: Optional[int]
    op: ColumnOp = ColumnOp.PUT


class ChangeRecord(NamedTuple):
    """One change to one row, as a tunnel delivers it.

    Attributes:
      action: PUT, UPDATE or DELETE.
      primary_key: (name, value) pairs in key order.
      columns: the changed columns (all columns of a put), in wire order.
      origin_columns: the before-image of the columns the table's stream
        spec asks for (``origin_record``); empty when the service sent none.
      sequence: the record's position in its partition's log; None for
        full-data records.
      channel_id: the tunnel channel the record came from.
    """

    action: Action
    primary_key: PrimaryKey
    columns: Tuple[Column, ...]
    origin_columns: Tuple[Column, ...]
    sequence: Optional[SequenceInfo]
    channel_id: str

    @property
    def key(self) -> Dict[str, Value]:
        """The primary key as a new dict, in key order."""
        return dict(self.primary_key)

    @property
    def write_time_us(self) -> Optional[int]:
        """When the change was written to the stream log, in microseconds
        since the epoch; None for full-data records."""
        sequence = self.sequence
        return None if sequence is None else sequence.timestamp

    @property
    def is_full_data(self) -> bool:
        """True for records of the full-data phase (no sequence info)."""
        return self.sequence is None

    def to_dict(self) -> Dict[str, Any]:
        """Plain values that ``json.dumps`` accepts.

        Conventions (those of the protobuf JSON mapping): bytes become
        standard base64 text with padding, and non-finite floats the strings
        ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``. So a str and a bytes
        value can look alike here; read the record's fields when the type
        matters. Integers stay numbers (beyond 2**53 JavaScript loses
        precision). ``sequence`` holds the ``"%08x:%016x:%08x"`` id (which
        sorts like the records) and its three numbers; it is None for
        full-data records.

        Returns:
          A new dict with keys channel_id, action, primary_key (an ordered
          object), columns, origin_columns, sequence, write_time_us and
          is_full_data.
        """
        sequence = self.sequence
        return {
            "channel_id": self.channel_id,
            "action": self.action.value,
            "primary_key": {name: _plain(value) for name, value in self.primary_key},
            "columns": [_column_dict(column) for column in self.columns],
            "origin_columns": [_column_dict(column) for column in self.origin_columns],
            "sequence": None
            if sequence is None
            else {
                "id": str(sequence),
                "epoch": sequence.epoch,
                "timestamp_us": sequence.timestamp,
                "row_index": sequence.row_index,
            },
            "write_time_us": self.write_time_us,
            "is_full_data": sequence is None,
        }


def _column_dict(column: Column) -> Dict[str, Any]:
    return {
        "name": column.name,
        "value": _plain(column.value),
        "timestamp_ms": column.timestamp_ms,
        "op": column.op.value,
    }


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if value is None or isinstance(value, (str, int, float)):
        return value
    return repr(value)  # INF_MIN / INF_MAX / AUTO_INCREMENT never reach records


# Tunnel ActionType numbers (tunnel.proto).
_ACTIONS = {1: Action.PUT, 2: Action.UPDATE, 3: Action.DELETE}
# CELL_TYPE byte -> op for records. INCREMENT (0x04) is left out on purpose:
# the service logs the result of an increment as a put, so a record carrying
# one is malformed and the decoder refuses it.
_RECORD_OPS = {
    int(CellOp.DELETE_ALL_VERSIONS): ColumnOp.DELETE_ALL_VERSIONS,
    int(CellOp.DELETE_ONE_VERSION): ColumnOp.DELETE_ONE_VERSION,
}
_new_tuple = tuple.__new__


def decode_records(pb_records: Iterable[Any], channel_id: str) -> List[ChangeRecord]:
    """Decode the ``records`` of one ``ReadRecordsResponse``.

    Args:
      pb_records: the repeated ``records`` field of a parsed
        ``tunnel_pb2.ReadRecordsResponse``.
      channel_id: the channel the batch was read from; copied into each record.

    Returns:
      One ChangeRecord per Record, in order.

    Raises:
      PlainBufferError: a ``record`` or ``origin_record`` is corrupt; the
        message names the record's index in the batch, the field and the
        channel, and ``offset``/``cell`` locate the fault inside the field.
        A column with an op tunnel records never carry (INCREMENT) is
        reported the same way.
      ProtocolError: a record without an action type this client knows.
    """
    pb_records = list(pb_records)
    actions = []
    for pb_record in pb_records:
        action = _ACTIONS.get(pb_record.action_type)
        # proto2 enums are closed: a value this client does not know is parked
        # with the unknown fields and the field reads as its default, PUT_ROW.
        if action is None or (action is Action.PUT and not pb_record.HasField("action_type")):
            break
        actions.append(action)
    # Records before the first unknown action are decoded in one call; the
    # errors come in the order a record-by-record pass would meet them:
    # record i's action, then its record, then its origin_record.
    known = len(actions)
    try:
        rows = _pbdecode.decode_many(
            [pb_record.record for pb_record in pb_records[:known]], False, True, Column, _RECORD_OPS, ColumnOp.PUT, tuple
        )
    except _pbdecode.Failure as failure:
        _origin_columns(pb_records[: failure.index], channel_id)
        raise _record_error(failure, failure.index, "record", channel_id) from None
    origins = _origin_columns(pb_records[:known], channel_id)
    if known < len(pb_records):
        raise ProtocolError(
            f"record {known} of the batch from channel {channel_id!r} has no action_type this client "
            "knows (missing, or a newer action)"
        )
    new = _new_tuple
    return [
        new(ChangeRecord, (action, row[0], row[1], origin, row[3], channel_id))
        for action, row, origin in zip(actions, rows, origins)
    ]


def _origin_columns(pb_records: List[Any], channel_id: str) -> List[Tuple[Column, ...]]:
    """The before-image columns of each record (empty when it has none)."""
    origins: List[Tuple[Column, ...]] = [()] * len(pb_records)
    for index, pb_record in enumerate(pb_records):
        origin = pb_record.origin_record
        if origin:
            try:
                origins[index] = _pbdecode.decode(origin, True, True, Column, _RECORD_OPS, ColumnOp.PUT)[0].cells
            except _pbdecode.Failure as failure:
                raise _record_error(failure, index, "origin_record", channel_id) from None
    return origins


def _record_error(failure: "_pbdecode.Failure", index: int, field: str, channel_id: str) -> PlainBufferError:
    return PlainBufferError(
        f"record {index} of the batch from channel {channel_id!r}, field {field}: {failure.message}",
        offset=failure.offset,
        cell=failure.cell,
    )


class CorruptRecord(NamedTuple):
    """A record of a ReadRecords answer that could not be decoded.

    Kept whole so nothing is lost: a dead-letter output can store it and a
    fixed decoder can read it again.

    Attributes:
      channel_id: the channel it came from.
      token: the token the batch was read from (read it again with this).
      index: its index in that batch.
      action_type: the wire ActionType number (1 put, 2 update, 3 delete),
        or None when absent.
      record: the raw PlainBuffer bytes of the row.
      origin_record: the raw bytes of the before-image (b"" when none).
      error: why decoding failed.
    """

    channel_id: str
    token: str
    index: int
    action_type: Optional[int]
    record: bytes
    origin_record: bytes
    error: str


def decode_records_keeping_corrupt(
    pb_records: Iterable[Any], channel_id: str, token: str
) -> Tuple[List[ChangeRecord], List[CorruptRecord]]:
    """Like :func:`decode_records`, but undecodable records are returned as
    :class:`CorruptRecord` values instead of failing the batch.

    The fast path decodes the batch at once; only a batch with a bad record
    is decoded again record by record.
    """
    pb_records = list(pb_records)
    try:
        return decode_records(pb_records, channel_id), []
    except (PlainBufferError, ProtocolError):
        pass
    good: List[ChangeRecord] = []
    bad: List[CorruptRecord] = []
    for index, pb_record in enumerate(pb_records):
        try:
            good.extend(decode_records([pb_record], channel_id))
        except (PlainBufferError, ProtocolError) as error:
            action = pb_record.action_type if pb_record.HasField("action_type") else None
            bad.append(CorruptRecord(
                channel_id, token, index, action, bytes(pb_record.record), bytes(pb_record.origin_record),
                str(error).replace("record 0 of the batch", f"record {index} of the batch"),
            ))
    return good, bad
