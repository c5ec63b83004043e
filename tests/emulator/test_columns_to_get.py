"""GetRow / GetRange with columns_to_get that leaves out key columns still
return the whole primary key, as the service does (the official SDKs parse
every row as key + attributes; the Java SDK fails with "Failed to parse row"
otherwise). Through the official Python SDK."""

import pytest

tablestore = pytest.importorskip("tablestore")
from tablestore import (  # noqa: E402
    INF_MAX, INF_MIN, CapacityUnit, Direction, ReservedThroughput, Row, TableMeta, TableOptions,
)

_KEY_SCHEMA = [("region", "STRING"), ("id", "INTEGER"), ("part", "BINARY")]


@pytest.fixture
def table(ots):
    ots.create_table(TableMeta("orders", _KEY_SCHEMA), TableOptions(), ReservedThroughput(CapacityUnit(0, 0)))
    for i in range(5):
        ots.put_row("orders", Row(_key(i), [("price", i * 10), ("note", f"n{i}")]))
    ots.put_row("orders", Row(_key(9), [("other", 1)]))  # none of the asked columns
    return ots


def _key(i):
    return [("region", "eu"), ("id", i), ("part", bytearray(b"p"))]


@pytest.mark.parametrize("columns", [["price"], ["price", "id"], ["part", "note", "price"]])
def test_get_row_returns_the_whole_key(table, columns):
    _, row, _ = table.get_row("orders", _key(3), columns_to_get=columns, max_version=1)
    assert row.primary_key == _key(3)
    assert {name for name, _, _ in row.attribute_columns} == set(columns) - {"region", "id", "part"}


def test_get_row_naming_only_key_columns_returns_the_key(table):
    _, row, _ = table.get_row("orders", _key(2), columns_to_get=["id"], max_version=1)
    assert (row.primary_key, row.attribute_columns) == (_key(2), [])


def test_get_row_with_none_of_the_columns_is_no_row(table):
    _, row, _ = table.get_row("orders", _key(9), columns_to_get=["price"], max_version=1)
    assert row is None


@pytest.mark.parametrize("direction", [Direction.FORWARD, Direction.BACKWARD])
def test_get_range_returns_the_whole_key(table, direction):
    low = [("region", INF_MIN), ("id", INF_MIN), ("part", INF_MIN)]
    high = [("region", INF_MAX), ("id", INF_MAX), ("part", INF_MAX)]
    start, end = (low, high) if direction == Direction.FORWARD else (high, low)
    _, next_start, rows, _ = table.get_range("orders", direction, start, end, columns_to_get=["price"],
                                             max_version=1)
    assert next_start is None
    got = [(row.primary_key, [c[:2] for c in row.attribute_columns]) for row in rows]
    expected = [(_key(i), [("price", i * 10)]) for i in range(5)]  # key 9 has no price: not listed
    assert got == (expected if direction == Direction.FORWARD else expected[::-1])
