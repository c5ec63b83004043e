"""Table metadata: what DescribeTable shows, how it is checked and stored.

Validation follows the real service's rules where they are documented
(1-4 key columns, TTL of -1 or at least a day, stream retention 1-168
hours); every refusal is an OTSParameterInvalid naming the bad value.
"""

from __future__ import annotations

import json
from typing import FrozenSet, NamedTuple, Optional, Sequence, Tuple

from .. import errors
from .keys import PK_TYPES, PkColumn, check_primary_key, sort_value
from .partitions import PartitionMap
from .versions import check_name

__all__ = [
    "StreamSpec", "StreamInfo", "TableInfo", "TableState", "info_to_json", "info_from_json",
    "check_schema", "check_defined", "check_options", "check_split_points", "next_stream_info",
]

_MAX_PK_COLUMNS = 4  # the real service's limit
_TTL_MIN_S = 86400  # the real service refuses shorter (non-forever) TTLs
_STREAM_HOURS = (1, 168)
_DEFINED_TYPES = ("INTEGER", "DOUBLE", "BOOLEAN", "STRING", "BINARY")


class StreamSpec(NamedTuple):
    """Requested stream settings (CreateTable / UpdateTable).

    Attributes:
      enabled: turn the stream on or off.
      expiration_hours: log retention, 1..168 hours; required to enable.
      columns_to_get: columns whose old values each record carries as its
        before-image (``origin_record``).
    """

    enabled: bool
    expiration_hours: Optional[int] = None
    columns_to_get: Tuple[str, ...] = ()


class StreamInfo(NamedTuple):
    """A table's stream as DescribeTable shows it."""

    enabled: bool = False
    stream_id: Optional[str] = None
    expiration_hours: int = 0
    last_enable_us: Optional[int] = None
    columns_to_get: Tuple[str, ...] = ()


class TableInfo(NamedTuple):
    """Everything DescribeTable reports about a table."""

    name: str
    primary_key: Tuple[PkColumn, ...]
    defined_columns: Tuple[Tuple[str, str], ...] = ()
    time_to_live: int = -1  # seconds; -1 = forever
    max_versions: int = 1
    deviation_s: int = 86400
    allow_update: bool = True
    reserved_read: int = 0
    reserved_write: int = 0
    throughput_changed_s: int = 0  # seconds since the epoch
    created_us: int = 0
    stream: StreamInfo = StreamInfo()
    split_points: Tuple = ()  # first-column values where partitions begin


class TableState(NamedTuple):
    """What the table backend caches of one table, replaced wholesale on any
    change (so readers never see a half-updated one).

    Attributes:
      table_id: the row id in ``tbl_tables`` (the key of its rows).
      info: the table as DescribeTable shows it.
      key_names: names of the primary-key columns; kept beside ``info``
        because every written cell is checked against them.
      partitions: the table's partitions, with write routing.
    """

    table_id: int
    info: TableInfo
    key_names: FrozenSet[str]
    partitions: PartitionMap


def info_to_json(info: TableInfo) -> str:
    """TableInfo as stored in tbl_tables (split points live in tbl_partitions)."""
    data = info._asdict()
    data.pop("split_points")
    data["primary_key"] = [list(c) for c in info.primary_key]
    data["defined_columns"] = [list(c) for c in info.defined_columns]
    data["stream"] = info.stream._asdict()
    data["stream"]["columns_to_get"] = list(info.stream.columns_to_get)
    return json.dumps(data, sort_keys=True)


def info_from_json(text: str) -> TableInfo:
    """Inverse of :func:`info_to_json` (split_points left empty)."""
    data = json.loads(text)
    data["primary_key"] = tuple(PkColumn(*c) for c in data["primary_key"])
    data["defined_columns"] = tuple(tuple(c) for c in data["defined_columns"])
    stream = data["stream"]
    stream["columns_to_get"] = tuple(stream["columns_to_get"])
    data["stream"] = StreamInfo(**stream)
    return TableInfo(**data)


def check_schema(primary_key: Sequence[PkColumn]) -> Tuple[PkColumn, ...]:
    """Checked key columns: 1-4, named, typed; AUTO_INCREMENT on one non-first INTEGER."""
    schema = tuple(PkColumn(*c) for c in primary_key)
    if not 1 <= len(schema) <= _MAX_PK_COLUMNS:
        raise errors.parameter_invalid(
            f"A table needs 1 to {_MAX_PK_COLUMNS} primary-key columns, got {len(schema)}."
        )
    seen = set()
    for position, column in enumerate(schema):
        check_name("primary-key column", column.name)
        if column.name in seen:
            raise errors.parameter_invalid(f"Duplicate primary-key column {column.name!r}.")
        seen.add(column.name)
        if column.type not in PK_TYPES:
            raise errors.parameter_invalid(
                f"Primary-key column {column.name!r} has type {column.type!r}; expected one of {PK_TYPES}."
            )
        if column.auto_increment and (column.type != "INTEGER" or position == 0):
            raise errors.parameter_invalid(
                f"AUTO_INCREMENT column {column.name!r} must be an INTEGER and not the first (partition) column."
            )
    if sum(c.auto_increment for c in schema) > 1:
        raise errors.parameter_invalid("A table may have at most one AUTO_INCREMENT column.")
    return schema


def check_defined(defined_columns, schema) -> Tuple[Tuple[str, str], ...]:
    """Checked (name, type) predefined columns, named unlike the key columns."""
    out = []
    for name, kind in defined_columns:
        check_name("defined column", name)
        if kind not in _DEFINED_TYPES or any(c.name == name for c in schema):
            raise errors.parameter_invalid(
                f"Defined column {name!r} of type {kind!r} is invalid (types: {_DEFINED_TYPES}, "
                "and names must differ from the primary-key columns)."
            )
        out.append((name, kind))
    return tuple(out)


def check_options(time_to_live, max_versions, deviation_s) -> None:
    """Refuse table options the service refuses."""
    if isinstance(time_to_live, bool) or not isinstance(time_to_live, int) or (
        time_to_live != -1 and time_to_live < _TTL_MIN_S
    ):
        raise errors.parameter_invalid(
            f"time_to_live must be -1 (forever) or at least {_TTL_MIN_S} seconds, got {time_to_live!r}."
        )
    if isinstance(max_versions, bool) or not isinstance(max_versions, int) or max_versions < 1:
        raise errors.parameter_invalid(f"max_versions must be a positive integer, got {max_versions!r}.")
    if isinstance(deviation_s, bool) or not isinstance(deviation_s, int) or deviation_s < 1:
        raise errors.parameter_invalid(f"deviation_cell_version_in_sec must be positive, got {deviation_s!r}.")


def check_split_points(schema, split_points) -> Tuple:
    """Checked split points: values of the first key column, strictly increasing."""
    first = schema[0]
    points = tuple(split_points)
    for value in points:
        check_primary_key((first,), ((first.name, value),))
    keys = [sort_value(v) for v in points]
    if any(a >= b for a, b in zip(keys, keys[1:])):
        raise errors.parameter_invalid(f"Split points must be strictly increasing, got {points!r:.300}.")
    return points


def next_stream_info(name: str, current: StreamInfo, spec: StreamSpec, now_us: int) -> StreamInfo:
    """The stream after applying ``spec`` to ``current`` at ``now_us``.

    Enabling a disabled stream starts a new stream id ``<table>_<µs>``;
    changing an enabled one keeps its id and enable time.
    """
    if not spec.enabled:
        return StreamInfo()
    hours = spec.expiration_hours
    if hours is None:
        if not current.enabled:
            raise errors.parameter_invalid("expiration_time (hours) is required to enable the stream.")
        hours = current.expiration_hours
    if isinstance(hours, bool) or not isinstance(hours, int) or not _STREAM_HOURS[0] <= hours <= _STREAM_HOURS[1]:
        raise errors.parameter_invalid(
            f"Stream expiration_time must be {_STREAM_HOURS[0]}..{_STREAM_HOURS[1]} hours, got {hours!r}."
        )
    columns = tuple(check_name("stream column", c) for c in spec.columns_to_get)
    if current.enabled:
        return current._replace(expiration_hours=hours, columns_to_get=columns)
    return StreamInfo(True, f"{name}_{now_us}", hours, now_us, columns)
