"""The ``beam-tunnel`` command line.

Usage::

    beam-tunnel emulator --port 8080 --data-dir ./tunnel-data

Each subcommand is registered by a function decorated with :func:`command`
that adds its parser to the subparsers and sets ``func`` (called with the
parsed arguments, returns the exit status). Keep the functions thin: parse,
call the library, print.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import Callable, List, Optional

__all__ = ["main", "command"]

_COMMANDS: List[Callable[[argparse._SubParsersAction], None]] = []


def command(register: Callable[[argparse._SubParsersAction], None]):
    """Register a subcommand: ``register(subparsers)`` adds its parser."""
    _COMMANDS.append(register)
    return register


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="beam-tunnel",
        description="Tablestore Tunnel Service tools: client, embedded emulator, Beam pipelines.",
    )
    parser.add_argument("--log-level", default=None, choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="logging level (default INFO; WARNING for demo)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in _COMMANDS:
        register(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line; returns the process exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    # A subcommand may pick a quieter default (the demo prints its own story).
    level = args.log_level or getattr(args, "log_level_default", "INFO")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(func(args) or 0)


# ----------------------------------------------------------------------
# beam-tunnel emulator


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


@command
def _add_emulator(subparsers) -> None:
    from .emulator.config import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, DEFAULT_INSTANCE

    parser = subparsers.add_parser(
        "emulator",
        help="run the embedded Tablestore + Tunnel Service emulator",
        description="Serve the Tablestore table API and Tunnel Service on a local port, "
        "storing everything under --data-dir, until SIGINT or SIGTERM.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to bind, 0 for any free one (default 8080)")
    parser.add_argument("--data-dir", default="./tunnel-data", help="where data is kept (default ./tunnel-data)")
    parser.add_argument("--instance", default=DEFAULT_INSTANCE, help=f"instance name (default {DEFAULT_INSTANCE})")
    parser.add_argument("--access-key-id", action="append", metavar="ID",
                        help=f"AccessKey id; repeat with --access-key-secret for several pairs "
                        f"(default {DEFAULT_ACCESS_KEY_ID})")
    parser.add_argument("--access-key-secret", action="append", metavar="SECRET",
                        help=f"secret of the AccessKey id in the same position (default {DEFAULT_ACCESS_KEY_SECRET})")
    parser.add_argument("--max-body-bytes", type=int, default=5 * 1024 * 1024,
                        help="largest accepted request body (default 5 MiB)")
    parser.add_argument("--max-date-skew", type=_non_negative, default=900.0, metavar="SECONDS",
                        help="largest accepted x-ots-date difference, 0 to disable (default 900)")
    faults = parser.add_argument_group("fault injection (tunnel paths unless --fault-all-paths)")
    faults.add_argument("--fault-error-rate", type=_share, default=0.0, metavar="SHARE",
                        help="share of requests answered 503 OTSTunnelServerUnavailable")
    faults.add_argument("--fault-drop-rate", type=_share, default=0.0, metavar="SHARE",
                        help="share of requests whose connection is closed without an answer")
    faults.add_argument("--fault-latency-ms", type=_non_negative, default=0.0, metavar="MS",
                        help="fixed delay added to each request")
    faults.add_argument("--fault-jitter-ms", type=_non_negative, default=0.0, metavar="MS",
                        help="extra random delay up to this much")
    faults.add_argument("--fault-all-paths", action="store_true", help="apply faults to table paths too")
    faults.add_argument("--fault-seed", type=int, default=None, help="seed of the fault RNG")
    parser.set_defaults(func=_run_emulator)
    _add_emulator_admin(parser)


def _add_emulator_admin(parser) -> None:
    """``beam-tunnel emulator split|merge|partitions``: admin actions on a
    running emulator, over its signed admin paths."""
    from .emulator.config import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, DEFAULT_INSTANCE

    actions = parser.add_subparsers(dest="admin_action", metavar="ACTION",
                                    help="act on a running emulator instead of starting one")
    for name, helptext in (("partitions", "list a table's partitions"),
                           ("split", "split an open partition at a first-column value"),
                           ("merge", "merge two adjacent open partitions")):
        action = actions.add_parser(name, help=helptext, description=helptext)
        action.add_argument("--endpoint", default="http://127.0.0.1:8080", help="emulator endpoint")
        action.add_argument("--instance", dest="admin_instance", default=DEFAULT_INSTANCE, help="instance name")
        action.add_argument("--access-key-id", dest="admin_key_id", default=DEFAULT_ACCESS_KEY_ID)
        action.add_argument("--access-key-secret", dest="admin_key_secret", default=DEFAULT_ACCESS_KEY_SECRET)
        action.add_argument("table", help="table name")
        if name == "split":
            action.add_argument("partition", help="partition id (see 'partitions')")
            action.add_argument("key", help="split value of the first key column")
            action.add_argument("--integer", action="store_true", help="the key column is INTEGER")
        elif name == "merge":
            action.add_argument("left", help="left partition id")
            action.add_argument("right", help="right partition id (starts where left ends)")
        action.set_defaults(func=_run_emulator_admin)


def _run_emulator_admin(args) -> int:
    import json

    from .emulator.admin import AdminClient
    from .errors import TunnelError

    try:
        admin = AdminClient(args.endpoint, args.admin_instance, args.admin_key_id, args.admin_key_secret)
        if args.admin_action == "partitions":
            result = admin.partitions(args.table)
        elif args.admin_action == "split":
            result = admin.split(args.table, args.partition, int(args.key) if args.integer else args.key)
        else:
            result = admin.merge(args.table, args.left, args.right)
    except (TunnelError, ValueError) as err:
        print(f"beam-tunnel emulator {args.admin_action}: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


def _access_keys(args) -> Optional[dict]:
    ids, secrets = args.access_key_id or [], args.access_key_secret or []
    if len(ids) != len(secrets):
        raise SystemExit(
            f"beam-tunnel emulator: give as many --access-key-secret as --access-key-id "
            f"(got {len(ids)} ids and {len(secrets)} secrets)"
        )
    return dict(zip(ids, secrets)) if ids else None


def _run_emulator(args) -> int:
    from .emulator.faults import SCOPE_ALL, SCOPE_TUNNEL, FaultSettings
    from .emulator.server import EmulatorServer

    try:
        server = EmulatorServer(
            data_dir=os.path.abspath(args.data_dir),
            port=args.port,
            host=args.host,
            instance_name=args.instance,
            access_keys=_access_keys(args),
            max_body_bytes=args.max_body_bytes,
            max_date_skew_s=args.max_date_skew or None,
            faults=FaultSettings(
                error_rate=args.fault_error_rate,
                drop_rate=args.fault_drop_rate,
                latency_s=args.fault_latency_ms / 1000.0,
                jitter_s=args.fault_jitter_ms / 1000.0,
                scope=SCOPE_ALL if args.fault_all_paths else SCOPE_TUNNEL,
                seed=args.fault_seed,
            ),
        )
        server.start()
    except (ValueError, RuntimeError, OSError) as err:
        print(f"beam-tunnel emulator: {err}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def _on_signal(signum, _frame):
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print("beam-tunnel emulator is running", flush=True)
        print(f"  endpoint:          {server.endpoint}")
        print(f"  instance:          {server.instance_name}")
        for key_id, secret in server.access_keys.items():
            print(f"  access key id:     {key_id}")
            print(f"  access key secret: {secret}")
        print(f"  data dir:          {server.data_dir}")
        print("Stop with Ctrl+C (SIGINT) or SIGTERM.", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.stop()
    print("beam-tunnel emulator stopped", flush=True)
    return 0


# ----------------------------------------------------------------------
# beam-tunnel consume (implemented in beam_tunnel/worker/_consume.py)


@command
def _add_consume(subparsers) -> None:
    from .worker._consume import add_consume_parser

    add_consume_parser(subparsers)


# ----------------------------------------------------------------------
# beam-tunnel demo (implemented in beam_tunnel/demo.py)


@command
def _add_demo(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="read a full-then-incremental tunnel end to end on the embedded emulator",
        description="Start the embedded emulator, fill a table, read it through a BaseAndStream "
        "tunnel with a TunnelWorker while it changes, and check every write arrived once.",
    )
    parser.add_argument("--orders", type=int, default=3000, help="rows written before the tunnel (default 3000)")
    parser.add_argument("--changes", type=int, default=1500, help="changes written while reading (default 1500)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated data (default 7)")
    parser.set_defaults(func=_run_demo, log_level_default="WARNING")


def _run_demo(args) -> int:
    from .demo import main_exit_code

    if args.orders < 1 or args.changes < 0:
        raise SystemExit(f"--orders must be >= 1 and --changes >= 0, got {args.orders} and {args.changes}")
    return main_exit_code(orders=args.orders, changes=args.changes, seed=args.seed)


# beam-tunnel lag / monitor (implemented in beam_tunnel/monitoring/)
from .monitoring import add_monitoring_subcommands  # noqa: E402
command(add_monitoring_subcommands)


if __name__ == "__main__":
    sys.exit(main())
