"""How fast ChangeRecordCoder encodes and decodes, against Beam's own coders.

Times encode+decode of the same typical records (3 key columns, 5 data
columns, a stream sequence; about 300 bytes as PlainBuffer) through
ChangeRecordCoder, PickleCoder and FastPrimitivesCoder (which pickles
objects it does not know), on the coders' implementations as a runner calls
them, in alternating rounds (best round kept). Prints µs per element,
encoded sizes and the ratios; the last line is
``coder µs/element (encode+decode): X``.

Run: ``.venv/bin/python benchmarks/coder_bench.py [--records N] [--rounds R]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from apache_beam import coders  # noqa: E402

from beam_tunnel.beam.coders import ChangeRecordCoder  # noqa: E402
from beam_tunnel.protocol.rows import SequenceInfo  # noqa: E402
from beam_tunnel.records import Action, ChangeRecord, Column, ColumnOp  # noqa: E402

_BASE_TIME_US = 1_764_600_000_000_000  # December 2025, as a write time would be


def typical_records(count: int):
    """Records shaped like an orders table's stream: 3 key columns
    (str, int, bytes), 5 data columns of mixed types."""
    records = []
    for i in range(count):
        written_us = _BASE_TIME_US + i * 997
        ts_ms = written_us // 1000
        records.append(
            ChangeRecord(
                action=Action.UPDATE if i % 3 else Action.PUT,
                primary_key=(
                    ("region", f"cn-hangzhou-{i % 7}"),
                    ("order_id", 1_000_000 + i),
                    ("shard", (i % 251).to_bytes(2, "big") * 4),
                ),
                columns=(
                    Column("customer", f"customer-{i % 5000:05d}@example.com", ts_ms, ColumnOp.PUT),
                    Column("amount_cents", 100 + (i * 37) % 900_000, ts_ms, ColumnOp.PUT),
                    Column("price", 19.99 + i % 100, ts_ms, ColumnOp.PUT),
                    Column("paid", i % 2 == 0, ts_ms, ColumnOp.PUT),
                    Column("note", "ship to the back door, ring twice; fragile items inside", ts_ms, ColumnOp.PUT),
                ),
                origin_columns=(),
                sequence=SequenceInfo(1, written_us, i % 50),
                channel_id="Stream_orders_1795506053958315_2",
            )
        )
    return records


def _time_round_trip(coder, records) -> float:
    """Seconds per element for encode then decode, through the coder's impl
    (what a runner calls)."""
    impl = coder.get_impl()
    encode, decode = impl.encode, impl.decode
    start = time.perf_counter()
    for record in records:
        decode(encode(record))
    return (time.perf_counter() - start) / len(records)


def _check(coder, records) -> None:
    for record in records[:100]:
        back = coder.decode(coder.encode(record))
        if back != record:
            raise SystemExit(f"{coder!r} did not round-trip {record!r}: got {back!r}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    records = typical_records(args.records)
    contenders = {
        "ChangeRecordCoder": ChangeRecordCoder(),
        "PickleCoder": coders.PickleCoder(),
        "FastPrimitivesCoder": coders.FastPrimitivesCoder(),
    }
    for coder in contenders.values():
        _check(coder, records)
    # Rounds alternate between the coders and each keeps its best round, so
    # load from other processes on the machine skews the ratios less.
    results = {name: float("inf") for name in contenders}
    for _ in range(args.rounds):
        for name, coder in contenders.items():
            results[name] = min(results[name], _time_round_trip(coder, records))
    for name, coder in contenders.items():
        size = sum(len(coder.encode(r)) for r in records) / len(records)
        print(f"{name:<20} {results[name] * 1e6:7.2f} µs/element (encode+decode), {size:6.1f} bytes/element")
    ours = results["ChangeRecordCoder"]
    for name in ("PickleCoder", "FastPrimitivesCoder"):
        print(f"ChangeRecordCoder/{name} time ratio: {ours / results[name]:.2f} (below 1 is faster)")
    print(f"coder µs/element (encode+decode): {ours * 1e6:.2f}")


if __name__ == "__main__":
    main()
