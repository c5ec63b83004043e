"""Changes per minute per action and per key prefix, by event time.

Usage::

    python -m pipelines.event_time_counts --endpoint ... --instance i --table orders \\
        --target sqlite:///counts.db                          # or --output DIR for JSON-lines files
    python -m pipelines.event_time_counts ... --runner=FlinkRunner --flink_master=localhost:8081 \\
        --environment_type=LOOPBACK --checkpointing_interval=10000 --streaming

Each change counts in the fixed window (``--window``, default 60 s) of its
event time: the write time of a stream record, the tunnel's creation time
for a full-data record. A window's result is emitted when the watermark
passes its end (on a streaming runner, while the stream runs: the source's
watermark follows the tunnel's committed consume point), and again for any
record that arrives within ``--allowed-lateness`` after that, with the
accumulated count (so the newest pane of a window is its count). The
source's rule is that no record is behind the watermark; a ``LATE`` pane
would show otherwise.

Database output: table ``event_time_counts`` (``--counts-table``) with one
row per (window_start_us, action, key_prefix), replaced by each newer pane:
``changes`` is the newest count, ``on_time_changes`` the count when the
watermark passed the window, so ``changes - on_time_changes`` records came
late. (Prism also fires a LATE pane when a window expires, without new
records: its count equals the on-time one.)
File output: one JSON line per pane under ``--output``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Optional, Sequence

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms import trigger, window

from beam_tunnel import ReadFromTunnel
from beam_tunnel.client.config import TunnelConfig
from beam_tunnel.errors import ConfigError, TunnelError

__all__ = ["CountChanges", "key_prefix", "WriteCounts", "build_parser", "run", "main"]


def key_prefix(record, length: int) -> str:
    """The first ``length`` characters of the record's first key column
    (bytes as hex)."""
    value = record.primary_key[0][1]
    text = value.hex() if isinstance(value, bytes) else str(value)
    return text[:length]


class _Pane(beam.DoFn):
    def process(self, element, win=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam):
        (action, prefix), count = element
        yield {
            "window_start_us": win.start.micros,
            "window_end_us": win.end.micros,
            "action": action,
            "key_prefix": prefix,
            "changes": count,
            "pane": {0: "EARLY", 1: "ON_TIME", 2: "LATE"}.get(int(pane.timing), "UNKNOWN"),
            "pane_index": pane.index,
        }


class CountChanges(beam.PTransform):
    """``PCollection[ChangeRecord]`` -> one dict per window pane and
    (action, key prefix): window bounds (µs), action, key_prefix, changes,
    pane (EARLY, ON_TIME or LATE) and pane_index.

    Args:
      window_s: the window length in seconds (default 60).
      allowed_lateness_s: how long after the watermark passed a window a
        late record still updates it (default 600).
      prefix_length: characters of the first key column that make the
        prefix (default 2).
    """

    def __init__(self, window_s: int = 60, allowed_lateness_s: int = 600, prefix_length: int = 2) -> None:
        super().__init__()
        for name, value, minimum in (("window_s", window_s, 1), ("allowed_lateness_s", allowed_lateness_s, 0),
                                     ("prefix_length", prefix_length, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(f"{name} must be an int >= {minimum}, got {value!r}")
        self._window_s, self._lateness_s, self._prefix_length = window_s, allowed_lateness_s, prefix_length

    def expand(self, records):
        length = self._prefix_length
        return (
            records
            | "ActionAndPrefix" >> beam.Map(lambda record: ((record.action.value, key_prefix(record, length)), 1))
            | "Minutes" >> beam.WindowInto(
                window.FixedWindows(self._window_s),
                trigger=trigger.AfterWatermark(late=trigger.AfterCount(1)),
                allowed_lateness=self._lateness_s,
                accumulation_mode=trigger.AccumulationMode.ACCUMULATING,
            )
            | "Count" >> beam.CombinePerKey(sum)
            | "Pane" >> beam.ParDo(_Pane())
        )


class _WriteCountsFn(beam.DoFn):
    """Upserts panes into a SQL table: a newer pane of a window replaces
    the older (accumulated counts), keeping the on-time count, so replays
    leave the same rows."""

    def __init__(self, url: str, table: str) -> None:
        self._url, self._table = url, table
        self._engine = None
        self._rows = None

    def setup(self) -> None:
        import sqlalchemy as sa

        self._engine = sa.create_engine(self._url)
        metadata = sa.MetaData()
        self._rows = sa.Table(
            self._table, metadata,
            sa.Column("window_start_us", sa.BigInteger, primary_key=True, autoincrement=False),
            sa.Column("action", sa.Text, primary_key=True),
            sa.Column("key_prefix", sa.Text, primary_key=True),
            sa.Column("window_end_us", sa.BigInteger, nullable=False),
            sa.Column("changes", sa.BigInteger, nullable=False),
            sa.Column("on_time_changes", sa.BigInteger, nullable=False),
            sa.Column("pane", sa.Text, nullable=False),
            sa.Column("pane_index", sa.BigInteger, nullable=False),
        )
        metadata.create_all(self._engine, checkfirst=True)

    def process(self, row):
        import sqlalchemy as sa

        table = self._rows
        match = sa.and_(table.c.window_start_us == row["window_start_us"], table.c.action == row["action"],
                        table.c.key_prefix == row["key_prefix"])
        with self._engine.begin() as conn:
            held = conn.execute(sa.select(table.c.pane_index, table.c.on_time_changes).where(match)).first()
            if held is not None and held.pane_index > row["pane_index"]:
                return ()  # a replay of an older pane
            on_time = row["changes"] if row["pane"] != "LATE" else (0 if held is None else held.on_time_changes)
            conn.execute(sa.delete(table).where(match))
            conn.execute(sa.insert(table), [dict(row, on_time_changes=on_time)])
        return ()

    def teardown(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


class WriteCounts(beam.PTransform):
    """Write :class:`CountChanges` panes to a SQL table (``url``) or as
    JSON lines to files under ``directory``."""

    def __init__(self, *, url: Optional[str] = None, table: str = "event_time_counts",
                 directory: Optional[str] = None) -> None:
        super().__init__()
        if (url is None) == (directory is None):
            raise ConfigError(f"pass url or directory, exactly one (got url={url!r}, directory={directory!r})")
        self._url, self._table, self._directory = url, table, directory

    def expand(self, panes):
        if self._url is not None:
            return panes | "Upsert" >> beam.ParDo(_WriteCountsFn(self._url, self._table))
        return (
            panes
            | "Json" >> beam.Map(lambda row: json.dumps(row, sort_keys=True))
            | "Files" >> fileio.WriteToFiles(path=self._directory, shards=1,
                                             file_naming=fileio.default_file_naming("counts", ".jsonl"))
        )


# ---- command line -----------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.event_time_counts",
        description="Count a table's changes per event-time window, per action and per key prefix.",
        epilog="Any other --flag is a Beam pipeline option (--runner, --streaming, --flink_master, ...). "
        "Without --runner: FnApiRunner. The AccessKey comes from ALIBABA_CLOUD_ACCESS_KEY_ID / "
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET.",
    )
    parser.add_argument("--endpoint", help="service endpoint (default $TABLESTORE_ENDPOINT)")
    parser.add_argument("--instance", help="instance name (default $TABLESTORE_INSTANCE)")
    parser.add_argument("--table", required=True, help="the table whose changes are counted")
    parser.add_argument("--tunnel", help="tunnel name, created when missing (default TABLE-counts)")
    parser.add_argument("--tunnel-type", default="Stream", choices=["BaseAndStream", "Stream", "BaseData"],
                        help="type of a new tunnel (default Stream: changes from now on)")
    output = parser.add_mutually_exclusive_group(required=True)
    output.add_argument("--target", help="SQLAlchemy URL: write counts to a table there")
    output.add_argument("--output", help="directory: write counts as JSON lines")
    parser.add_argument("--counts-table", default="event_time_counts", help="with --target (default event_time_counts)")
    parser.add_argument("--window", type=int, default=60, help="window length in seconds (default 60)")
    parser.add_argument("--allowed-lateness", type=int, default=600, help="seconds (default 600)")
    parser.add_argument("--prefix-length", type=int, default=2, help="key prefix length (default 2)")
    stop = parser.add_mutually_exclusive_group()
    stop.add_argument("--until-caught-up", action="store_true",
                      help="end once everything written before the start is counted (default: run until stopped)")
    stop.add_argument("--stop-at", type=float, metavar="SECONDS",
                      help="end each channel at its first change written at or after this time (s since the epoch)")
    parser.add_argument("--heartbeat-interval", type=float, default=2.0, help="seconds (default 2)")
    parser.add_argument("--heartbeat-timeout", type=float, default=300.0, help="seconds (default 300)")
    parser.add_argument("--log-level", default="WARNING", type=str.upper,
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default WARNING")
    return parser


def run(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status (2: bad arguments)."""
    args, beam_args = build_parser().parse_known_args(argv)
    if not any(arg.split("=", 1)[0] == "--runner" for arg in beam_args):
        beam_args = ["--runner=FnApiRunner", *beam_args]
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = TunnelConfig.resolve(args.endpoint, args.instance)
        read = ReadFromTunnel(
            endpoint=config.endpoint, instance=config.instance_name, table=args.table,
            tunnel=args.tunnel or f"{args.table}-counts", tunnel_type=args.tunnel_type,
            stop_when_caught_up=args.until_caught_up, stop_at=args.stop_at, heartbeat_interval_s=args.heartbeat_interval,
            heartbeat_timeout_s=args.heartbeat_timeout,
        )
        count = CountChanges(args.window, args.allowed_lateness, args.prefix_length)
        write = WriteCounts(url=args.target, table=args.counts_table, directory=args.output)
        with beam.Pipeline(options=PipelineOptions(beam_args)) as pipeline:
            _ = pipeline | read | count | write
    except (ConfigError, TunnelError) as err:
        print(f"event_time_counts: {err}", file=sys.stderr)
        return 2
    return 0


def main() -> None:
    raise SystemExit(run())


if __name__ == "__main__":
    main()
