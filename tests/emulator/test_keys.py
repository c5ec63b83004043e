"""The sortable primary-key encoding orders keys as Tablestore does."""

import functools

from hypothesis import given, settings
from hypothesis import strategies as st

from beam_tunnel.emulator.model.keys import PkColumn, bound_key, check_primary_key, sort_key
from beam_tunnel.errors import ParameterInvalidError
from beam_tunnel.protocol.rows import INF_MAX, INF_MIN

import pytest

_INT = st.integers(min_value=-(2 ** 63), max_value=2 ** 63 - 1)
_STR = st.text(max_size=6)  # includes "\x00" and non-ASCII
_BIN = st.binary(max_size=6)


def _column(values):
    return st.one_of(st.just(INF_MIN), st.just(INF_MAX), values)


_KEY = st.tuples(_column(_INT), _column(_STR), _column(_BIN))


def _rank(value):
    """Reference order of one column: INF_MIN < values < INF_MAX; strings by UTF-8 bytes."""
    if value is INF_MIN:
        return (0, b"")
    if value is INF_MAX:
        return (2, b"")
    if isinstance(value, str):
        return (1, value.encode("utf-8"))
    return (1, value)


def _compare(a, b):
    for x, y in zip(a, b):
        rx, ry = _rank(x), _rank(y)
        if rx != ry:
            return -1 if rx < ry else 1
    return 0


@settings(max_examples=400, deadline=None)
@given(st.lists(_KEY, min_size=2, max_size=12))
def test_byte_order_is_key_order(keys):
    by_reference = sorted(keys, key=functools.cmp_to_key(_compare))
    by_bytes = sorted(keys, key=sort_key)
    assert [sort_key(k) for k in by_reference] == [sort_key(k) for k in by_bytes]
    for a, b in zip(keys, keys[1:]):
        assert (sort_key(a) == sort_key(b)) == (_compare(a, b) == 0)


@settings(max_examples=200, deadline=None)
@given(_KEY)
def test_whole_key_bounds_enclose_every_key(key):
    assert bound_key(INF_MIN) < sort_key(key) < bound_key(INF_MAX)


def test_schema_checks_name_the_column():
    schema = [PkColumn("id", "INTEGER"), PkColumn("name", "STRING"), PkColumn("seq", "INTEGER", True)]
    assert check_primary_key(schema, (("id", 1), ("name", "a"), ("seq", 2))) == (1, "a", 2)
    cases = [
        ((("id", 1), ("name", "a")), "size"),
        ((("id", 1), ("nom", "a"), ("seq", 2)), "'name'"),
        ((("id", True), ("name", "a"), ("seq", 2)), "'id'"),
        ((("id", 1), ("name", b"a"), ("seq", 2)), "'name' is STRING"),
        ((("id", INF_MIN), ("name", "a"), ("seq", 2)), "INF_MIN"),
        ((("id", 1), ("name", "x" * 1025), ("seq", 2)), "1025 bytes"),
        ((("id", 2 ** 63), ("name", "a"), ("seq", 2)), "'id': integer 9223372036854775808 is outside int64"),
        ((("id", -(2 ** 63) - 1), ("name", "a"), ("seq", 2)), "outside int64"),
    ]
    for key, needle in cases:
        with pytest.raises(ParameterInvalidError, match=needle):
            check_primary_key(schema, key)
