"""``beam-tunnel consume``: run a TunnelWorker and write records as JSON lines.

Each record becomes one line, ``ChangeRecord.to_dict()`` as JSON, written
and flushed before the batch is acknowledged, so every checkpointed record
is in the output (at-least-once: after a crash, records since the last
checkpoint are written again). A progress line (records, records/s, phase,
lag, channels, and what it waits for when it reads nothing) goes to
stderr. The first SIGINT or SIGTERM stops gracefully within --stop-timeout
seconds: readers finish their batch, final checkpoints are stored, the
client leaves the tunnel; a second one exits at once.

Exit status: 0 after a requested stop (or --stop-when-finished), 1 when the
worker stopped on an error or the graceful stop timed out, 2 for bad
arguments, 128 + the signal number for an immediate exit on a second signal
(or on the first, before reading began).
"""

from __future__ import annotations

import os
import sys

from beam_tunnel.client.models import TunnelType
from beam_tunnel.errors import ConfigError, TunnelError, TunnelExistError
from beam_tunnel.worker.config import WorkerConfig

from ._common import (
    UsageError,
    add_service_options,
    non_negative_number,
    positive_int,
    positive_number,
    service_settings,
    with_flag_names,
)
from ._consume_status import JsonLinesSink, Progress, TunnelWatch
from ._waits import RetryNotices, StopSignals

__all__ = ["add_parser", "run"]

_PREFIX = "beam-tunnel consume"
_TYPES = {kind.value: kind for kind in TunnelType}
_DEFAULT_STOP_TIMEOUT_S = 30.0

# Library parameter -> the flag that sets it, for errors the library raises.
_FLAGS = {
    "endpoint": "--endpoint",
    "instance_name": "--instance",
    "access_key_id": "--access-key-id",
    "access_key_secret": "--access-key-secret",
    "heartbeat_interval_s": "--heartbeat-interval",
    "heartbeat interval_s": "--heartbeat-interval",
    "heartbeat_timeout_s": "--heartbeat-timeout",
    "heartbeat timeout_s": "--heartbeat-timeout",
    "interval_s": "--heartbeat-interval",
    "timeout_s": "--heartbeat-timeout",
    "checkpoint_interval_s": "--checkpoint-interval",
    "max_channel_parallelism": "--max-channel-parallelism",
    "client_tag": "--client-tag",
    "reconnect_max_delay_s": "--reconnect-max-delay",
}

# DescribeTunnel for the progress line: one attempt with short timeouts, so
# a dead service shows in the line instead of stalling it.
_WATCH_TIMEOUT = (2.0, 5.0)
_WATCH_INTERVAL_S = 1.0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "consume",
        help="read a tunnel with a TunnelWorker and write its records as JSON lines",
        description=__doc__.split("\n\n")[1],
    )
    add_service_options(parser)
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
    out.add_argument("--progress-interval", type=non_negative_number, default=1.0, metavar="SECONDS",
                     help="seconds between progress lines on stderr; 0 for none (default 1)")
    out.add_argument(
        "--stop-when-finished",
        action="store_true",
        help="stop once every channel of the tunnel is TERMINATED (full-data tunnels)",
    )
    out.add_argument("--stop-timeout", type=positive_number, default=_DEFAULT_STOP_TIMEOUT_S, metavar="SECONDS",
                     help=f"longest graceful stop after SIGINT/SIGTERM before exiting without final "
                     f"checkpoints (default {_DEFAULT_STOP_TIMEOUT_S:g})")
    work = parser.add_argument_group("worker (defaults as the official SDKs)")
    defaults = WorkerConfig()
    work.add_argument("--heartbeat-interval", type=positive_number, default=defaults.heartbeat_interval_s,
                      metavar="SECONDS", help=f"(default {defaults.heartbeat_interval_s:g})")
    work.add_argument("--heartbeat-timeout", type=positive_number, default=defaults.heartbeat_timeout_s,
                      metavar="SECONDS", help=f"lease length (default {defaults.heartbeat_timeout_s:g})")
    work.add_argument("--checkpoint-interval", type=positive_number, default=defaults.checkpoint_interval_s,
                      metavar="SECONDS", help=f"(default {defaults.checkpoint_interval_s:g})")
    work.add_argument("--max-channel-parallelism", type=positive_int, default=None, metavar="N",
                      help="most callbacks at once (default: unlimited)")
    work.add_argument("--client-tag", default=None, help="label of this client (default: host name)")
    work.add_argument("--reconnect-max-delay", type=non_negative_number, default=defaults.reconnect_max_delay_s,
                      metavar="SECONDS", help=f"(default {defaults.reconnect_max_delay_s:g})")
    # Progress lines tell the story; INFO logs of every channel move would
    # bury them (--log-level INFO brings them back).
    parser.set_defaults(func=run, log_level_default="WARNING")


def run(args) -> int:
    """Run ``consume`` with parsed ``args``; the exit status."""
    from beam_tunnel.client.tunnel_client import TunnelClient

    try:
        service = service_settings(args)
        if args.heartbeat_timeout <= args.heartbeat_interval:
            raise UsageError(
                f"--heartbeat-timeout ({args.heartbeat_timeout:g}) must be longer than --heartbeat-interval "
                f"({args.heartbeat_interval:g}): the lease would end before the next heartbeat"
            )
        config = WorkerConfig(
            heartbeat_interval_s=args.heartbeat_interval,
            heartbeat_timeout_s=args.heartbeat_timeout,
            checkpoint_interval_s=args.checkpoint_interval,
            max_channel_parallelism=args.max_channel_parallelism,
            client_tag=args.client_tag,
            reconnect_max_delay_s=args.reconnect_max_delay,
        )
        credentials = (service.endpoint, service.instance, service.access_key_id, service.access_key_secret,
                       service.sts_token)
        client = TunnelClient(*credentials)
        watch_client = TunnelClient(*credentials, timeout=_WATCH_TIMEOUT, retry_deadline=0)
    except UsageError as err:
        print(f"{_PREFIX}: {err}", file=sys.stderr)
        return 2
    except (TunnelError, ValueError) as err:
        print(f"{_PREFIX}: {with_flag_names(str(err), _FLAGS)}", file=sys.stderr)
        return 2
    try:
        output = _open_output(args.output)
    except UsageError as err:
        print(f"{_PREFIX}: {err}", file=sys.stderr)
        client.close()
        watch_client.close()
        return 2
    policies = client.config
    print(f"{_PREFIX}: tunnel {args.tunnel!r} of table {args.table!r} at {service.endpoint} (instance "
          f"{service.instance}), AccessKey {service.access_key_id} (secret from {service.secret_source})",
          file=sys.stderr, flush=True)

    def deadline_s(call: str) -> float:
        return (policies.read_retry if call == "ReadRecords" else policies.meta_retry).deadline_s

    try:
        with StopSignals(_PREFIX, args.stop_timeout) as signals, RetryNotices(_PREFIX, service.endpoint, deadline_s):
            return _consume(client, watch_client, args, config, output, signals)
    finally:
        if output is not sys.stdout:
            output.close()
        client.close()


def _open_output(path: str):
    if path == "-":
        return sys.stdout
    if os.path.isdir(path):
        raise UsageError(f"--output {path!r} is a folder; give a file path in it, e.g. {os.path.join(path, 'records.jsonl')!r}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"--output {path!r}: the folder {folder!r} does not exist; create it first")
    try:
        return open(path, "a", encoding="utf-8")
    except OSError as err:
        raise UsageError(f"--output {path!r} cannot be opened for appending: {err.strerror or err}") from None


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


def _consume(client, watch_client, args, config: WorkerConfig, output, signals: StopSignals) -> int:
    from beam_tunnel.worker.worker import TunnelWorker

    try:
        tunnel_id = _resolve_tunnel_id(client, args)
    except TunnelError as err:
        watch_client.close()
        print(f"{_PREFIX}: {err}", file=sys.stderr)
        return 1
    sink = JsonLinesSink(output)
    worker = TunnelWorker(client, tunnel_id, sink, config)
    watch = TunnelWatch(watch_client, args.table, args.tunnel, tunnel_id, _WATCH_INTERVAL_S)
    progress = Progress(sink, worker, watch)
    tick = args.progress_interval or 1.0
    watch.start()
    worker.start()
    signals.allow_graceful_stop()
    try:
        while not signals.requested.wait(tick):
            if not worker.running:
                break
            if args.progress_interval:
                print(progress.line(), file=sys.stderr, flush=True)
            if args.stop_when_finished and watch.all_finished():
                break
        stopped = worker.stop(timeout=args.stop_timeout)
    finally:
        watch.stop()
    if args.progress_interval:
        print(progress.line(final=True), file=sys.stderr, flush=True)
    print(f"stopped: {sink.records} records written", file=sys.stderr, flush=True)
    if not stopped:
        print(
            f"{_PREFIX}: the graceful stop did not finish within {args.stop_timeout:g} s (--stop-timeout; is the "
            "service reachable?); exiting without final checkpoints: records since the last checkpoint will be "
            "read again",
            file=sys.stderr, flush=True,
        )
        return 1
    if worker.error is not None:
        print(f"{_PREFIX}: {worker.error}", file=sys.stderr)
        return 1
    return 0
