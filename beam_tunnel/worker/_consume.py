"""``beam-tunnel consume``: run a TunnelWorker and write records as JSON lines.

Each record becomes one line, ``ChangeRecord.to_dict()`` as JSON, written
and flushed before the batch is acknowledged, so every checkpointed record
is in the output (at-least-once: after a crash, records since the last
checkpoint are written again). A progress line (records, records/s, lag)
goes to stderr. SIGINT or SIGTERM stops gracefully: readers finish their
batch, final checkpoints are stored, the client leaves the tunnel.

Exit status: 0 after a requested stop (or ``--stop-when-finished``), 1
when the worker stopped on an error, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from typing import IO, Optional

from beam_tunnel.client.credentials import ENV_ACCESS_KEY_SECRET
from beam_tunnel.client.models import ChannelStatus, TunnelType
from beam_tunnel.errors import ConfigError, TunnelError, TunnelExistError
from beam_tunnel.worker.config import WorkerConfig
from beam_tunnel.worker.processor import ChannelProcessor
from beam_tunnel.worker.worker import TunnelWorker

_LOGGER = logging.getLogger(__name__)

_TYPES = {kind.value: kind for kind in TunnelType}


def add_consume_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``consume`` on an argparse subparsers object."""
    parser = subparsers.add_parser(
        "consume",
        help="read a tunnel with a TunnelWorker and write its records as JSON lines",
        description=__doc__.split("\n\n")[1],
    )
    conn = parser.add_argument_group("service")
    conn.add_argument("--endpoint", help="http(s)://host[:port] of the instance (default: $TABLESTORE_ENDPOINT)")
    conn.add_argument("--instance", help="instance name (default: $TABLESTORE_INSTANCE)")
    conn.add_argument(
        "--access-key-id", help="AccessKey id (default: $ALIBABA_CLOUD_ACCESS_KEY_ID; the secret then "
        "comes from $ALIBABA_CLOUD_ACCESS_KEY_SECRET unless --access-key-secret is given)"
    )
    conn.add_argument("--access-key-secret", help="AccessKey secret (prefer the environment variable)")
    tunnel = parser.add_argument_group("tunnel")
    tunnel.add_argument("--table", required=True, help="table name")
    tunnel.add_argument("--tunnel", required=True, help="tunnel name")
    tunnel.add_argument(
        "--type",
        choices=sorted(_TYPES),
        help="create the tunnel with this type if it does not exist (default: it must exist)",
    )
    out = parser.add_argument_group("output")
    out.add_argument("--output", default="-", help="file to append JSON lines to, or - for stdout (default: -)")
    out.add_argument(
        "--progress-interval", type=float, default=1.0, help="seconds between progress lines on stderr; 0 for none"
    )
    out.add_argument(
        "--stop-when-finished",
        action="store_true",
        help="stop once every channel of the tunnel is TERMINATED (full-data tunnels)",
    )
    work = parser.add_argument_group("worker (defaults as the official SDKs)")
    defaults = WorkerConfig()
    work.add_argument("--heartbeat-interval", type=float, default=defaults.heartbeat_interval_s, help="seconds")
    work.add_argument("--heartbeat-timeout", type=float, default=defaults.heartbeat_timeout_s, help="seconds")
    work.add_argument("--checkpoint-interval", type=float, default=defaults.checkpoint_interval_s, help="seconds")
    work.add_argument("--max-channel-parallelism", type=int, default=None, help="most callbacks at once")
    work.add_argument("--client-tag", default=None, help="label of this client (default: host name)")
    work.add_argument(
        "--reconnect-max-delay", type=float, default=defaults.reconnect_max_delay_s, help="seconds"
    )
    # Progress lines tell the story; INFO logs of every channel move would
    # bury them (--log-level INFO brings them back).
    parser.set_defaults(func=run_consume, log_level_default="WARNING")
    return parser


class _JsonLinesSink(ChannelProcessor):
    """Writes each batch as JSON lines and flushes before acknowledging it."""

    def __init__(self, stream: IO[str], clock=time.time) -> None:
        self._stream = stream
        self._clock = clock
        self._lock = threading.Lock()
        self.records = 0
        self.lag_s: Optional[float] = None

    def process(self, records, context) -> None:
        text = "".join(json.dumps(record.to_dict(), separators=(",", ":")) + "\n" for record in records)
        with self._lock:
            self._stream.write(text)
            self._stream.flush()
            self.records += len(records)
            write_us = records[-1].write_time_us
            if write_us is not None:
                self.lag_s = max(0.0, self._clock() - write_us / 1e6)


class _Progress:
    """Prints ``records=N rate=R/s lag=Ls channels=C`` on stderr.

    rate: records per second since the previous line. lag: seconds between
    the write and the delivery of the newest change delivered ("-" before
    the first change, e.g. during a full-data phase). channels: how many
    channels this client holds.
    """

    def __init__(self, sink: _JsonLinesSink, worker: TunnelWorker) -> None:
        self._sink = sink
        self._worker = worker
        self._last_time = time.monotonic()
        self._last_records = 0

    def report(self) -> None:
        now, records = time.monotonic(), self._sink.records
        rate = (records - self._last_records) / max(now - self._last_time, 1e-9)
        self._last_time, self._last_records = now, records
        lag = "-" if self._sink.lag_s is None else f"{self._sink.lag_s:.1f}s"
        channels = len(self._worker.channels())
        print(f"records={records} rate={rate:.1f}/s lag={lag} channels={channels}", file=sys.stderr, flush=True)


def _resolve_tunnel_id(client, args) -> str:
    # Looked up by listing rather than by DescribeTunnel's error, whose code
    # for a missing tunnel is not documented (the emulator says
    # OTSParameterInvalid, as the service does for an invalid tunnel).
    for info in client.list_tunnels(args.table):
        if info.tunnel_name == args.tunnel:
            return info.tunnel_id
    if args.type is None:
        raise ConfigError(
            f"tunnel {args.tunnel!r} does not exist on table {args.table!r}; pass --type to create it"
        )
    try:
        tunnel_id = client.create_tunnel(args.table, args.tunnel, _TYPES[args.type])
        print(f"created {args.type} tunnel {args.tunnel!r} on table {args.table!r}", file=sys.stderr)
        return tunnel_id
    except TunnelExistError:  # created meanwhile by another consumer
        return client.describe_tunnel(args.table, args.tunnel).tunnel.tunnel_id


def _all_finished(client, args) -> bool:
    try:
        channels = client.describe_tunnel(args.table, args.tunnel).channels
    except TunnelError as err:
        _LOGGER.warning("[consume] DescribeTunnel failed: %s", err)
        return False
    return bool(channels) and all(c.status is ChannelStatus.TERMINATED for c in channels)


def run_consume(args, client=None) -> int:
    """Run ``consume`` with parsed ``args``; the exit status."""
    from beam_tunnel.client.tunnel_client import TunnelClient

    try:
        config = WorkerConfig(
            heartbeat_interval_s=args.heartbeat_interval,
            heartbeat_timeout_s=args.heartbeat_timeout,
            checkpoint_interval_s=args.checkpoint_interval,
            max_channel_parallelism=args.max_channel_parallelism,
            client_tag=args.client_tag,
            reconnect_max_delay_s=args.reconnect_max_delay,
        )
        if args.progress_interval < 0:
            raise ValueError(f"--progress-interval must be >= 0, got {args.progress_interval!r}")
        if client is None:
            secret = args.access_key_secret
            if args.access_key_id is not None and secret is None:
                # Keeps the secret off the command line (visible in ps).
                secret = os.environ.get(ENV_ACCESS_KEY_SECRET)
            client = TunnelClient(args.endpoint, args.instance, args.access_key_id, secret)
    except (TunnelError, ValueError) as err:
        print(f"beam-tunnel consume: {err}", file=sys.stderr)
        return 2
    output = sys.stdout if args.output == "-" else open(args.output, "a", encoding="utf-8")
    try:
        return _consume(client, args, config, output)
    finally:
        if output is not sys.stdout:
            output.close()
        client.close()


def _consume(client, args, config: WorkerConfig, output) -> int:
    try:
        tunnel_id = _resolve_tunnel_id(client, args)
    except TunnelError as err:
        print(f"beam-tunnel consume: {err}", file=sys.stderr)
        return 1
    sink = _JsonLinesSink(output)
    worker = TunnelWorker(client, tunnel_id, sink, config)
    stop_requested = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop_requested.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    tick = args.progress_interval or 1.0
    progress = _Progress(sink, worker)
    worker.start()
    try:
        while not stop_requested.wait(tick):
            if not worker.running:
                break
            if args.progress_interval:
                progress.report()
            if args.stop_when_finished and _all_finished(client, args):
                break
    finally:
        worker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if args.progress_interval:
        progress.report()
    print(f"stopped: {sink.records} records written", file=sys.stderr, flush=True)
    if worker.error is not None:
        print(f"beam-tunnel consume: {worker.error}", file=sys.stderr)
        return 1
    return 0
