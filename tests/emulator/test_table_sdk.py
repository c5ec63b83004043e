"""The table API through the official tablestore Python SDK, over loopback.

If the SDK accepts every answer (it checks MD5, date and the response
signature) and reads back what it wrote, the emulator is wire-compatible.
"""

import pytest

from beam_tunnel.protocol.rows import INF_MAX as INF_MAX_EMU
from beam_tunnel.protocol.rows import INF_MIN as INF_MIN_EMU

tablestore = pytest.importorskip("tablestore")
from tablestore import (  # noqa: E402
    INF_MAX,
    INF_MIN,
    PK_AUTO_INCR,
    CapacityUnit,
    Condition,
    Direction,
    OTSServiceError,
    ReservedThroughput,
    ReturnType,
    Row,
    RowExistenceExpectation,
    TableMeta,
    TableOptions,
    PutRowItem,
    UpdateRowItem,
    DeleteRowItem,
    BatchWriteRowRequest,
    TableInBatchWriteRowItem,
)

_THROUGHPUT = ReservedThroughput(CapacityUnit(0, 0))


def _create(ots, name="orders", schema=(("id", "INTEGER"), ("name", "STRING")), options=None, **kwargs):
    ots.create_table(TableMeta(name, list(schema)), options or TableOptions(), _THROUGHPUT, **kwargs)


def _error(call):
    with pytest.raises(OTSServiceError) as info:
        call()
    return info.value


def test_table_lifecycle(ots):
    _create(ots, "a")
    _create(ots, "b", schema=[("k", "BINARY")], options=TableOptions(time_to_live=86400, max_version=3))
    assert sorted(ots.list_table()) == ["a", "b"]

    described = ots.describe_table("b")
    assert described.table_meta.schema_of_primary_key == [("k", "BINARY")]
    assert described.table_options.time_to_live == 86400
    assert described.table_options.max_version == 3

    ots.update_table("b", TableOptions(max_version=5))
    assert ots.describe_table("b").table_options.max_version == 5

    ots.delete_table("a")
    assert list(ots.list_table()) == ["b"]
    err = _error(lambda: ots.describe_table("a"))
    assert (err.code, err.http_status) == ("OTSObjectNotExist", 404)
    err = _error(lambda: _create(ots, "b"))
    assert err.code == "OTSObjectAlreadyExist"


def test_every_value_type_round_trips(ots):
    _create(ots)
    columns = [("i", -(2 ** 63)), ("f", 2.5), ("b", False), ("s", "héllo"), ("bin", bytearray(b"\x00\xff")),
               ("big", 2 ** 63 - 1), ("empty", "")]
    ots.put_row("orders", Row([("id", 7), ("name", "x")], columns))
    _, row, _ = ots.get_row("orders", [("id", 7), ("name", "x")], max_version=1)
    assert row.primary_key == [("id", 7), ("name", "x")]
    got = {name: value for name, value, _ts in row.attribute_columns}
    assert got == {name: value for name, value in columns}


def test_missing_row_reads_as_none(ots):
    _create(ots)
    _, row, _ = ots.get_row("orders", [("id", 1), ("name", "nope")], max_version=1)
    assert row is None


def test_columns_to_get_selects_key_and_attribute_columns(ots):
    _create(ots)
    ots.put_row("orders", Row([("id", 1), ("name", "a")], [("x", 1), ("y", 2)]))
    key = [("id", 1), ("name", "a")]
    _, row, _ = ots.get_row("orders", key, columns_to_get=["y"], max_version=1)
    assert (row.primary_key, [c[:2] for c in row.attribute_columns]) == (key, [("y", 2)])
    _, row, _ = ots.get_row("orders", key, columns_to_get=["id", "y"], max_version=1)
    assert (row.primary_key, [c[:2] for c in row.attribute_columns]) == (key, [("y", 2)])
    _, row, _ = ots.get_row("orders", [("id", 1), ("name", "a")], columns_to_get=["absent"], max_version=1)
    assert row is None


def test_row_conditions(ots):
    _create(ots)
    key = [("id", 1), ("name", "a")]
    expect_exist = Condition(RowExistenceExpectation.EXPECT_EXIST)
    expect_not_exist = Condition(RowExistenceExpectation.EXPECT_NOT_EXIST)

    err = _error(lambda: ots.put_row("orders", Row(key, [("v", 1)]), expect_exist))
    assert (err.code, err.http_status) == ("OTSConditionCheckFail", 403)
    ots.put_row("orders", Row(key, [("v", 1)]), expect_not_exist)
    err = _error(lambda: ots.put_row("orders", Row(key, [("v", 2)]), expect_not_exist))
    assert err.code == "OTSConditionCheckFail"
    ots.update_row("orders", Row(key, {"put": [("v", 3)]}), expect_exist)
    ots.delete_row("orders", Row(key), expect_exist)
    err = _error(lambda: ots.delete_row("orders", Row(key), expect_exist))
    assert err.code == "OTSConditionCheckFail"
    _, row, _ = ots.get_row("orders", key, max_version=1)
    assert row is None


def test_versions_update_ops_and_time_range(ots):
    _create(ots, options=TableOptions(max_version=3))
    key = [("id", 1), ("name", "a")]
    ots.put_row("orders", Row(key, [("v", "t1", 1000), ("w", 1, 1000)]))
    for ts in (2000, 3000, 4000):
        ots.update_row("orders", Row(key, {"put": [("v", f"t{ts // 1000}", ts)]}), Condition(RowExistenceExpectation.IGNORE))

    _, row, _ = ots.get_row("orders", key, columns_to_get=["v"], max_version=10)
    # max_versions=3 keeps the three newest, newest first.
    assert [(v, ts) for _, v, ts in row.attribute_columns] == [("t4", 4000), ("t3", 3000), ("t2", 2000)]
    _, row, _ = ots.get_row("orders", key, columns_to_get=["v"], time_range=(2000, 3500), max_version=None)
    assert [ts for _, _, ts in row.attribute_columns] == [3000, 2000]
    _, row, _ = ots.get_row("orders", key, columns_to_get=["v"], time_range=3000, max_version=None)
    assert [ts for _, _, ts in row.attribute_columns] == [3000]

    ots.update_row("orders", Row(key, {"delete": [("v", None, 3000)], "delete_all": ["w"], "increment": [("n", 5)]}),
                   Condition(RowExistenceExpectation.EXPECT_EXIST))
    ots.update_row("orders", Row(key, {"increment": [("n", -2)]}), Condition(RowExistenceExpectation.IGNORE))
    _, row, _ = ots.get_row("orders", key, max_version=10)
    got = [(name, value, ts) for name, value, ts in row.attribute_columns if name == "v"]
    assert [ts for _, _, ts in got] == [4000, 2000]
    assert {name for name, _, _ in row.attribute_columns} == {"v", "n"}
    assert [value for name, value, _ in row.attribute_columns if name == "n"][0] == 3


def test_get_range_pages_both_directions(ots):
    _create(ots)
    keys = [(i, f"n{j}") for i in range(6) for j in range(2)]
    for i, name in keys:
        ots.put_row("orders", Row([("id", i), ("name", name)], [("v", i)]))
    start = [("id", INF_MIN), ("name", INF_MIN)]
    end = [("id", INF_MAX), ("name", INF_MAX)]

    def read_all(direction, lower, upper):
        seen, next_key = [], lower
        while next_key is not None:
            _, next_key, rows, _ = ots.get_range("orders", direction, next_key, upper, limit=5, max_version=1)
            seen.extend((r.primary_key[0][1], r.primary_key[1][1]) for r in rows)
        return seen

    assert read_all(Direction.FORWARD, start, end) == keys
    assert read_all(Direction.BACKWARD, end, start) == keys[::-1]
    # A bounded range: id in [2, 4), on the whole key.
    _, next_key, rows, _ = ots.get_range("orders", Direction.FORWARD, [("id", 2), ("name", INF_MIN)],
                                         [("id", 4), ("name", INF_MIN)], max_version=1)
    assert next_key is None
    assert [r.primary_key[0][1] for r in rows] == [2, 2, 3, 3]


def test_get_range_pages_on_the_server_row_cap():
    from beam_tunnel.emulator import EmulatorServer

    with EmulatorServer(range_max_rows=3) as server:
        ots = tablestore.OTSClient(server.endpoint, server.access_key_id, server.access_key_secret,
                                   server.instance_name, retry_policy=tablestore.NoRetryPolicy())
        _create(ots, schema=[("id", "INTEGER")])
        for i in range(7):
            ots.put_row("orders", Row([("id", i)], [("v", "x" * 10)]))
        _, next_key, rows, _ = ots.get_range("orders", Direction.FORWARD, [("id", INF_MIN)], [("id", INF_MAX)],
                                             max_version=1)
        assert [r.primary_key for r in rows] == [[("id", 0)], [("id", 1)], [("id", 2)]]
        assert next_key == [("id", 3)]


def test_batch_write_reports_each_row(ots):
    _create(ots)
    ots.put_row("orders", Row([("id", 1), ("name", "exists")], [("v", 0)]))
    rows = [
        PutRowItem(Row([("id", 2), ("name", "new")], [("v", 1)]), Condition(RowExistenceExpectation.IGNORE)),
        PutRowItem(Row([("id", 1), ("name", "exists")], [("v", 2)]),
                   Condition(RowExistenceExpectation.EXPECT_NOT_EXIST)),
        UpdateRowItem(Row([("id", 3), ("name", "upd")], {"put": [("w", 3)]}),
                      Condition(RowExistenceExpectation.IGNORE)),
        DeleteRowItem(Row([("id", 9), ("name", "gone")]), Condition(RowExistenceExpectation.EXPECT_EXIST)),
        PutRowItem(Row([("id", "wrong-type"), ("name", "x")], [("v", 1)]), Condition(RowExistenceExpectation.IGNORE)),
    ]
    request = BatchWriteRowRequest()
    request.add(TableInBatchWriteRowItem("orders", rows))
    result = ots.batch_write_row(request)
    put_ok, put_fail = result.get_put()
    assert len(put_ok) == 1 and len(put_fail) == 2
    assert [item.error_code for item in put_fail] == ["OTSConditionCheckFail", "OTSParameterInvalid"]
    assert "id" in put_fail[1].error_message
    update_ok, _ = result.get_update()
    _, delete_fail = result.get_delete()
    assert len(update_ok) == 1
    assert [item.error_code for item in delete_fail] == ["OTSConditionCheckFail"]

    _, row, _ = ots.get_row("orders", [("id", 1), ("name", "exists")], max_version=1)
    assert row.attribute_columns[0][:2] == ("v", 0)  # the failed row changed nothing
    _, row, _ = ots.get_row("orders", [("id", 3), ("name", "upd")], max_version=1)
    assert row.attribute_columns[0][:2] == ("w", 3)


def test_batch_write_to_a_missing_table_fails_per_row(ots):
    _create(ots)
    request = BatchWriteRowRequest()
    request.add(TableInBatchWriteRowItem("orders", [PutRowItem(Row([("id", 1), ("name", "a")], [("v", 1)]),
                                                               Condition(RowExistenceExpectation.IGNORE))]))
    request.add(TableInBatchWriteRowItem("missing", [PutRowItem(Row([("id", 1)], [("v", 1)]),
                                                                Condition(RowExistenceExpectation.IGNORE))]))
    result = ots.batch_write_row(request)
    assert [item.error_code for item in result.get_failed_of_put()] == ["OTSObjectNotExist"]
    assert len(result.get_succeed_of_put()) == 1


def test_primary_key_schema_checks_name_the_column(ots):
    _create(ots)
    err = _error(lambda: ots.put_row("orders", Row([("id", "x"), ("name", "a")], [("v", 1)])))
    assert err.code == "OTSParameterInvalid" and "'id'" in err.message and "INTEGER" in err.message
    err = _error(lambda: ots.put_row("orders", Row([("id", 1)], [("v", 1)])))
    assert err.code == "OTSParameterInvalid" and "name" in err.message
    err = _error(lambda: ots.put_row("orders", Row([("name", "a"), ("id", 1)], [("v", 1)])))
    assert err.code == "OTSParameterInvalid" and "'id'" in err.message


def test_auto_increment_primary_key(ots):
    _create(ots, "events", schema=[("shard", "STRING"), ("seq", "INTEGER", PK_AUTO_INCR)])
    returned = []
    for _ in range(3):
        _, row = ots.put_row("events", Row([("shard", "a"), ("seq", PK_AUTO_INCR)], [("v", 1)]),
                             return_type=ReturnType.RT_PK)
        returned.append(row.primary_key[1][1])
    assert returned == sorted(returned) and len(set(returned)) == 3
    _, row, _ = ots.get_row("events", [("shard", "a"), ("seq", returned[1])], max_version=1)
    assert row.attribute_columns[0][:2] == ("v", 1)


def test_split_points_become_partitions(ots, server):
    # OTSClient.create_table does not pass split points on, but the SDK's own
    # encoder writes them (PartitionRange bounds); drive it directly.
    ots._request_helper("CreateTable", TableMeta("t", [("id", "INTEGER")]), TableOptions(), _THROUGHPUT,
                        None, [], [10, 20])
    partitions = server.backend.tables.list_partitions("t")
    assert [(p.start, p.end) for p in partitions] == [
        (INF_MIN_EMU, (("id", 10),)), ((("id", 10),), (("id", 20),)), ((("id", 20),), INF_MAX_EMU)
    ]
    assert server.backend.tables.describe_table("t").split_points == (10, 20)


def test_concurrent_writers_and_readers(ots, server):
    import threading

    from beam_tunnel.emulator.model.tables import StreamSpec

    _create(ots, schema=[("id", "INTEGER")])
    server.backend.tables.update_table("orders", stream=StreamSpec(True, 24))
    failures = []

    def writer(base):
        try:
            for batch in range(10):
                request = BatchWriteRowRequest()
                request.add(TableInBatchWriteRowItem("orders", [
                    PutRowItem(Row([("id", base + batch * 10 + i)], [("v", i)]),
                               Condition(RowExistenceExpectation.IGNORE)) for i in range(10)
                ]))
                assert ots.batch_write_row(request).is_all_succeed()
        except Exception as err:  # noqa: BLE001 - reported below
            failures.append(err)

    def reader():
        try:
            for _ in range(20):
                ots.get_range("orders", Direction.FORWARD, [("id", INF_MIN)], [("id", INF_MAX)], max_version=1)
        except Exception as err:  # noqa: BLE001
            failures.append(err)

    threads = [threading.Thread(target=writer, args=(k * 1000,)) for k in range(4)]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    rows, next_key = [], [("id", INF_MIN)]
    while next_key is not None:
        _, next_key, page, _ = ots.get_range("orders", Direction.FORWARD, next_key, [("id", INF_MAX)], max_version=1)
        rows.extend(page)
    assert len(rows) == 400
    partition = server.backend.tables.list_partitions("orders")[0].partition_id
    entries = server.backend.streams.read("orders", partition, max_records=1000)
    sequences = [entry.sequence for entry in entries]
    assert len(entries) == 400 and sequences == sorted(set(sequences))
