"""A corrupt row in the stream: by default the pipeline fails naming where;
with dead_letter=True it goes to a tagged output with its raw bytes and the
read goes on. Never silently dropped.

The corruption is real: bytes of one stream-log entry are overwritten in the
emulator's SQLite file, so the service answers ReadRecords with a record
whose PlainBuffer checksum does not match.
"""

from __future__ import annotations

import os
import sqlite3

import apache_beam as beam
import pytest

from beam_kit import RecordLog, client_of, fnapi_options, keys, make_table, read, read_log, write

from beam_tunnel.emulator.storage import DB_FILE_NAME


def _corrupt_one_entry(server, data_dir) -> bytes:
    path = os.path.join(data_dir, DB_FILE_NAME)
    with sqlite3.connect(path, timeout=30) as conn:
        pid, ts_us, row_index, record = conn.execute(
            "SELECT pid, ts_us, row_index, record FROM stream_log ORDER BY ts_us, row_index LIMIT 1 OFFSET 7"
        ).fetchone()
        broken = bytearray(record)
        broken[len(broken) // 2] ^= 0x5A
        conn.execute("UPDATE stream_log SET record = ? WHERE pid = ? AND ts_us = ? AND row_index = ?",
                     (bytes(broken), pid, ts_us, row_index))
    return bytes(broken)


def _prepare(server, tmp_path):
    make_table(server, "orders", partitions=1)
    client_of(server).create_tunnel("orders", "tail", "Stream")
    written = write(server, "orders", keys(40))
    broken = _corrupt_one_entry(server, str(tmp_path / "emulator"))
    return written, broken


def test_a_corrupt_record_fails_the_pipeline_naming_channel_and_token(server, tmp_path):
    _prepare(server, tmp_path)
    with pytest.raises(Exception, match=r"channel orders_\S+, token .*dead_letter=True"):
        with beam.Pipeline(options=fnapi_options()) as pipeline:
            _ = pipeline | read(server, "orders", "tail", tunnel_type="Stream", stop_when_caught_up=True)


class _DeadLetterLog(beam.DoFn):
    def __init__(self, path):
        self._path = path

    def process(self, corrupt):
        with open(self._path, "a", encoding="utf-8") as out:
            out.write(f"{corrupt.channel_id}\t{corrupt.token}\t{corrupt.index}\t{corrupt.record.hex()}\t"
                      f"{corrupt.error}\n")


def test_dead_letter_routes_the_corrupt_record_and_reading_goes_on(server, tmp_path):
    written, broken = _prepare(server, tmp_path)
    records_log, dead_log = str(tmp_path / "records.jsonl"), str(tmp_path / "dead.tsv")
    with beam.Pipeline(options=fnapi_options()) as pipeline:
        result = pipeline | read(server, "orders", "tail", tunnel_type="Stream", stop_when_caught_up=True,
                                 dead_letter=True)
        _ = result.records | beam.ParDo(RecordLog(records_log))
        _ = result.dead_letter | beam.ParDo(_DeadLetterLog(dead_log))
    rows = read_log(records_log)
    with open(dead_log, encoding="utf-8") as lines:
        dead = [line.rstrip("\n").split("\t") for line in lines]
    assert len(dead) == 1
    channel, token, _index, raw, error = dead[0]
    assert channel.startswith("orders_") and token
    assert bytes.fromhex(raw) == broken, "the raw bytes are kept whole"
    assert "checksum" in error or "corrupt" in error or "offset" in error, error
    assert len(rows) == len(written) - 1, "every other record is read"
    assert {r[2] for r in rows} < {n for _, n in written}
