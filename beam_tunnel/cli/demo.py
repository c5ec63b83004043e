"""``beam-tunnel demo`` (the main job, :mod:`beam_tunnel.pipeline_demo`: a Beam
pipeline syncs a changing table into SQLite) and ``beam-tunnel demo-worker``
(the TunnelWorker demo, :mod:`beam_tunnel.demo`; also ``demo --worker``)."""

from __future__ import annotations

__all__ = ["add_parser"]


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="the main job: a Beam pipeline syncs a changing table into SQLite on the embedded emulator",
        description="Start the embedded emulator, fill an orders table, and sync it into SQLite with "
        "ReadFromTunnel (full data, then the changes a writer makes meanwhile) on FnApiRunner; then compare "
        "target and source and print the tunnel's lag. --worker runs the TunnelWorker demo instead.",
    )
    parser.add_argument("--orders", type=int, default=3000, help="rows written before the pipeline (default 3000)")
    parser.add_argument("--seconds", type=float, default=4.0,
                        help="how long the writer changes orders while the pipeline runs (default 4)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated data (default 7)")
    parser.add_argument("--target", help="SQLAlchemy URL to sync into (default: a temporary SQLite file)")
    parser.add_argument("--worker", action="store_true", help="run the TunnelWorker demo (as demo-worker)")
    parser.add_argument("--changes", type=int, default=1500, help="with --worker: changes written (default 1500)")
    parser.set_defaults(func=_run, log_level_default="WARNING")

    worker = subparsers.add_parser(
        "demo-worker",
        help="read a full-then-incremental tunnel end to end with a TunnelWorker on the embedded emulator",
        description="Start the embedded emulator, fill a table, read it through a BaseAndStream "
        "tunnel with a TunnelWorker while it changes, and check every write arrived once.",
    )
    worker.add_argument("--orders", type=int, default=3000, help="rows written before the tunnel (default 3000)")
    worker.add_argument("--changes", type=int, default=1500, help="changes written while reading (default 1500)")
    worker.add_argument("--seed", type=int, default=7, help="seed of the generated data (default 7)")
    worker.set_defaults(func=_run_worker, log_level_default="WARNING")


def _run(args) -> int:
    if args.worker:
        return _run_worker(args)
    if args.orders < 1 or not args.seconds > 0:
        raise SystemExit(f"--orders must be >= 1 and --seconds > 0, got {args.orders} and {args.seconds}")
    from beam_tunnel.pipeline_demo import main_exit_code

    return main_exit_code(orders=args.orders, seconds=args.seconds, seed=args.seed, target=args.target)


def _run_worker(args) -> int:
    from beam_tunnel.demo import main_exit_code

    if args.orders < 1 or args.changes < 0:
        raise SystemExit(f"--orders must be >= 1 and --changes >= 0, got {args.orders} and {args.changes}")
    return main_exit_code(orders=args.orders, changes=args.changes, seed=args.seed)
