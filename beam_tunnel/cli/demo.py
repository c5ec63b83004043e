"""``beam-tunnel demo`` (the demo itself is :mod:`beam_tunnel.demo`)."""

from __future__ import annotations

__all__ = ["add_parser"]


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="read a full-then-incremental tunnel end to end on the embedded emulator",
        description="Start the embedded emulator, fill a table, read it through a BaseAndStream "
        "tunnel with a TunnelWorker while it changes, and check every write arrived once.",
    )
    parser.add_argument("--orders", type=int, default=3000, help="rows written before the tunnel (default 3000)")
    parser.add_argument("--changes", type=int, default=1500,
                        help="changes written while reading (default 1500)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated data (default 7)")
    parser.set_defaults(func=_run, log_level_default="WARNING")


def _run(args) -> int:
    from beam_tunnel.demo import main_exit_code

    if args.orders < 1 or args.changes < 0:
        raise SystemExit(f"--orders must be >= 1 and --changes >= 0, got {args.orders} and {args.changes}")
    return main_exit_code(orders=args.orders, changes=args.changes, seed=args.seed)
