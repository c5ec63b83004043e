"""Official SDK workers share a tunnel: two of them, or one beside a
beam_tunnel.TunnelWorker. The emulator spreads the channels evenly over the
clients, and together they read every change once."""

import threading

import pytest

from beam_tunnel.worker import TunnelWorker, WorkerConfig
from scenario_kit import (
    check_stream_order,
    consume_fields,
    keys,
    make_table,
    owners,
    puts,
    record_fields,
    tunnel_client,
    updates,
    wait_for,
)
from sdk_kit import connection

pytestmark = pytest.mark.official_sdk

_FOUR_PARTITIONS = ("f", "m", "t")


def _balanced(client, table, tunnel, clients=2, channels=4):
    view = owners(client, table, tunnel)
    counts = sorted(len(ids) for ids in view.values())
    return view if len(view) == clients and counts == [channels // clients] * clients else None


def _changes():
    row_keys = keys("cjpw", 25)
    return puts(row_keys) + updates(row_keys[::5])


def test_two_sdk_workers_balance_and_read_every_change_once(sdk, server):
    conn = connection(server)
    make_table(server, "t", split_points=_FOUR_PARTITIONS)
    tunnel = sdk.call("create_tunnel", table="t", tunnel="inc", type="Stream", **conn)
    first = sdk.send("consume", **conn, **consume_fields(sdk.language, tunnel["tunnel_id"]))
    second = sdk.send("consume", **conn, **consume_fields(sdk.language, tunnel["tunnel_id"]))
    client = tunnel_client(server)
    wait_for(lambda: _balanced(client, "t", "inc"), "4 channels spread 2 and 2 over the two SDK workers")

    changes = _changes()
    sdk.call("write", table="t", changes=changes, **conn)
    sdk.wait_for_records([first, second], len(changes))
    for consumer in (first, second):
        sdk.stop(consumer)
        sdk.wait(consumer)

    first_channels = {r["channel"] for r in sdk.records(first)}
    second_channels = {r["channel"] for r in sdk.records(second)}
    assert len(first_channels) == len(second_channels) == 2
    assert not first_channels & second_channels
    check_stream_order(sdk.records(first) + sdk.records(second), changes)


def test_sdk_worker_and_beam_tunnel_worker_share_a_tunnel(sdk, server):
    conn = connection(server)
    make_table(server, "t", split_points=_FOUR_PARTITIONS)
    tunnel = sdk.call("create_tunnel", table="t", tunnel="inc", type="Stream", **conn)
    sdk_consumer = sdk.send("consume", **conn, **consume_fields(sdk.language, tunnel["tunnel_id"]))
    client = tunnel_client(server)
    python_records = []
    lock = threading.Lock()

    def process(records, context):
        with lock:
            python_records.extend(record_fields(r, context.channel_id) for r in records)

    config = WorkerConfig(heartbeat_interval_s=0.5, heartbeat_timeout_s=10, checkpoint_interval_s=0.3)
    worker = TunnelWorker(client, tunnel["tunnel_id"], process, config)
    worker.start()
    try:
        wait_for(lambda: _balanced(client, "t", "inc"), "4 channels spread 2 and 2 over the SDK and Python workers")
        changes = _changes()
        sdk.call("write", table="t", changes=changes, **conn)
        wait_for(
            lambda: len(sdk.records(sdk_consumer)) + len(python_records) >= len(changes),
            f"{len(changes)} changes read by the two workers together",
        )
    finally:
        assert worker.stop(timeout=30)
        sdk.stop(sdk_consumer)
        sdk.wait(sdk_consumer)

    sdk_channels = {r["channel"] for r in sdk.records(sdk_consumer)}
    python_channels = {r["channel"] for r in python_records}
    assert len(sdk_channels) == len(python_channels) == 2
    assert not sdk_channels & python_channels
    check_stream_order(sdk.records(sdk_consumer) + python_records, changes)
