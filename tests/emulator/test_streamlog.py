"""The stream log, through the model API: every acknowledged write exactly
once, in write order, in its partition's log, with the right record bytes,
before-images, retention, and partition split/merge sealing."""

import pytest

from beam_tunnel.emulator import EmulatorConfig, ManualClock
from beam_tunnel.emulator.model import Emulator
from beam_tunnel.emulator.model.tables import (
    DELETE,
    EXPECT_EXIST,
    EXPECT_NOT_EXIST,
    PUT,
    UPDATE,
    PkColumn,
    RowChange,
    StreamSpec,
)
from beam_tunnel.errors import ObjectNotExistError, ParameterInvalidError, ServiceError
from beam_tunnel.protocol.plainbuffer import decode_row, decode_row_without_pk
from beam_tunnel.protocol.rows import INF_MAX, INF_MIN, Cell, CellOp, Row, SequenceInfo

T0 = 1_700_000_000_000_000
HOUR_US = 3600 * 1_000_000


@pytest.fixture
def clock():
    return ManualClock(T0)


@pytest.fixture
def emu(tmp_path, clock):
    emulator = Emulator(EmulatorConfig(data_dir=str(tmp_path), clock=clock))
    yield emulator
    emulator.close()


def _table(emu, name="t", splits=(100, 200), columns=(), hours=24):
    emu.tables.create_table(name, [PkColumn("k", "INTEGER"), PkColumn("s", "STRING")], split_points=splits,
                            stream=StreamSpec(True, hours, tuple(columns)))


def _pk(k, s="x"):
    return (("k", k), ("s", s))


def _put(k, **cells):
    return RowChange(PUT, "t", Row(_pk(k), tuple(Cell(n, v) for n, v in cells.items())))


def _log(emu, table="t"):
    """{partition_id: [(sequence, action, decoded record, origin bytes)]} of every partition."""
    out = {}
    for part in emu.tables.list_partitions(table):
        entries = emu.streams.read(table, part.partition_id, max_records=100_000)
        out[part.partition_id] = [(e.sequence, e.action, decode_row(e.record), e.origin) for e in entries]
    return out


def test_each_acknowledged_write_is_logged_once_in_write_order(emu, clock):
    _table(emu)
    acked = []
    for i, k in enumerate([5, 150, 250, 6, 151, 5]):
        emu.tables.write_row(_put(k, v=i))
        acked.append((PUT, k))
        clock.advance(0.001)
    results = emu.tables.batch_write([
        _put(7, v=10),
        RowChange(PUT, "t", Row(_pk(5), (Cell("v", 0),)), EXPECT_NOT_EXIST),  # fails: row exists
        RowChange(UPDATE, "t", Row(_pk(150), (Cell("w", 1),))),
        RowChange(DELETE, "t", Row(_pk(250))),
        RowChange(PUT, "missing", Row(_pk(1))),  # fails: no such table
    ])
    assert [isinstance(r, ServiceError) for r in results] == [False, True, False, False, True]
    acked += [(PUT, 7), (UPDATE, 150), (DELETE, 250)]
    with pytest.raises(ServiceError):
        emu.tables.write_row(RowChange(DELETE, "t", Row(_pk(999)), EXPECT_EXIST))

    log = _log(emu)
    logged = [entry for entries in log.values() for entry in entries]
    assert sorted((action, row.primary_key[0][1]) for _, action, row, _ in logged) == sorted(acked)
    for partition_id, entries in log.items():
        sequences = [seq for seq, _, _, _ in entries]
        assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
        # The order within a partition is the order the writes were acknowledged.
        keys = [(action, row.primary_key[0][1]) for _, action, row, _ in entries]
        assert keys == [a for a in acked if _owner(emu, a[1]) == partition_id]


def _owner(emu, k):
    for part in emu.tables.list_partitions("t"):
        low = -1 if part.start is INF_MIN else part.start[0][1]
        high = 10 ** 9 if part.end is INF_MAX else part.end[0][1]
        if low <= k < high and not part.closed:
            return part.partition_id
    raise AssertionError(k)


def test_one_request_shares_the_write_time_and_numbers_rows_per_partition(emu):
    _table(emu)
    emu.tables.batch_write([_put(1), _put(2), _put(150), _put(3)])
    log = _log(emu)
    first = [seq for seq, *_ in log[_owner(emu, 1)]]
    second = [seq for seq, *_ in log[_owner(emu, 150)]]
    assert {s.timestamp for s in first + second} == {T0}
    assert [s.row_index for s in first] == [0, 1, 2] and [s.row_index for s in second] == [0]


def test_write_times_stay_strictly_increasing_when_the_clock_stalls_or_goes_back(emu, clock):
    _table(emu, splits=())
    for _ in range(3):
        emu.tables.write_row(_put(1))  # the clock does not move
    clock.set(T0 - HOUR_US)
    emu.tables.write_row(_put(2))
    stamps = [seq.timestamp for seq, *_ in next(iter(_log(emu).values()))]
    assert stamps == [T0, T0 + 1, T0 + 2, T0 + 3]


def test_record_bytes_per_action(emu):
    _table(emu, splits=())
    emu.tables.write_row(RowChange(PUT, "t", Row(_pk(1), (Cell("a", "x"), Cell("b", 2, 1234)))))
    emu.tables.write_row(RowChange(UPDATE, "t", Row(_pk(1), (
        Cell("a", "y"), Cell("b", None, 1234, CellOp.DELETE_ONE_VERSION),
        Cell("c", None, None, CellOp.DELETE_ALL_VERSIONS), Cell("n", 4, None, CellOp.INCREMENT),
    ))))
    emu.tables.write_row(RowChange(DELETE, "t", Row(_pk(1))))
    (put, update, delete) = next(iter(_log(emu).values()))
    ms = T0 // 1000
    assert put[1] == PUT and put[2] == Row(_pk(1), (Cell("a", "x", ms), Cell("b", 2, 1234)), False, put[0])
    assert update[1] == UPDATE and update[2].cells == (
        Cell("a", "y", ms), Cell("b", None, 1234, CellOp.DELETE_ONE_VERSION),
        Cell("c", None, None, CellOp.DELETE_ALL_VERSIONS), Cell("n", 4, ms),
    )
    assert update[2].sequence == update[0] == SequenceInfo(0, T0 + 1, 0)
    assert delete[1] == DELETE and delete[2] == Row(_pk(1), (), True, delete[0])


def test_before_images_carry_old_values_of_the_configured_columns(emu):
    _table(emu, splits=(), columns=("a", "b"))
    emu.tables.write_row(_put(1, a="old", c="ignored"))
    emu.tables.write_row(RowChange(UPDATE, "t", Row(_pk(1), (Cell("a", "new"),))))
    emu.tables.write_row(RowChange(DELETE, "t", Row(_pk(1))))
    origins = [origin for *_, origin in next(iter(_log(emu).values()))]
    assert origins[0] is None  # the row did not exist before
    assert [(c.name, c.value) for c in decode_row_without_pk(origins[1]).cells] == [("a", "old")]
    assert [(c.name, c.value) for c in decode_row_without_pk(origins[2]).cells] == [("a", "new")]


def test_reads_page_after_a_position_with_record_and_byte_limits(emu):
    _table(emu, splits=())
    emu.tables.batch_write([_put(k, v="x" * 100) for k in range(10)])
    pid = emu.tables.list_partitions("t")[0].partition_id
    first = emu.streams.read("t", pid, None, max_records=4)
    assert len(first) == 4
    rest = emu.streams.read("t", pid, first[-1].sequence, max_records=100)
    assert [e.sequence.row_index for e in first + rest] == list(range(10))
    small = emu.streams.read("t", pid, None, max_records=100, max_bytes=len(first[0].record) * 2)
    assert len(small) == 2
    assert emu.streams.read("t", pid, rest[-1].sequence) == []
    assert emu.streams.bounds("t", pid) == (first[0].sequence, rest[-1].sequence)


def test_retention_hides_and_purges_expired_records(emu, clock):
    _table(emu, splits=(), hours=1)
    emu.tables.write_row(_put(1))
    pid = emu.tables.list_partitions("t")[0].partition_id
    assert emu.streams.expired_before("t") == T0 - HOUR_US
    clock.advance(3601)
    emu.tables.write_row(_put(2))
    entries = emu.streams.read("t", pid)
    assert [decode_row(e.record).primary_key[0][1] for e in entries] == [2]
    assert emu.streams.bounds("t", pid)[0] == entries[0].sequence
    with emu.storage.read() as conn:  # purged lazily, not just hidden
        assert conn.execute("SELECT COUNT(*) FROM stream_log").fetchone()[0] == 1


def test_split_seals_the_parent_and_routes_new_writes_to_children(emu):
    _table(emu, splits=())
    parent = emu.tables.list_partitions("t")[0]
    emu.tables.write_row(_put(10))
    left, right = emu.tables.split_partition("t", parent.partition_id, 50)
    assert (left.epoch, right.epoch) == (1, 1) and left.parent_ids == right.parent_ids == (parent.partition_id,)
    assert (left.start, left.end, right.start, right.end) == (INF_MIN, (("k", 50), ("s", INF_MIN)),
                                                              (("k", 50), ("s", INF_MIN)), INF_MAX)
    emu.tables.batch_write([_put(10), _put(60)])
    log = _log(emu)
    assert len(log[parent.partition_id]) == 1  # sealed
    assert [r.primary_key[0][1] for _, _, r, _ in log[left.partition_id]] == [10]
    assert [r.primary_key[0][1] for _, _, r, _ in log[right.partition_id]] == [60]
    assert log[left.partition_id][0][0].epoch == 1
    assert emu.tables.list_partitions("t")[0].closed
    merged = emu.tables.merge_partitions("t", left.partition_id, right.partition_id)
    assert (merged.epoch, merged.parent_ids, merged.start, merged.end) == (
        2, (left.partition_id, right.partition_id), INF_MIN, INF_MAX)
    emu.tables.write_row(_put(70))
    assert len(_log(emu)[merged.partition_id]) == 1
    assert emu.tables.describe_table("t").split_points == ()


def test_split_and_merge_refuse_bad_requests(emu):
    _table(emu, splits=(100,))
    low, high = emu.tables.list_partitions("t")
    with pytest.raises(ParameterInvalidError, match="not strictly inside"):
        emu.tables.split_partition("t", low.partition_id, 100)
    with pytest.raises(ParameterInvalidError, match="INTEGER"):
        emu.tables.split_partition("t", low.partition_id, "x")
    with pytest.raises(ParameterInvalidError, match="not adjacent"):
        emu.tables.merge_partitions("t", high.partition_id, low.partition_id)
    emu.tables.split_partition("t", low.partition_id, (("k", 50), ("s", INF_MIN)))
    with pytest.raises(ParameterInvalidError, match="closed"):
        emu.tables.split_partition("t", low.partition_id, 10)
    with pytest.raises(ObjectNotExistError):
        emu.streams.read("t", "no-such-partition")


def test_stream_off_logs_nothing_and_reenabling_starts_a_new_stream(emu, clock):
    emu.tables.create_table("t", [PkColumn("k", "INTEGER"), PkColumn("s", "STRING")])
    emu.tables.write_row(_put(1))
    assert _log(emu) == {p.partition_id: [] for p in emu.tables.list_partitions("t")}
    info = emu.tables.update_table("t", stream=StreamSpec(True, 24))
    first_id = info.stream.stream_id
    assert first_id == f"t_{T0}" and info.stream.last_enable_us == T0
    emu.tables.write_row(_put(2))
    emu.tables.update_table("t", stream=StreamSpec(False))
    assert all(not entries for entries in _log(emu).values())
    clock.advance(1)
    assert emu.tables.update_table("t", stream=StreamSpec(True, 24)).stream.stream_id != first_id
    with pytest.raises(ParameterInvalidError, match="1..168"):
        emu.tables.update_table("t", stream=StreamSpec(True, 500))


def test_everything_survives_reopening_the_data_dir(tmp_path, clock):
    config = EmulatorConfig(data_dir=str(tmp_path), clock=clock)
    emu = Emulator(config)
    _table(emu, splits=(100,))
    emu.tables.batch_write([_put(1, v=1), _put(150, v=2)])
    left, _ = emu.tables.split_partition("t", emu.tables.list_partitions("t")[0].partition_id, 50)
    before = _log(emu)
    emu.close()

    clock.set(T0 - HOUR_US)  # the clock went back while we were down
    emu = Emulator(config)
    try:
        assert _log(emu) == before
        assert emu.tables.describe_table("t").split_points == (50, 100)
        emu.tables.write_row(_put(2))
        newest = _log(emu)[left.partition_id][-1][0]
        assert newest.timestamp > max(seq.timestamp for entries in before.values() for seq, *_ in entries)
    finally:
        emu.close()


def test_a_data_dir_serves_one_emulator_at_a_time(tmp_path):
    config = EmulatorConfig(data_dir=str(tmp_path))
    first = Emulator(config)
    try:
        with pytest.raises(RuntimeError, match="in use"):
            Emulator(config)
    finally:
        first.close()
    Emulator(config).close()


def test_update_with_only_deletes_does_not_create_a_row(emu):
    _table(emu, splits=())
    emu.tables.write_row(RowChange(UPDATE, "t", Row(_pk(1), (Cell("a", None, None, CellOp.DELETE_ALL_VERSIONS),))))
    assert emu.tables.get_row("t", _pk(1)) == b""
    assert [action for _, action, _, _ in next(iter(_log(emu).values()))] == [UPDATE]  # still logged
