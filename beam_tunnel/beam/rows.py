"""Schema'd rows from change records, so Beam SQL and DataFrames can read them.

:class:`ToRows` turns a ``PCollection[ChangeRecord]`` into a PCollection of
NamedTuple rows with a Beam schema (encoded by Beam's ``RowCoder``), which
``apache_beam.dataframe.convert.to_dataframe`` and ``SqlTransform`` accept.
A row holds, in this order:

==================================  =================================================
field                               value
==================================  =================================================
one per key column (typed)          the primary key: INTEGER -> int, STRING -> str,
                                    BINARY -> bytes
``action``                          ``"put"``, ``"update"`` or ``"delete"``
``write_time_us``                   Optional[int]; None for full-data records
``is_full_data``                    bool
``channel_id``                      str
``sequence_epoch``,                 Optional[int] each: the record's ``sequence``
``sequence_timestamp_us``,          flattened; None for full-data records
``sequence_row_index``
one per ``value_columns`` entry     Optional[T]: the value the change put, when it
                                    has the declared type; else None
``columns_json``                    str: a JSON object, column name -> value, of
                                    every other column of the change
``origin_columns_json``             str: the same for the before-image
==================================  =================================================

Why JSON for the other columns: a Tablestore row has a fixed primary key but
an open-ended set of attribute columns, each of which may hold any type in
any row, so no fixed schema can hold them all. Columns the pipeline knows
are declared with ``value_columns`` and come out typed; everything else stays
reachable, never dropped. JSON values follow
:meth:`~beam_tunnel.records.ChangeRecord.to_dict` (bytes as base64 text,
non-finite floats as ``"NaN"``/``"Infinity"``/``"-Infinity"``); a deleted
column (either delete op) is ``null``. A declared column goes to the JSON
instead of its field when the change deletes it or puts a value of another
type, so its field is None exactly when the change did not put a value of the
declared type. When a change carries one column several times (versions),
the last in the record wins.

The key schema comes from the caller or from the table: see
:func:`describe_table_schema`, which asks the service (DescribeTable, a
table-API call made with the client's endpoint and credentials).

Usage::

    from apache_beam.dataframe.convert import to_dataframe

    schema = describe_table_schema(client, "orders")
    rows = records | ToRows(schema.key_schema, value_columns=[("amount", "DOUBLE")])
    counts = to_dataframe(rows).groupby("action").size()

Status: experimental; the API may change.
"""

from __future__ import annotations

import base64
import hashlib
import json
import keyword
import math
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.typehints import schemas

# Imported for its side effect: the ChangeRecord PCollections ToRows reads
# are encoded with ChangeRecordCoder, not pickle.
from beam_tunnel.beam import coders as _coders  # noqa: F401
from beam_tunnel.client.auth import OtsV2Auth
from beam_tunnel.client.config import TunnelConfig
from beam_tunnel.client.transport import HttpTransport
from beam_tunnel.errors import ConfigError, ProtocolError
from beam_tunnel.protocol import table_pb2
from beam_tunnel.records import ChangeRecord

__all__ = ["ToRows", "row_type", "TableSchema", "describe_table_schema"]

KEY_TYPES = {"INTEGER": int, "STRING": str, "BINARY": bytes}
"""Tablestore primary-key column types and the Python type of their field."""

VALUE_TYPES = {"INTEGER": int, "DOUBLE": float, "BOOLEAN": bool, "STRING": str, "BINARY": bytes, "BLOB": bytes}
"""Attribute column types (``BLOB`` is the defined-column name of BINARY)."""

# The fields every row has, after the key columns (value columns and the
# two JSON fields follow).
_RECORD_FIELDS = (
    ("action", str),
    ("write_time_us", Optional[int]),
    ("is_full_data", bool),
    ("channel_id", str),
    ("sequence_epoch", Optional[int]),
    ("sequence_timestamp_us", Optional[int]),
    ("sequence_row_index", Optional[int]),
)
_JSON_FIELDS = (("columns_json", str), ("origin_columns_json", str))
_FIXED_NAMES = frozenset(name for name, _ in _RECORD_FIELDS + _JSON_FIELDS)
# Tablestore allows at most 4 primary-key columns.
_MAX_KEY_COLUMNS = 4
# The table API's version header; the tunnel API's is 2018-04-01.
_TABLE_API_VERSION = "2015-12-31"
_PK_TYPE_NAMES = {table_pb2.INTEGER: "INTEGER", table_pb2.STRING: "STRING", table_pb2.BINARY: "BINARY"}
_DEFINED_TYPE_NAMES = {
    table_pb2.DCT_INTEGER: "INTEGER",
    table_pb2.DCT_DOUBLE: "DOUBLE",
    table_pb2.DCT_BOOLEAN: "BOOLEAN",
    table_pb2.DCT_STRING: "STRING",
    table_pb2.DCT_BLOB: "BINARY",
}


# ---- the row type ----------------------------------------------------------------


def _checked_columns(what: str, columns: Any, types: Mapping[str, type]) -> Tuple[Tuple[str, str], ...]:
    if isinstance(columns, (str, bytes, Mapping)) or not hasattr(columns, "__iter__"):
        raise ConfigError(f"{what} must be a sequence of (name, type) pairs, got {columns!r}")
    checked = []
    for entry in columns:
        if not isinstance(entry, (tuple, list)) or len(entry) != 2:
            raise ConfigError(f"{what} entries must be (name, type) pairs, got {entry!r} in {columns!r}")
        name, kind = entry
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{what}: a column name must be a non-empty str, got {name!r}")
        if not isinstance(kind, str) or kind.upper() not in types:
            raise ConfigError(f"{what}: column {name!r} has type {kind!r}; expected one of {', '.join(types)}")
        checked.append((name, kind.upper()))
    return tuple(checked)


def _field_name(column: str, field_names: Mapping[str, str]) -> str:
    field = field_names.get(column, column)
    if not isinstance(field, str) or not field.isidentifier() or keyword.iskeyword(field) or field.startswith("_"):
        raise ConfigError(
            f"column {column!r} cannot be a row field as {field!r} (a field is a Python identifier, not a "
            "keyword, not starting with '_'); map it to another name with field_names={column!r: ...}"
        )
    return field


class _Spec(NamedTuple):
    """Everything ToRows needs, validated: what a worker rebuilds the row type from."""

    key_schema: Tuple[Tuple[str, str], ...]
    value_columns: Tuple[Tuple[str, str], ...]
    field_names: Tuple[Tuple[str, str], ...]  # column -> field, only the renamed ones

    def fields(self) -> List[Tuple[str, type]]:
        rename = dict(self.field_names)
        out = [(rename.get(name, name), KEY_TYPES[kind]) for name, kind in self.key_schema]
        out.extend(_RECORD_FIELDS)
        out.extend((rename.get(name, name), Optional[VALUE_TYPES[kind]]) for name, kind in self.value_columns)
        out.extend(_JSON_FIELDS)
        return out


def _spec(key_schema: Any, value_columns: Any, field_names: Any) -> _Spec:
    keys = _checked_columns("key_schema", key_schema, KEY_TYPES)
    if not 1 <= len(keys) <= _MAX_KEY_COLUMNS:
        raise ConfigError(f"key_schema must have 1 to {_MAX_KEY_COLUMNS} columns, got {key_schema!r}")
    values = _checked_columns("value_columns", () if value_columns is None else value_columns, VALUE_TYPES)
    if field_names is None:
        field_names = {}
    if not isinstance(field_names, Mapping):
        raise ConfigError(f"field_names must be a mapping of column name to field name, got {field_names!r}")
    columns = [name for name, _ in keys + values]
    unknown = sorted(set(field_names) - set(columns))
    if unknown:
        raise ConfigError(f"field_names renames {unknown!r}, which are not key or value columns {columns!r}")
    seen: Dict[str, str] = {}
    for column in columns:
        field = _field_name(column, field_names)
        if field in _FIXED_NAMES:
            raise ConfigError(
                f"column {column!r} would be row field {field!r}, which every row already has; "
                f"map it to another name with field_names={{{column!r}: ...}}"
            )
        if field in seen:
            raise ConfigError(f"columns {seen[field]!r} and {column!r} would both be row field {field!r}")
        seen[field] = column
    renamed = tuple((column, field_names[column]) for column in columns if column in field_names)
    return _Spec(keys, values, renamed)


def _row_type_of(spec: _Spec) -> type:
    fields = spec.fields()
    # The schema id is a digest of the fields, so every process (and every
    # worker of a runner) gets the same id, and so the same type, for the
    # same spec.
    digest = hashlib.sha256(repr([(name, repr(kind)) for name, kind in fields]).encode()).hexdigest()[:32]
    schema = schemas.named_fields_to_schema(fields, schema_id=f"beam-tunnel-rows-{digest}")
    # Beam makes the NamedTuple, registers it with RowCoder and gives it a
    # __reduce__ that rebuilds it from the schema, so rows pickle anywhere.
    return schemas.named_tuple_from_schema(schema)


def row_type(
    key_schema: Sequence[Tuple[str, str]],
    value_columns: Optional[Sequence[Tuple[str, str]]] = None,
    field_names: Optional[Mapping[str, str]] = None,
) -> type:
    """The NamedTuple type of :class:`ToRows`' output, registered with Beam's
    RowCoder. The same arguments give the same type (and schema id).

    Args: as :class:`ToRows`.

    Raises:
      ConfigError: an argument is malformed; the message shows it.
    """
    return _row_type_of(_spec(key_schema, value_columns, field_names))


# ---- records to rows ----------------------------------------------------------


def _plain(value: Any) -> Any:
    # The conventions of ChangeRecord.to_dict, so both JSON forms agree.
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def _json(columns: Dict[str, Any]) -> str:
    return json.dumps(columns, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class _Converter:
    """Turns one ChangeRecord into the row tuple of a spec."""

    def __init__(self, spec: _Spec) -> None:
        self._spec = spec
        self._type = _row_type_of(spec)
        self._key_names = tuple(name for name, _ in spec.key_schema)
        self._key_types = tuple(KEY_TYPES[kind] for _, kind in spec.key_schema)
        # column name -> (position among the value fields, Python type)
        self._typed = {name: (i, VALUE_TYPES[kind]) for i, (name, kind) in enumerate(spec.value_columns)}

    @property
    def row_type(self) -> type:
        return self._type

    def __call__(self, record: ChangeRecord):
        key = self._key_values(record)
        sequence = record.sequence
        typed: List[Any] = [None] * len(self._typed)
        rest: Dict[str, Any] = {}
        for name, value, _, op in record.columns:
            slot = self._typed.get(name)
            if slot is not None and value is not None and type(value) is slot[1]:
                typed[slot[0]] = value
                rest.pop(name, None)
            else:
                if slot is not None:
                    typed[slot[0]] = None
                rest[name] = _plain(value)
        origin = {column.name: _plain(column.value) for column in record.origin_columns}
        return self._type(
            *key,
            record.action.value,
            None if sequence is None else sequence.timestamp,
            sequence is None,
            record.channel_id,
            *((None, None, None) if sequence is None else sequence),
            *typed,
            _json(rest),
            _json(origin),
        )

    def _key_values(self, record: ChangeRecord) -> List[Any]:
        primary_key = record.primary_key
        names, types = self._key_names, self._key_types
        if len(primary_key) == len(names) and all(
            name == want and type(value) is kind
            for (name, value), want, kind in zip(primary_key, names, types)
        ):
            return [value for _, value in primary_key]
        found = [(name, type(value).__name__) for name, value in primary_key]
        raise ValueError(
            f"a record from channel {record.channel_id!r} has primary key {primary_key!r}, of columns {found!r}, "
            f"which does not match key_schema {list(self._spec.key_schema)!r}"
        )


class _ToRowFn(beam.DoFn):
    def __init__(self, spec: _Spec) -> None:
        self._spec = spec
        self._convert: Optional[_Converter] = None

    def setup(self) -> None:
        # Built on the worker from the spec, so the row type is the one
        # registered in the worker's schema registry.
        self._convert = _Converter(self._spec)

    def process(self, record: ChangeRecord):
        yield self._convert(record)


class ToRows(beam.PTransform):
    """``PCollection[ChangeRecord]`` -> schema'd rows (see the module docstring).

    Args:
      key_schema: the table's primary key as ``(name, type)`` pairs in key
        order, type ``"INTEGER"``, ``"STRING"`` or ``"BINARY"`` (any case;
        as :func:`describe_table_schema` returns). Records whose key does not
        match (names, order, value types) fail the pipeline with an error
        naming the record's channel and key.
      value_columns: attribute columns to give typed ``Optional`` fields, as
        ``(name, type)`` pairs, type ``"INTEGER"``, ``"DOUBLE"``,
        ``"BOOLEAN"``, ``"STRING"`` or ``"BINARY"`` (``"BLOB"``); None for
        none (all columns then go to ``columns_json``).
      field_names: row field names for columns whose own name cannot be one
        (a Python keyword, a leading ``_``, or a fixed field such as
        ``action``), e.g. ``{"_id": "id_"}``.

    Raises:
      ConfigError: an argument is malformed; the message shows it.
    """

    def __init__(
        self,
        key_schema: Sequence[Tuple[str, str]],
        value_columns: Optional[Sequence[Tuple[str, str]]] = None,
        field_names: Optional[Mapping[str, str]] = None,
    ) -> None:
        super().__init__()
        self._spec = _spec(key_schema, value_columns, field_names)
        self._row_type = _row_type_of(self._spec)

    @property
    def row_type(self) -> type:
        """The NamedTuple type of the output rows."""
        return self._row_type

    def expand(self, records):
        return records | "ToRow" >> beam.ParDo(_ToRowFn(self._spec)).with_output_types(self._row_type)


# ---- the key schema from the service ---------------------------------------------------


class TableSchema(NamedTuple):
    """A table's schema as DescribeTable reports it.

    Attributes:
      key_schema: the primary key as ``(name, type)`` pairs in key order,
        type ``"INTEGER"``, ``"STRING"`` or ``"BINARY"``.
      defined_columns: the predefined attribute columns as ``(name, type)``
        pairs (may be empty); fit for ``ToRows(value_columns=...)``.
    """

    key_schema: Tuple[Tuple[str, str], ...]
    defined_columns: Tuple[Tuple[str, str], ...]


def describe_table_schema(client: Any, table_name: str) -> TableSchema:
    """Ask the service for a table's key schema (the table API's DescribeTable).

    The tunnel client speaks only the tunnel API; this makes the one
    table-API call with the same endpoint, instance, credentials, timeouts
    and retry policy (``meta_retry``), on a connection of its own, closed
    before returning.

    Args:
      client: a ``TunnelClient`` or its ``TunnelConfig``.
      table_name: the table.

    Returns:
      The table's :class:`TableSchema`.

    Raises:
      ConfigError: ``client`` or ``table_name`` is malformed.
      ObjectNotExistError: there is no such table (as any TunnelError
        subclass the service answers with).
    """
    config = getattr(client, "config", client)
    if not isinstance(config, TunnelConfig):
        raise ConfigError(f"client must be a TunnelClient or a TunnelConfig, got {client!r}")
    if not isinstance(table_name, str) or not table_name:
        raise ConfigError(f"table_name must be a non-empty str, got {table_name!r}")
    auth = OtsV2Auth(config.credentials, config.instance_name, _TABLE_API_VERSION)
    transport = HttpTransport(
        config.endpoint,
        auth,
        connect_timeout_s=config.connect_timeout_s,
        read_timeout_s=config.read_timeout_s,
        pool_size=1,
    )
    request = table_pb2.DescribeTableRequest(table_name=table_name)
    try:
        response, _ = config.meta_retry.run(
            lambda: transport.call("DescribeTable", "/DescribeTable", request, table_pb2.DescribeTableResponse),
            idempotent=True,
            description="DescribeTable",
        )
    finally:
        transport.close()
    meta = response.table_meta
    try:
        keys = tuple((column.name, _PK_TYPE_NAMES[column.type]) for column in meta.primary_key)
        defined = tuple((column.name, _DEFINED_TYPE_NAMES[column.type]) for column in meta.defined_column)
    except KeyError as err:
        raise ProtocolError(f"DescribeTable of {table_name!r}: a column type this client does not know: {err}")
    return TableSchema(keys, defined)
