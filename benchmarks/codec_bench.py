"""PlainBuffer decode speed: beam_tunnel's codec against the official SDK's.

Decodes one batch of realistic rows (3 primary-key columns, 5 data columns
with cell timestamps, about 300 bytes each) with beam_tunnel's decoder and
with the official ``tablestore`` SDK's pure-Python reader, both verifying
checksums, in the same process; then decodes the same rows as stream records
(with sequence info) through ``decode_records`` into ChangeRecords.

Each figure is the best of several rounds, and the rounds of the two
decoders alternate, so background load hits both alike. The last line is
``decode speedup vs official SDK: X.XX``.

Usage::

    python benchmarks/codec_bench.py [--rows N] [--rounds R]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import random
import string
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from beam_tunnel.protocol import tunnel_pb2  # noqa: E402
from beam_tunnel.protocol.plainbuffer import decode_row, encode_row  # noqa: E402
from beam_tunnel.protocol.rows import Cell, Row, SequenceInfo  # noqa: E402
from beam_tunnel.records import decode_records  # noqa: E402

_STATUSES = ("created", "paid", "shipped", "delivered", "returned")
_ALPHABET = string.ascii_lowercase + string.digits


def _make_rows(count: int, seed: int = 20240913) -> list:
    """Order rows: unique ids, varied notes, one write time per row."""
    rnd = random.Random(seed)
    rows = []
    write_ms = 1_700_000_000_000
    for index in range(count):
        write_ms += rnd.randrange(1, 50)
        note = "".join(rnd.choice(_ALPHABET) for _ in range(rnd.randrange(20, 60)))
        rows.append(
            Row(
                primary_key=(
                    ("tenant", f"t{rnd.randrange(200):04d}"),
                    ("user_id", rnd.randrange(1 << 40)),
                    ("order_id", f"{index:08d}{rnd.randrange(1 << 32):08x}"),
                ),
                cells=(
                    Cell("status", rnd.choice(_STATUSES), write_ms),
                    Cell("amount", round(rnd.uniform(1, 5000), 2), write_ms),
                    Cell("quantity", rnd.randrange(1, 20), write_ms),
                    Cell("note", note, write_ms),
                    Cell("express", rnd.random() < 0.3, write_ms),
                ),
            )
        )
    return rows


def _best_rate(work, items: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return items / best


def _report(label: str, rate: float, unit: str) -> None:
    print(f"{label + ':':44}{rate:12,.0f} {unit}/s  {1e6 / rate:6.2f} us each")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5000, help="rows in the batch (default 5000)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per decoder (default 5)")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.rounds < 1:
        parser.error(f"--rows and --rounds must be >= 1, got {args.rows} and {args.rounds}")

    logging.disable(logging.WARNING)  # the SDK logs that its native parts are missing
    try:
        from tablestore.plainbuffer.plain_buffer_coded_stream import PlainBufferCodedInputStream
        from tablestore.plainbuffer.plain_buffer_stream import PlainBufferInputStream
    except ImportError:
        print("the official SDK is needed for the comparison: pip install tablestore==6.4.8", file=sys.stderr)
        return 2

    rows = _make_rows(args.rows)
    payloads = [encode_row(row) for row in rows]

    def ours():
        for data in payloads:
            decode_row(data)

    def official():
        for data in payloads:
            PlainBufferCodedInputStream(PlainBufferInputStream(data)).read_row()

    # Both must read the same thing, or the race means nothing.
    for row, data in zip(rows[:100], payloads[:100]):
        key, columns = PlainBufferCodedInputStream(PlainBufferInputStream(data)).read_row()
        if (
            decode_row(data) != row
            or key != list(row.primary_key)
            or columns != [(c.name, c.value, c.timestamp) for c in row.cells]
        ):
            print(f"the decoders disagree on {row}", file=sys.stderr)
            return 1

    ours_rate = official_rate = 0.0
    for _ in range(args.rounds):
        ours_rate = max(ours_rate, _best_rate(ours, len(payloads), 1))
        official_rate = max(official_rate, _best_rate(official, len(payloads), 1))

    response = tunnel_pb2.ReadRecordsResponse(next_token="t")
    for index, row in enumerate(rows):
        stream_row = row._replace(sequence=SequenceInfo(0, row.cells[0].timestamp * 1000 + index % 7, index % 3))
        response.records.add(action_type=tunnel_pb2.PUT_ROW, record=encode_row(stream_row))
    body = response.SerializeToString()
    records = tunnel_pb2.ReadRecordsResponse.FromString(body).records
    records_rate = _best_rate(lambda: decode_records(records, "stream-1"), len(rows), args.rounds)
    parsed_rate = _best_rate(
        lambda: decode_records(tunnel_pb2.ReadRecordsResponse.FromString(body).records, "stream-1"),
        len(rows),
        args.rounds,
    )
    encode_rate = _best_rate(lambda: [encode_row(row) for row in rows], len(rows), args.rounds)

    average = sum(map(len, payloads)) / len(payloads)
    print(f"rows: {len(rows)} x {average:.0f} bytes (3 key + 5 data columns, cell timestamps); best of {args.rounds}")
    print(f"python {platform.python_version()} ({platform.python_implementation()})")
    _report("beam_tunnel decode_row, checksums verified", ours_rate, "rows")
    _report("official SDK read_row (pure Python)", official_rate, "rows")
    _report("decode_records -> ChangeRecord (stream)", records_rate, "records")
    _report("  the same, with the protobuf parse", parsed_rate, "records")
    _report("beam_tunnel encode_row", encode_rate, "rows")
    print(f"decode speedup vs official SDK: {ours_rate / official_rate:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
