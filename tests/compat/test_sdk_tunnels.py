"""The official Go TunnelDaemon and Java TunnelWorker read each tunnel type
from the emulator: every row once, every change once and in order, full
data before the stream, a split parent before its children. The SDKs also
write the rows, through their own table API."""

import pytest

from scenario_kit import (
    check_put_values,
    check_stream_order,
    consume_fields,
    deletes,
    is_full_data,
    keys,
    make_table,
    puts,
    updates,
)
from sdk_kit import connection

pytestmark = pytest.mark.official_sdk


def test_table_api_writes_and_base_data_reads_every_row_once(sdk, server):
    conn = connection(server)
    changes = puts(keys("abcdefghij", 30))
    assert sdk.call("write", table="t", create=True, changes=changes, **conn)["written"] == 300
    tunnel = sdk.call("create_tunnel", table="t", tunnel="full", type="BaseData", **conn)
    if sdk.language == "java":
        assert tunnel["response_validation"] is True

    done = sdk.call("consume", **conn, **consume_fields(sdk.language, tunnel["tunnel_id"], expect=300))
    records = sdk.records(done["id"])

    assert done["reason"] == "expect"
    assert sorted(r["pk"]["id"] for r in records) == sorted(c[1] for c in changes)
    for record in records:
        assert record["action"] == "put" and is_full_data(record), record
        assert record["channel"].startswith("BaseData_"), record
        check_put_values(record)
    assert {r["columns"][0]["value"] for r in records if r["columns"][0]["name"] == "b"} == {True, False}


def test_stream_every_change_once_in_order_per_channel(sdk, server):
    conn = connection(server)
    make_table(server, "t", split_points=("h", "q"))
    tunnel = sdk.call("create_tunnel", table="t", tunnel="inc", type="Stream", **conn)
    consumer = sdk.send("consume", **conn, **consume_fields(sdk.language, tunnel["tunnel_id"]))
    row_keys = keys("bjs", 20)
    changes = puts(row_keys) + updates(row_keys[::3]) + deletes(row_keys[1::4]) + puts(row_keys[1::4])
    sdk.call("write", table="t", changes=changes, **conn)

    sdk.wait_for_records([consumer], len(changes))
    sdk.stop(consumer)
    sdk.wait(consumer)

    records = sdk.records(consumer)
    check_stream_order(records, changes)
    assert len({r["channel"] for r in records}) == 3
    for record in records:
        if record["action"] == "put":
            check_put_values(record)
        elif record["action"] == "delete":
            assert record["columns"] == [], record


def test_base_and_stream_reads_full_data_before_stream(sdk, server):
    conn = connection(server)
    make_table(server, "t", split_points=("m",))
    row_keys = keys("cx", 40)
    sdk.call("write", table="t", changes=puts(row_keys), **conn)
    tunnel = sdk.call("create_tunnel", table="t", tunnel="both", type="BaseAndStream", **conn)
    consumer = sdk.send("consume", **conn, **consume_fields(sdk.language, tunnel["tunnel_id"]))
    sdk.wait_for_records([consumer], len(row_keys))
    # Changed only once the full data is read: they belong to the stream alone.
    changes = updates(row_keys[::4]) + deletes(row_keys[1::8])
    sdk.call("write", table="t", changes=changes, **conn)

    sdk.wait_for_records([consumer], len(row_keys) + len(changes))
    sdk.stop(consumer)
    sdk.wait(consumer)

    records = sdk.records(consumer)
    full, stream = records[: len(row_keys)], records[len(row_keys) :]
    assert all(is_full_data(r) and r["channel"].startswith("BaseData_") for r in full)
    assert sorted(r["pk"]["id"] for r in full) == sorted(row_keys)
    check_stream_order(stream, changes)


def test_split_parent_is_read_before_its_children(sdk, server):
    conn = connection(server)
    (parent,) = make_table(server, "t")
    tunnel = sdk.call("create_tunnel", table="t", tunnel="inc", type="Stream", **conn)
    consumer = sdk.send("consume", **conn, **consume_fields(sdk.language, tunnel["tunnel_id"]))
    before = puts(keys("dw", 10, "p"))
    sdk.call("write", table="t", changes=before, **conn)
    sdk.wait_for_records([consumer], len(before))

    children = server.admin.split_partition("t", parent, "m")
    after = puts(keys("dw", 10, "c")) + updates(keys("dw", 3, "p"))
    sdk.call("write", table="t", changes=after, **conn)
    sdk.wait_for_records([consumer], len(before) + len(after))
    sdk.stop(consumer)
    sdk.wait(consumer)

    records = sdk.records(consumer)
    channels = [r["channel"] for r in records]
    assert channels[: len(before)] == [parent] * len(before)
    assert set(channels[len(before) :]) == set(children)
    check_stream_order(records, before + after)
