"""read_records decodes real PlainBuffer rows into ChangeRecords.

The row bytes come from outside this library where possible: the official
SDK's PlainBuffer builder (test-only import) for put and delete rows, and a
base-data row captured from the real service (tunnel-protocol.md §3.1's
verified vector). Stream rows with sequence info use the project's encoder,
as the official Python SDK cannot write that extension.
"""

from __future__ import annotations

import pytest

from _client_support import ACCESS_KEY_ID, INSTANCE, SECRET, FakeClock, policy
from _scripted_server import Fail, Ok
from beam_tunnel import errors
from beam_tunnel.client import TunnelClient
from beam_tunnel.protocol import tunnel_pb2 as pb
from beam_tunnel.protocol.plainbuffer import encode_row, encode_row_without_pk
from beam_tunnel.protocol.rows import Cell, CellOp, Row, SequenceInfo
from beam_tunnel.records import Action, ColumnOp

ts_builder = pytest.importorskip("tablestore.plainbuffer.plain_buffer_builder")
Builder = ts_builder.PlainBufferBuilder

# A base-data row from the real service: primary key `key` = "5".
SERVICE_ROW = bytes.fromhex("75000000" "01" "03" "04" "03000000" "6b6579" "05" "06000000" "03" "01000000" "35"
                            "0a" "20" "09" "ae")


def test_records_are_decoded_in_order(server, client):
    put = bytes(Builder.serialize_for_put_row([("id", 7), ("name", "x")], [("col", "v", 1_700_000_000_123)]))
    delete = bytes(Builder.serialize_for_delete_row([("id", 8)]))
    update = encode_row(Row(
        (("id", 9),),
        (Cell("col", "new", 1_700_000_000_200), Cell("gone", None, None, CellOp.DELETE_ALL_VERSIONS)),
        sequence=SequenceInfo(0, 1_700_000_000_200_123, 4),
    ))
    origin = encode_row_without_pk((Cell("col", "old", 1_700_000_000_100),))
    response = pb.ReadRecordsResponse(
        records=[
            pb.Record(action_type=pb.PUT_ROW, record=SERVICE_ROW),
            pb.Record(action_type=pb.PUT_ROW, record=put),
            pb.Record(action_type=pb.DELETE_ROW, record=delete),
            pb.Record(action_type=pb.UPDATE_ROW, record=update, origin_record=origin),
        ],
        next_token="tok-next",
        may_more_record=True,
    )
    server.script("/tunnel/readrecords", Ok(response))

    result = client.read_records("tid-1", "client-1", "shard-3", "tok-A")

    base, put_rec, delete_rec, update_rec = result.records
    assert (base.action, base.primary_key, base.columns, base.sequence) == (Action.PUT, (("key", "5"),), (), None)
    assert put_rec.primary_key == (("id", 7), ("name", "x"))
    assert [(c.name, c.value, c.timestamp_ms, c.op) for c in put_rec.columns] == [
        ("col", "v", 1_700_000_000_123, ColumnOp.PUT)]
    assert delete_rec.action is Action.DELETE and delete_rec.primary_key == (("id", 8),)
    assert update_rec.action is Action.UPDATE
    assert [(c.name, c.op) for c in update_rec.columns] == [
        ("col", ColumnOp.PUT), ("gone", ColumnOp.DELETE_ALL_VERSIONS)]
    assert [(c.name, c.value) for c in update_rec.origin_columns] == [("col", "old")]
    assert update_rec.sequence == SequenceInfo(0, 1_700_000_000_200_123, 4)
    assert {r.channel_id for r in result.records} == {"shard-3"}
    assert (result.next_token, result.may_more_record, result.finished) == ("tok-next", True, False)
    assert result.size_bytes == len(response.SerializeToString())


def test_corrupt_record_is_a_protocol_error_and_not_retried(server, client, clock):
    corrupt = SERVICE_ROW[:-1] + b"\x00"  # wrong row checksum
    bad = Ok(pb.ReadRecordsResponse(records=[pb.Record(action_type=pb.PUT_ROW, record=corrupt)], next_token="t"))
    server.script("/tunnel/readrecords", bad, Ok(pb.ReadRecordsResponse(next_token="t")))

    with pytest.raises(errors.PlainBufferError) as caught:
        client.read_records("tid-1", "client-1", "shard-3", "tok-A")

    assert "shard-3" in str(caught.value)
    assert len(server.requests_to("/tunnel/readrecords")) == 1 and clock.sleeps == []


def test_read_records_uses_its_own_retry_policy(server, clock):
    meta_clock = FakeClock()
    server.script("/tunnel/readrecords",
                  Fail(503, "OTSTunnelServerUnavailable"), Ok(pb.ReadRecordsResponse(next_token="u")))
    server.script("/tunnel/getcheckpoint", Fail(503, "OTSTunnelServerUnavailable"),
                  Ok(pb.GetCheckpointResponse(checkpoint="tok-A", sequence_number=0)))
    with TunnelClient(server.endpoint, INSTANCE, ACCESS_KEY_ID, SECRET,
                      read_retry=policy(clock), meta_retry=policy(meta_clock)) as client:
        assert client.read_records("tid-1", "client-1", "shard-3", "tok-A").next_token == "u"
        assert client.get_checkpoint("tid-1", "client-1", "shard-3") == ("tok-A", 0)
    assert len(clock.sleeps) == 1 and len(meta_clock.sleeps) == 1
