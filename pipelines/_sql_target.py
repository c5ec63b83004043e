"""The SQL side of ``sync_table``: a table mirroring the source, written in
transactions, through SQLAlchemy (SQLite, PostgreSQL, any dialect with
``ALTER TABLE ... ADD COLUMN``).

Two tables per synced table:

* ``<name>``: the table's key columns (the primary key) plus one column per
  attribute column seen so far, added as they appear; NULL means the row
  has no such column (Tablestore has no NULL values).
* ``<name>__sync_state``: per source row, the order of the last change
  applied (``sync_epoch``, ``sync_timestamp_us``, ``sync_row_index``), whether
  the row is deleted (a tombstone), and the cell timestamps of its values
  (JSON), which column deletes of one version need. See ``_row_state``.

:meth:`SqlTarget.apply` applies a batch of records in one transaction: it
reads the state of the batch's rows, applies the records in order in memory
and writes back the rows that changed. A batch applied twice (a retried
bundle, a replay after a restart) changes nothing the second time.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from beam_tunnel.errors import ConfigError
from beam_tunnel.records import ChangeRecord

from ._row_state import RowState, apply_change

__all__ = ["SqlTarget", "ColumnTypeError", "STATE_SUFFIX"]

_LOG = logging.getLogger(__name__)

STATE_SUFFIX = "__sync_state"
_ORDER_COLUMNS = ("sync_epoch", "sync_timestamp_us", "sync_row_index")
_STATE_COLUMNS = _ORDER_COLUMNS + ("sync_deleted", "sync_versions")
_KEY_TYPES = {"INTEGER": sa.BigInteger, "STRING": sa.Text, "BINARY": sa.LargeBinary}
# bool before int: True is an int too.
_VALUE_TYPES: Tuple[Tuple[type, Any], ...] = (
    (bool, sa.Boolean),
    (int, sa.BigInteger),
    (float, lambda: sa.Float(precision=53)),
    (str, sa.Text),
    (bytes, sa.LargeBinary),
)
_KEYS_PER_STATEMENT = 200
_ATTEMPTS = 6


class ColumnTypeError(ValueError):
    """A value does not fit the type its target column was created with."""


def _python_type(value: Any) -> type:
    for kind, _ in _VALUE_TYPES:
        if type(value) is kind:
            return kind
    raise ColumnTypeError(f"a value of type {type(value).__name__} ({value!r:.80}) has no SQL column type")


def _sql_type(kind: type):
    for python_kind, sql in _VALUE_TYPES:
        if python_kind is kind:
            return sql()
    raise ColumnTypeError(f"no SQL column type for Python type {kind.__name__}")


def _reflected_type(column: Mapping[str, Any]) -> type:
    sql_type = column["type"]
    if isinstance(sql_type, sa.Boolean):
        return bool
    try:
        kind = sql_type.python_type
    except NotImplementedError:
        return object  # a type this module did not create: accept anything
    return {memoryview: bytes, bytearray: bytes}.get(kind, kind)


class SqlTarget:
    """One synced table in a SQL database.

    Args:
      url: a SQLAlchemy URL, e.g. ``sqlite:///orders.db`` or
        ``postgresql+psycopg://user@host:5432/db``.
      table: the target table's name (the state table is ``table`` +
        ``__sync_state``).
      key_schema: the source's primary key as ``(name, type)`` pairs,
        type INTEGER, STRING or BINARY (``describe_table_schema``).

    Raises:
      ConfigError: a malformed argument, named.
    """

    def __init__(self, url: str, table: str, key_schema: Sequence[Tuple[str, str]]) -> None:
        if not isinstance(url, str) or not url:
            raise ConfigError(f"url must be a SQLAlchemy URL such as 'sqlite:///orders.db', got {url!r}")
        try:
            sa.engine.make_url(url)
        except sa_exc.ArgumentError as err:
            raise ConfigError(f"url {url!r} is not a SQLAlchemy URL: {err}") from None
        if not isinstance(table, str) or not table:
            raise ConfigError(f"table must be a non-empty string, got {table!r}")
        keys = tuple((str(name), str(kind).upper()) for name, kind in key_schema)
        if not keys or any(kind not in _KEY_TYPES for _, kind in keys):
            raise ConfigError(f"key_schema must be (name, INTEGER|STRING|BINARY) pairs, got {key_schema!r}")
        clash = sorted({name for name, _ in keys} & set(_STATE_COLUMNS))
        if clash:
            raise ConfigError(f"key columns {clash!r} clash with the sync state's own columns {_STATE_COLUMNS!r}")
        self.url = url
        self.table = table
        self.key_schema = keys
        self.key_names = tuple(name for name, _ in keys)
        self._engine: Optional[sa.engine.Engine] = None
        self._columns: Dict[str, type] = {}  # attribute column -> Python type
        self._data: Optional[sa.Table] = None
        self._state: Optional[sa.Table] = None

    # ---- lifecycle ----------------------------------------------------------

    def open(self) -> "SqlTarget":
        """Connect and create the two tables when missing (idempotent)."""
        if self._engine is not None:
            return self
        url = sa.engine.make_url(self.url)
        kwargs: Dict[str, Any] = {}
        if url.get_backend_name() == "sqlite":
            # Several writers (threads, processes) wait for each other's
            # transactions instead of failing at once.
            kwargs["connect_args"] = {"timeout": 60}
        engine = sa.create_engine(url, **kwargs)
        if url.get_backend_name() == "sqlite":
            _sqlite_write_transactions(engine)
        self._engine = engine
        self._with_retries("create the target tables", self._create_tables)
        return self

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def __enter__(self) -> "SqlTarget":
        return self.open()

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _create_tables(self) -> None:
        metadata = sa.MetaData()
        data = sa.Table(self.table, metadata, *self._key_columns())
        state = sa.Table(
            self.table + STATE_SUFFIX, metadata, *self._key_columns(),
            *(sa.Column(name, sa.BigInteger, nullable=False) for name in _ORDER_COLUMNS),
            sa.Column("sync_deleted", sa.Boolean, nullable=False),
            sa.Column("sync_versions", sa.Text, nullable=False),
        )
        with self._engine.begin() as conn:
            metadata.create_all(conn, tables=[data, state], checkfirst=True)
        self._reflect()

    def _key_columns(self) -> List[sa.Column]:
        return [sa.Column(name, _KEY_TYPES[kind](), primary_key=True, autoincrement=False)
                for name, kind in self.key_schema]

    def _reflect(self) -> None:
        inspector = sa.inspect(self._engine)
        columns = {column["name"]: column for column in inspector.get_columns(self.table)}
        missing = [name for name in self.key_names if name not in columns]
        if missing:
            raise ConfigError(f"target table {self.table!r} exists without the key columns {missing!r}: "
                              "choose another --target-table")
        self._columns = {name: _reflected_type(column) for name, column in columns.items()
                         if name not in self.key_names}
        self._rebuild_tables()

    def _rebuild_tables(self) -> None:
        metadata = sa.MetaData()
        self._data = sa.Table(self.table, metadata, *self._key_columns(),
                              *(sa.Column(name, _sql_type(kind) if kind is not object else sa.Text)
                                for name, kind in self._columns.items()))
        self._state = sa.Table(
            self.table + STATE_SUFFIX, metadata, *self._key_columns(),
            *(sa.Column(name, sa.BigInteger) for name in _ORDER_COLUMNS),
            sa.Column("sync_deleted", sa.Boolean), sa.Column("sync_versions", sa.Text),
        )

    # ---- applying changes -----------------------------------------------------

    def apply(self, records: Sequence[ChangeRecord]) -> int:
        """Apply ``records`` (in the order given) in one transaction, retried
        whole on conflicts; returns how many changed the target (records
        it already held are skipped)."""
        if not records:
            return 0
        return self._with_retries(f"apply {len(records)} changes", lambda: self._apply_once(records))

    def _with_retries(self, what: str, attempt):
        delay = 0.1
        for number in range(1, _ATTEMPTS + 1):
            try:
                return attempt()
            except ColumnTypeError:
                self._reflect()  # columns added in memory were rolled back
                raise
            except (sa_exc.OperationalError, sa_exc.IntegrityError, sa_exc.ProgrammingError) as err:
                # A concurrent writer added the same column or row, or the
                # database was busy: read the schema again and start over.
                if number == _ATTEMPTS:
                    raise RuntimeError(f"could not {what} in {self.table!r} after {_ATTEMPTS} attempts: {err}") from err
                _LOG.info("%s in %r: attempt %d failed (%s); retrying", what, self.table, number, err)
                time.sleep(delay)
                delay *= 2
                self._reflect()

    def _apply_once(self, records: Sequence[ChangeRecord]) -> int:
        by_key: Dict[tuple, List[ChangeRecord]] = {}
        for record in records:
            by_key.setdefault(self._key_of(record), []).append(record)
        with self._engine.begin() as conn:
            states = self._load(conn, list(by_key))
            changed: Dict[tuple, RowState] = {}
            applied = 0
            for key, key_records in by_key.items():
                state = states.get(key) or RowState()
                hits = sum(apply_change(state, record) for record in key_records)
                if hits:
                    applied += hits
                    changed[key] = state
            if changed:
                self._add_columns(conn, changed)
                self._store(conn, changed)
        return applied

    def _key_of(self, record: ChangeRecord) -> tuple:
        key = record.primary_key
        if tuple(name for name, _ in key) != self.key_names:
            raise ValueError(f"a record from channel {record.channel_id!r} has primary key {key!r}, "
                             f"not the key columns {list(self.key_names)!r} of target {self.table!r}")
        return tuple(value for _, value in key)

    def _key_match(self, table: sa.Table, keys: Sequence[tuple]):
        columns = [table.c[name] for name in self.key_names]
        if len(columns) == 1:
            return columns[0].in_([key[0] for key in keys])
        return sa.tuple_(*columns).in_(keys)

    def _chunks(self, keys: Sequence[tuple]) -> Iterable[Sequence[tuple]]:
        for start in range(0, len(keys), _KEYS_PER_STATEMENT):
            yield keys[start:start + _KEYS_PER_STATEMENT]

    def _load(self, conn, keys: Sequence[tuple]) -> Dict[tuple, RowState]:
        states: Dict[tuple, RowState] = {}
        count = len(self.key_names)
        for chunk in self._chunks(keys):
            query = sa.select(self._state).where(self._key_match(self._state, chunk))
            if conn.dialect.name != "sqlite":
                query = query.with_for_update()  # SQLite's write transaction already excludes others
            for row in conn.execute(query):
                key = tuple(row[:count])
                order = tuple(getattr(row, name) for name in _ORDER_COLUMNS)
                states[key] = RowState(False, {}, json.loads(row.sync_versions), order)
            for row in conn.execute(sa.select(self._data).where(self._key_match(self._data, chunk))):
                key = tuple(row[:count])
                state = states.setdefault(key, RowState())
                state.exists = True
                state.values = {name: value for name, value in row._mapping.items()
                                if name not in self.key_names and value is not None}
        return states

    def _add_columns(self, conn, changed: Mapping[tuple, RowState]) -> None:
        found: Dict[str, Tuple[type, tuple]] = {}
        for key, state in changed.items():
            for name, value in state.values.items():
                if name not in found:
                    found[name] = (_python_type(value), key)
                known = self._columns.get(name, found[name][0])
                if known is not object and type(value) is not known:
                    raise ColumnTypeError(
                        f"column {name!r} of target {self.table!r} holds {known.__name__} values, but row "
                        f"{dict(zip(self.key_names, key))!r} has {value!r:.80} ({type(value).__name__}); "
                        "Tablestore allows any type in any row, a SQL column one: sync this table into a "
                        "target table whose column has a fitting type"
                    )
        new = [(name, kind) for name, (kind, _) in found.items() if name not in self._columns]
        if not new:
            return
        preparer = conn.dialect.identifier_preparer
        for name, kind in new:
            sql_type = _sql_type(kind).compile(dialect=conn.dialect)
            conn.execute(sa.text(f"ALTER TABLE {preparer.quote(self.table)} ADD COLUMN {preparer.quote(name)} "
                                 f"{sql_type}"))
            self._columns[name] = kind
        self._rebuild_tables()

    def _store(self, conn, changed: Mapping[tuple, RowState]) -> None:
        keys = list(changed)
        for chunk in self._chunks(keys):
            conn.execute(sa.delete(self._data).where(self._key_match(self._data, chunk)))
            conn.execute(sa.delete(self._state).where(self._key_match(self._state, chunk)))
        rows = []
        states = []
        for key, state in changed.items():
            key_values = dict(zip(self.key_names, key))
            if state.exists:
                row = dict.fromkeys(self._columns)
                row.update(state.values)
                row.update(key_values)
                rows.append(row)
            states.append(dict(
                key_values, sync_epoch=state.order[0], sync_timestamp_us=state.order[1],
                sync_row_index=state.order[2], sync_deleted=not state.exists,
                sync_versions=json.dumps(state.versions if state.exists else {}, sort_keys=True),
            ))
        if rows:
            conn.execute(sa.insert(self._data), rows)
        conn.execute(sa.insert(self._state), states)

    # ---- reading back -------------------------------------------------------------

    def rows(self) -> Dict[tuple, Dict[str, Any]]:
        """Every row of the target: key tuple -> {column: value}, without
        the NULL (absent) columns."""
        self._reflect()
        count = len(self.key_names)
        out: Dict[tuple, Dict[str, Any]] = {}
        with self._engine.connect() as conn:
            for row in conn.execute(sa.select(self._data)):
                out[tuple(row[:count])] = {name: _plain(value) for name, value in row._mapping.items()
                                           if name not in self.key_names and value is not None}
        return out

    def count(self) -> int:
        """Rows in the target table."""
        with self._engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(self._data)).scalar_one()


def _plain(value: Any) -> Any:
    return bytes(value) if isinstance(value, (memoryview, bytearray)) else value


def _sqlite_write_transactions(engine: sa.engine.Engine) -> None:
    """Make every SQLite transaction a write transaction from its start
    (``BEGIN IMMEDIATE``), so two writers that both read before writing wait
    for each other instead of one failing on the lock upgrade.

    pysqlite's own transaction handling is turned off for this (the
    SQLAlchemy recipe for SQLite transactions)."""

    @sa.event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection, _record):
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _begin_immediate(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")

