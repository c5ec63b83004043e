"""Sync a Tablestore table into a SQL database: full data, then every change.

Usage::

    export ALIBABA_CLOUD_ACCESS_KEY_ID=... ALIBABA_CLOUD_ACCESS_KEY_SECRET=...
    python -m pipelines.sync_table --endpoint https://i.cn-hangzhou.ots.aliyuncs.com \\
        --instance i --table orders --target sqlite:///orders.db            # runs until stopped
    python -m pipelines.sync_table ... --until-caught-up --verify            # a bounded run, then a check
    python -m pipelines.sync_table ... --verify-only                         # just the check
    python -m pipelines.sync_table ... --runner=FlinkRunner --flink_master=localhost:8081 \\
        --environment_type=LOOPBACK --checkpointing_interval=10000 --streaming

Shape: ``ReadFromTunnel -> ApplyChanges``, fused, so each channel's records
reach the database in the order the tunnel delivered them. ``ApplyChanges``
collects a bundle's records and applies them in one transaction (see
``_sql_target``): per row, changes apply in sequence order and a change the
target already holds is skipped, so replays after a restart and retried
bundles leave the target as it was. Full-data records never overwrite a
stream change. The target gets the table's key columns plus a column per
attribute column seen (added when it first appears), and a state table
``<target>__sync_state`` with the last applied sequence and the cell
versions per row (and tombstones for deleted rows).

Any flag this parser does not know is a Beam pipeline option (``--runner``,
``--streaming``, ``--flink_master``, ...). Without ``--runner`` the pipeline
runs on FnApiRunner, the engine DirectRunner falls back to without Prism
(``--runner=DirectRunner`` tries Prism first, which downloads its binary).
"""

from __future__ import annotations

import argparse
import datetime
import logging
import sys
from typing import List, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from beam_tunnel import ReadFromTunnel
from beam_tunnel.beam.rows import describe_table_schema
from beam_tunnel.client.config import TunnelConfig
from beam_tunnel.errors import ConfigError, TunnelError

from ._sql_target import SqlTarget
from ._source_rows import source_rows
from ._verify import Comparison, compare

__all__ = ["ApplyChanges", "SyncTable", "verify", "build_parser", "run", "main"]

_METRICS = "sync_table"


class ApplyChanges(beam.DoFn):
    """Apply change records to a :class:`SqlTarget`, a batch per bundle (and
    every ``batch_size`` records), each batch in one transaction."""

    def __init__(self, url: str, table: str, key_schema: Sequence[Tuple[str, str]], batch_size: int) -> None:
        self._url, self._table, self._key_schema = url, table, tuple(key_schema)
        self._batch_size = batch_size
        self._target: Optional[SqlTarget] = None
        self._buffer: List = []
        self._applied = Metrics.counter(_METRICS, "changes_applied")
        self._skipped = Metrics.counter(_METRICS, "changes_skipped")

    def setup(self) -> None:
        self._target = SqlTarget(self._url, self._table, self._key_schema).open()

    def start_bundle(self) -> None:
        self._buffer = []

    def process(self, record):
        self._buffer.append(record)
        if len(self._buffer) >= self._batch_size:
            self._flush()
        return ()

    def finish_bundle(self) -> None:
        # The bundle succeeds (and the tunnel checkpoint can follow) only
        # after its changes are committed; a failure retries the bundle,
        # whose already-committed part is then skipped by sequence.
        self._flush()

    def teardown(self) -> None:
        if self._target is not None:
            self._target.close()
            self._target = None

    def _flush(self) -> None:
        batch, self._buffer = self._buffer, []
        if batch:
            applied = self._target.apply(batch)
            self._applied.inc(applied)
            self._skipped.inc(len(batch) - applied)


class SyncTable(beam.PTransform):
    """``PCollection[ChangeRecord]`` -> the rows of a SQL table.

    Apply it right behind ``ReadFromTunnel`` (no shuffle in between: a
    shuffle would lose the per-channel order the sync relies on).

    Args:
      url: a SQLAlchemy URL (``sqlite:///orders.db``,
        ``postgresql+psycopg://user:pw@host/db``).
      table: the target table's name.
      key_schema: the source's key as ``(name, type)`` pairs
        (``describe_table_schema(client, table).key_schema``).
      batch_size: most records per transaction (default 1000).

    Raises:
      ConfigError: a malformed argument, named.
    """

    def __init__(self, url: str, table: str, key_schema: Sequence[Tuple[str, str]], batch_size: int = 1000) -> None:
        super().__init__()
        SqlTarget(url, table, key_schema)  # validates; connects only on the workers
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be an int >= 1, got {batch_size!r}")
        self._fn = ApplyChanges(url, table, key_schema, batch_size)

    def expand(self, records):
        return records | "ApplyChanges" >> beam.ParDo(self._fn)


def _tally(result) -> str:
    """", N changes applied, M skipped (already held)" from the job's
    metrics, or "" where the runner does not report them."""
    try:
        counters = result.metrics().query(MetricsFilter().with_namespace(_METRICS))["counters"]
    except Exception:  # a runner without metrics support: the count is a nicety
        return ""
    totals = {}
    for counter in counters:
        totals[counter.key.metric.name] = totals.get(counter.key.metric.name, 0) + (counter.committed or 0)
    if not totals:
        return ""
    return (f": {totals.get('changes_applied', 0)} changes applied, "
            f"{totals.get('changes_skipped', 0)} skipped (the target held them already)")


def verify(config: TunnelConfig, table: str, url: str, target_table: str) -> Comparison:
    """Compare ``target_table`` at ``url`` with the source ``table`` (GetRange)."""
    key_schema = describe_table_schema(config, table).key_schema
    with SqlTarget(url, target_table, key_schema) as target:
        target_rows = target.rows()
    return compare(source_rows(config, table), target_rows)


# ---- command line ---------------------------------------------------------------


def _stop_at(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--stop-at {text!r} is neither seconds since the epoch nor an ISO time")
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"--stop-at {text!r} needs a time zone, e.g. {text}+00:00")
    return moment.timestamp()


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.sync_table",
        description="Sync a Tablestore table into a SQL database through a tunnel: the full data, then "
        "every change, applied in order per row and idempotently (replays and restarts are safe).",
        epilog="Any other --flag is a Beam pipeline option, e.g. --runner=FlinkRunner --flink_master=HOST:8081 "
        "--environment_type=LOOPBACK --checkpointing_interval=10000 --streaming. Without --runner: "
        "FnApiRunner. The AccessKey comes from ALIBABA_CLOUD_ACCESS_KEY_ID / ALIBABA_CLOUD_ACCESS_KEY_SECRET "
        "(and ALIBABA_CLOUD_SECURITY_TOKEN), read on each worker.",
    )
    source = parser.add_argument_group("source")
    source.add_argument("--endpoint", help="service endpoint (default $TABLESTORE_ENDPOINT)")
    source.add_argument("--instance", help="instance name (default $TABLESTORE_INSTANCE)")
    source.add_argument("--table", required=True, help="the table to sync")
    source.add_argument("--tunnel", help="tunnel name, created when missing (default TABLE-sync)")
    source.add_argument("--tunnel-type", default="BaseAndStream", choices=["BaseAndStream", "Stream", "BaseData"],
                        help="type of a new tunnel (default BaseAndStream: full data, then changes)")
    target = parser.add_argument_group("target")
    target.add_argument("--target", help="SQLAlchemy URL of the database (default sqlite:///TABLE.db)")
    target.add_argument("--target-table", help="table name in the database (default TABLE)")
    target.add_argument("--batch-size", type=_positive_int, default=1000,
                        help="most records per transaction (default 1000; a bundle is one at least)")
    run_group = parser.add_argument_group("how long")
    stop = run_group.add_mutually_exclusive_group()
    stop.add_argument("--until-caught-up", action="store_true",
                      help="end once everything written before the start is applied (default: run until stopped)")
    stop.add_argument("--stop-at", type=_stop_at, metavar="TIME",
                      help="end each channel at its first change written at or after TIME "
                      "(seconds since the epoch, or ISO 8601 with a zone)")
    run_group.add_argument("--verify", action="store_true",
                           help="after a bounded run, compare target and source and print the differences "
                           "(exit 1 when they differ)")
    run_group.add_argument("--verify-only", action="store_true",
                           help="only compare target and source (GetRange), do not sync")
    tuning = parser.add_argument_group("reader tuning (ReadFromTunnel)")
    tuning.add_argument("--num-slots", type=_positive_int, help="tunnel clients (default: one per channel)")
    tuning.add_argument("--heartbeat-interval", type=_seconds, default=2.0, help="seconds (default 2)")
    tuning.add_argument("--heartbeat-timeout", type=_seconds, default=300.0,
                        help="lease timeout in seconds: how long a killed pipeline's channels wait before "
                        "a restarted one gets them (default 300)")
    tuning.add_argument("--max-bundle-records", type=_positive_int, default=10_000,
                        help="records per read call (default 10000)")
    parser.add_argument("--log-level", default="WARNING", type=str.upper,
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default WARNING")
    return parser


def _parse(argv: Optional[Sequence[str]]):
    parser = build_parser()
    args, beam_args = parser.parse_known_args(argv)
    if args.verify and not (args.until_caught_up or args.stop_at is not None):
        parser.error("--verify needs a bounded run (--until-caught-up or --stop-at); "
                     "for a running sync use --verify-only from another shell")
    if not any(arg.split("=", 1)[0] == "--runner" for arg in beam_args):
        beam_args = ["--runner=FnApiRunner", *beam_args]
    args.tunnel = args.tunnel or f"{args.table}-sync"
    args.target = args.target or f"sqlite:///{args.table}.db"
    args.target_table = args.target_table or args.table
    return args, beam_args


def run(argv: Optional[Sequence[str]] = None, out=None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 target differs,
    2 bad arguments)."""
    out = out or sys.stdout
    args, beam_args = _parse(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = TunnelConfig.resolve(args.endpoint, args.instance)
        if not args.verify_only:
            key_schema = describe_table_schema(config, args.table).key_schema
            read = ReadFromTunnel(
                endpoint=config.endpoint, instance=config.instance_name, table=args.table, tunnel=args.tunnel,
                tunnel_type=args.tunnel_type, stop_when_caught_up=args.until_caught_up, stop_at=args.stop_at,
                num_slots=args.num_slots, heartbeat_interval_s=args.heartbeat_interval,
                heartbeat_timeout_s=args.heartbeat_timeout, max_bundle_records=args.max_bundle_records,
            )
            sync = SyncTable(args.target, args.target_table, key_schema, batch_size=args.batch_size)
            pipeline = beam.Pipeline(options=PipelineOptions(beam_args))
            _ = pipeline | read | sync
            result = pipeline.run()
            result.wait_until_finish()
            print(f"sync of {args.table!r} into {args.target_table!r} ended{_tally(result)}", file=out, flush=True)
        if args.verify or args.verify_only:
            comparison = verify(config, args.table, args.target, args.target_table)
            key_names = [name for name, _ in describe_table_schema(config, args.table).key_schema]
            for line in comparison.lines(key_names):
                print(line, file=out, flush=True)
            return 0 if comparison.equal else 1
    except (ConfigError, TunnelError) as err:
        print(f"sync_table: {err}", file=sys.stderr)
        return 2
    return 0


def main() -> None:
    raise SystemExit(run())


if __name__ == "__main__":
    main()
