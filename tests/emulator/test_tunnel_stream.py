"""Tunnels end to end: the official SDK writes, TunnelClient reads.

Every acknowledged write must appear exactly once in the stream, in
per-partition order, with before-images when the stream asks for them; a
full-data read returns every row once; stages and WAIT follow the rules.
"""

import pytest
import tablestore

from beam_tunnel.client import ChannelStatus, StartOffset, TunnelStage
from beam_tunnel.errors import TunnelExistError, ParameterInvalidError
from beam_tunnel.emulator import EmulatorServer, ManualClock
from beam_tunnel.records import Action

from tunnel_kit import Worker, find, make_table, ots_client, put, run_workers, status_of, tunnel_client


@pytest.fixture
def env():
    clock = ManualClock()
    with EmulatorServer(clock=clock) as server:
        yield server, clock, ots_client(server), tunnel_client(server)


def _write_mix(ots, table, keys):
    """Puts, updates and deletes over ``keys``; returns the acknowledged
    writes in order as (key, action)."""
    done = []
    for key in keys:
        put(ots, table, key, v=1, w="x")
        done.append((key, Action.PUT))
    for key in keys[::2]:
        row = tablestore.Row([("id", key)], {"put": [("v", 2)], "delete_all": ["w"]})
        ots.update_row(table, row, tablestore.Condition(tablestore.RowExistenceExpectation.IGNORE))
        done.append((key, Action.UPDATE))
    for key in keys[::3]:
        ots.delete_row(table, tablestore.Row([("id", key)]), tablestore.Condition(tablestore.RowExistenceExpectation.IGNORE))
        done.append((key, Action.DELETE))
    batch = tablestore.BatchWriteRowRequest()
    batch.add(tablestore.TableInBatchWriteRowItem(table, [
        tablestore.PutRowItem(tablestore.Row([("id", key)], [("v", 3)]),
                              tablestore.Condition(tablestore.RowExistenceExpectation.IGNORE))
        for key in keys[:4]
    ]))
    result = ots.batch_write_row(batch)
    assert result.is_all_succeed()
    done.extend((key, Action.PUT) for key in keys[:4])
    return done


def test_stream_tunnel_delivers_every_write_once_in_partition_order(env):
    server, _, ots, client = env
    make_table(server, "t", split_points=("m",), stream_columns=("v",))
    put(ots, "t", "before", v=0)  # written before the tunnel: LATEST skips it
    tunnel_id = client.create_tunnel("t", "tun", "Stream")
    keys = ["a", "c", "k", "m", "q", "z", "b", "y"]
    writes = _write_mix(ots, "t", keys)

    worker = Worker(client, tunnel_id)
    worker.run_until_idle()

    partitions = server.backend.tables.list_partitions("t")
    assert sorted(worker.records) == sorted(p.partition_id for p in partitions)
    low, high = partitions[0].partition_id, partitions[1].partition_id
    for channel_id, expected_keys in ((low, [k for k in keys if k < "m"]), (high, [k for k in keys if k >= "m"])):
        got = worker.records[channel_id]
        expected = [(k, a) for k, a in writes if k in expected_keys]
        assert [(r.key["id"], r.action) for r in got] == expected
        sequences = [r.sequence for r in got]
        assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
        assert all(r.channel_id == channel_id for r in got)
    records = worker.all_records()
    assert find(records, "before") is None
    # UpdateRow carries the before-image of "v" (1) and its own column ops.
    update = next(r for r in records if r.key["id"] == "a" and r.action is Action.UPDATE)
    assert [(c.name, c.value) for c in update.origin_columns] == [("v", 1)]
    assert [(c.name, c.value, c.op.value) for c in update.columns] == [
        ("v", 2, "put"), ("w", None, "delete_all_versions")]
    delete = next(r for r in records if r.key["id"] == "a" and r.action is Action.DELETE)
    assert delete.columns == ()
    # A second pass over the same checkpoints finds nothing new.
    assert worker.run_until_idle() == 0


def test_stream_caught_up_returns_empty_batch_with_same_token_then_new_data(env):
    server, _, ots, client = env
    make_table(server, "t", stream_columns=())
    tunnel_id = client.create_tunnel("t", "tun", "Stream")
    worker = Worker(client, tunnel_id)
    worker.heartbeat()
    (channel_id,) = worker.open_channels()
    token = client.get_checkpoint(tunnel_id, worker.client_id, channel_id).checkpoint
    empty = client.read_records(tunnel_id, worker.client_id, channel_id, token)
    assert empty.records == () and empty.next_token == token and empty.may_more_record is False
    put(ots, "t", "k1", v=1)
    put(ots, "t", "k2", v=2)
    got = client.read_records(tunnel_id, worker.client_id, channel_id, token)
    assert [r.key["id"] for r in got.records] == ["k1", "k2"]
    assert got.next_token != token
    # Idempotent for a given token.
    again = client.read_records(tunnel_id, worker.client_id, channel_id, token)
    assert again.records == got.records and again.next_token == got.next_token


def test_read_limits_page_with_may_more_record():
    with EmulatorServer(clock=ManualClock(), read_max_records=3) as server:
        ots, client = ots_client(server), tunnel_client(server)
        make_table(server, "t", stream_columns=())
        tunnel_id = client.create_tunnel("t", "tun", "Stream")
        for i in range(7):
            put(ots, "t", f"k{i}", v=i)
        worker = Worker(client, tunnel_id)
        worker.heartbeat()
        (channel_id,) = worker.open_channels()
        token = client.get_checkpoint(tunnel_id, worker.client_id, channel_id).checkpoint
        sizes, hints = [], []
        for _ in range(4):
            result = client.read_records(tunnel_id, worker.client_id, channel_id, token)
            sizes.append(len(result.records))
            hints.append(result.may_more_record)
            token = result.next_token
        assert sizes == [3, 3, 1, 0]
        assert hints == [True, True, False, False]


def test_earliest_and_start_offset(env):
    server, clock, ots, client = env
    make_table(server, "t", stream_columns=())
    put(ots, "t", "old", v=1)
    clock.advance(1)
    middle_ns = clock.now_us() * 1000
    clock.advance(1)
    put(ots, "t", "new", v=2)
    earliest = client.create_tunnel("t", "e", "Stream", start_offset=StartOffset.EARLIEST)
    from_middle = client.create_tunnel("t", "m", "Stream", start_offset=middle_ns)
    latest = client.create_tunnel("t", "l", "Stream")
    seen = {}
    for tunnel_id in (earliest, from_middle, latest):
        worker = Worker(client, tunnel_id)
        worker.run_until_idle()
        seen[tunnel_id] = [r.key["id"] for r in worker.all_records()]
    assert seen == {earliest: ["old", "new"], from_middle: ["new"], latest: []}


def test_end_offset_finishes_the_channel(env):
    server, clock, ots, client = env
    make_table(server, "t", stream_columns=())
    start_ns = clock.now_us() * 1000  # write times are whole µs
    put(ots, "t", "in1", v=1)
    clock.advance(1)
    end_ns = clock.now_ns()
    tunnel_id = client.create_tunnel("t", "tun", "Stream", start_offset=start_ns, end_offset=end_ns + 2_000_000_000)
    put(ots, "t", "in2", v=2)
    worker = Worker(client, tunnel_id)
    worker.run_until_idle()
    (channel_id,) = worker.records
    # Caught up but the end is still ahead: not finished.
    assert worker.tokens[channel_id] != "finished"
    clock.advance(3)
    put(ots, "t", "after", v=3)
    worker.run_until_idle()
    assert [r.key["id"] for r in worker.all_records()] == ["in1", "in2"]
    description = client.describe_tunnel("t", "tun")
    assert status_of(description, channel_id) == ChannelStatus.TERMINATED


def test_base_data_reads_every_row_once_over_two_clients(env):
    server, _, ots, client = env
    make_table(server, "t", split_points=("h", "p"))
    keys = [f"{chr(ord('a') + i % 26)}{i:03d}" for i in range(60)]
    for key in keys:
        put(ots, "t", key, v=len(key))
    tunnel_id = client.create_tunnel("t", "full", "BaseData")
    description = client.describe_tunnel("t", "full")
    assert description.tunnel.stage == TunnelStage.INIT_BASE_DATA_AND_STREAM_SHARD
    assert [c.channel_id.startswith("BaseData_") for c in description.channels] == [True] * 3
    assert {c.status for c in description.channels} == {ChannelStatus.WAIT}
    workers = [Worker(client, tunnel_id, tag="a"), Worker(client, tunnel_id, tag="b")]
    run_workers(workers)
    records = [r for w in workers for r in w.all_records()]
    assert sorted(r.key["id"] for r in records) == sorted(keys)
    assert all(r.action is Action.PUT and r.sequence is None for r in records)
    assert all(r.columns[0].value == len(r.key["id"]) for r in records)
    assert all(w.records for w in workers)  # both clients got work
    description = client.describe_tunnel("t", "full")
    # Finished: past ProcessBaseData (ProcessStream is the only later stage).
    assert description.tunnel.stage == TunnelStage.PROCESS_STREAM
    assert [t.stage for t in client.list_tunnels("t")] == [TunnelStage.PROCESS_STREAM]
    assert {c.status for c in description.channels} == {ChannelStatus.TERMINATED}
    assert sum(c.count for c in description.channels) == 60


def test_base_and_stream_switches_after_full_phase(env):
    server, _, ots, client = env
    make_table(server, "t", split_points=("m",))  # no stream yet
    for key in ("a", "n", "z"):
        put(ots, "t", key, v=0)
    tunnel_id = client.create_tunnel("t", "bs", "BaseAndStream")
    info = server.backend.tables.describe_table("t")
    assert info.stream.enabled and info.stream.expiration_hours == 168
    put(ots, "t", "b", v=1)  # after creation: in the stream only (the full phase is a snapshot)

    worker = Worker(client, tunnel_id)
    worker.heartbeat()
    description = client.describe_tunnel("t", "bs")
    assert description.tunnel.stage == TunnelStage.PROCESS_BASE_DATA
    stream_ids = [c.channel_id for c in description.channels if str(c.channel_type) == "Stream"]
    assert len(stream_ids) == 2
    assert all(status_of(description, cid) == ChannelStatus.WAIT for cid in stream_ids)
    assert set(worker.open_channels()) == {c.channel_id for c in description.channels} - set(stream_ids)

    worker.run_until_idle()
    description = client.describe_tunnel("t", "bs")
    assert description.tunnel.stage == TunnelStage.PROCESS_STREAM
    base = [r for cid, rs in worker.records.items() if cid.startswith("BaseData_") for r in rs]
    stream = [r for cid, rs in worker.records.items() if not cid.startswith("BaseData_") for r in rs]
    assert sorted(r.key["id"] for r in base) == ["a", "n", "z"]
    assert [r.key["id"] for r in stream] == ["b"]
    put(ots, "t", "x", v=9)
    worker.run_until_idle()
    assert [r.key["id"] for cid in stream_ids for r in worker.records[cid]] == ["b", "x"]


def test_create_tunnel_errors_and_listing(env):
    server, _, ots, client = env
    make_table(server, "t")
    tunnel_id = client.create_tunnel("t", "one", "Stream")
    with pytest.raises(TunnelExistError, match="'one' already exists"):
        client.create_tunnel("t", "one", "BaseData")
    with pytest.raises(ParameterInvalidError, match="'nope' does not exist"):
        client.create_tunnel("nope", "x", "Stream")
    make_table(server, "u")
    client.create_tunnel("u", "one", "BaseData")  # names are unique per table only
    assert [t.tunnel_id for t in client.list_tunnels("t")] == [tunnel_id]
    assert sorted(t.table_name for t in client.list_tunnels()) == ["t", "u"]
    client.delete_tunnel("t", "one")
    assert client.list_tunnels("t") == []
    with pytest.raises(ParameterInvalidError, match="does not exist"):
        client.delete_tunnel("t", "one")
    # Deleting the table takes its tunnels along.
    ots.delete_table("u")
    assert client.list_tunnels() == []
