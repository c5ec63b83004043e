"""``beam-tunnel lag`` and ``beam-tunnel monitor``: argument parsing and the lag loop.

:func:`add_monitoring_subcommands` registers both on the ``beam-tunnel``
parser; each parser's ``func`` runs the command and returns the exit status
(the codes are in :mod:`beam_tunnel.monitoring.guard`).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

from .durations import parse_duration

__all__ = ["add_monitoring_subcommands"]

_ENV_ACCESS_KEY_SECRET = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
# A monitor should report a slow or dead service quickly rather than wait
# out the client's default 35 s retry deadline and 60 s read timeout.
_TIMEOUT_S = (5.0, 15.0)
_RETRY_DEADLINE_S = 10.0
_CLEAR_SCREEN = "\x1b[H\x1b[2J"


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _positive_duration(text: str) -> float:
    value = _duration(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an int >= 0, got {text!r}")
    return value


def _size(text: str):
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must look like 1000x500, got {text!r}") from None
    if width < 200 or height < 150 or width > 10000 or height > 10000:
        raise argparse.ArgumentTypeError(f"must be between 200x150 and 10000x10000 pixels, got {text!r}")
    return width, height


def _add_common(parser: argparse.ArgumentParser) -> None:
    conn = parser.add_argument_group("service")
    conn.add_argument("--endpoint", help="http(s)://host[:port] of the instance (default: $TABLESTORE_ENDPOINT)")
    conn.add_argument("--instance", help="instance name (default: $TABLESTORE_INSTANCE)")
    conn.add_argument(
        "--access-key-id", help="AccessKey id (default: $ALIBABA_CLOUD_ACCESS_KEY_ID; the secret then "
        "comes from $ALIBABA_CLOUD_ACCESS_KEY_SECRET unless --access-key-secret is given)"
    )
    conn.add_argument("--access-key-secret", help="AccessKey secret (prefer the environment variable)")
    guard = parser.add_argument_group(
        "expiry guard (durations: seconds or 90s, 15m, 2h30m, 7d)",
        "time left = stream retention - tunnel lag: how long before the stream drops changes the tunnel "
        "still needs (OTSTunnelExpired for a BaseAndStream tunnel still in its full phase)",
    )
    guard.add_argument("--retention", type=_positive_duration, default=None, metavar="DURATION",
                       help="the table's stream retention (default: read with DescribeTable)")
    guard.add_argument("--warn-left", type=_duration, default=None, metavar="DURATION",
                       help="exit 3 (WARN) when the time left is below this")
    guard.add_argument("--fail-left", type=_duration, default=None, metavar="DURATION",
                       help="exit 4 (FAIL) when the time left is below this")
    guard.add_argument("--max-lag", type=_duration, default=None, metavar="DURATION",
                       help="exit 4 (FAIL) when the tunnel lag is above this")
    parser.add_argument("--interval", type=_positive_duration, default=5.0, metavar="DURATION",
                        help="seconds between refreshes (default 5)")
    parser.add_argument("--history", type=_count, default=720, metavar="N",
                        help="lag samples kept for the chart (default 720)")


def add_monitoring_subcommands(subparsers) -> None:
    """Register ``lag`` and ``monitor`` on the ``beam-tunnel`` subparsers."""
    lag = subparsers.add_parser(
        "lag",
        help="show a tunnel's lag per channel, with an expiry guard for alerts",
        description="Show a tunnel's consumption lag per channel (DescribeTunnel) and the time left "
        "before its stream retention runs out, refreshed every --interval until Ctrl-C or --count. "
        "Exit status: 0 OK, 3 WARN, 4 FAIL, 5 UNKNOWN (the most severe seen), 1 service error, 2 usage.",
    )
    lag.add_argument("--table", required=True, help="table name")
    lag.add_argument("--tunnel", required=True, help="tunnel name")
    lag.add_argument("--once", action="store_true", help="one snapshot, then exit")
    lag.add_argument("--json", action="store_true", help="print JSON (one object per line per refresh)")
    lag.add_argument("--count", type=_count, default=0, metavar="N",
                     help="stop after N refreshes (default 0: until Ctrl-C or SIGTERM)")
    lag.add_argument("--plot", metavar="PNG", default=None,
                     help="when done, write the lag over time to this PNG (needs beam_tunnel[monitor])")
    lag.add_argument("--plot-size", type=_size, default=(1000, 500), metavar="WxH",
                     help="PNG size in pixels (default 1000x500)")
    _add_common(lag)
    lag.set_defaults(func=_run_lag, log_level_default="WARNING")

    monitor = subparsers.add_parser(
        "monitor",
        help="serve a local web page with tunnels, channels, owners and a live lag chart",
        description="Serve a web page on 127.0.0.1 showing the instance's tunnels (or --table's): "
        "stage, channels, owners, lag, the expiry guard and a lag chart, refreshed live. "
        "Stop with Ctrl-C or SIGTERM.",
    )
    monitor.add_argument("--table", default=None, help="only this table's tunnels (default: the whole instance)")
    monitor.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default 0: any free port)")
    _add_common(monitor)
    monitor.set_defaults(func=_run_monitor, log_level_default="WARNING")


def _reader(args):
    from beam_tunnel.client.config import TunnelConfig

    from .service import LagReader

    secret = args.access_key_secret
    if args.access_key_id is not None and secret is None:
        # Keeps the secret off the command line (visible in ps).
        secret = os.environ.get(_ENV_ACCESS_KEY_SECRET)
    config = TunnelConfig.resolve(args.endpoint, args.instance, args.access_key_id, secret,
                                  timeout=_TIMEOUT_S, retry_deadline=_RETRY_DEADLINE_S)
    return LagReader(config, retention_s=args.retention)


def _thresholds(args):
    from .guard import Thresholds

    return Thresholds(warn_left_s=args.warn_left, fail_left_s=args.fail_left, max_lag_s=args.max_lag)


def _setup(command: str, args):
    """(reader, thresholds), or None after printing what is wrong."""
    from beam_tunnel.errors import TunnelError

    if args.history < 1:
        print(f"beam-tunnel {command}: --history must be >= 1, got {args.history}", file=sys.stderr)
        return None
    try:
        thresholds = _thresholds(args)
        return _reader(args), thresholds
    except (TunnelError, ValueError) as err:
        print(f"beam-tunnel {command}: {err}", file=sys.stderr)
        return None


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _run_lag(args) -> int:
    from beam_tunnel.errors import TunnelError

    from .guard import Level, combine, evaluate
    from .history import LagHistory

    if args.plot:
        from .plot import require_matplotlib

        try:
            require_matplotlib()
        except ImportError as err:
            print(f"beam-tunnel lag: {err}", file=sys.stderr)
            return 2
    setup = _setup("lag", args)
    if setup is None:
        return 2
    reader, thresholds = setup
    history = LagHistory(args.history)
    worst, refreshes, last = Level.OK, 0, None
    redraw = not args.once and not args.json and sys.stdout.isatty()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        while True:
            try:
                snapshot = reader.snapshot(args.table, args.tunnel)
            except TunnelError as err:
                if args.once:
                    print(f"beam-tunnel lag: {err}", file=sys.stderr)
                    return 1
                print(f"beam-tunnel lag: refresh failed: {err}", file=sys.stderr, flush=True)
                worst = combine([worst, Level.UNKNOWN])
            else:
                last = snapshot
                verdict = evaluate(snapshot, thresholds)
                history.add(snapshot)
                worst = combine([worst, verdict.level])
                _print_snapshot(snapshot, verdict, args, refreshes + 1, redraw)
            refreshes += 1
            if args.once or (args.count and refreshes >= args.count):
                break
            time.sleep(args.interval)  # SIGINT/SIGTERM interrupt it
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        reader.close()
    if args.plot:
        if last is None:
            print("beam-tunnel lag: no snapshot was taken; no plot written", file=sys.stderr)
            return 1
        return _write_plot(args, history, last, thresholds, worst)
    return worst.exit_code


def _print_snapshot(snapshot, verdict, args, refresh: int, redraw: bool) -> None:
    from .render import render_text, snapshot_to_dict

    if args.json:
        print(json.dumps(snapshot_to_dict(snapshot, verdict)), flush=True)
    elif redraw:
        # A terminal: redraw in place rather than scroll.
        print(f"{_CLEAR_SCREEN}{render_text(snapshot, verdict)}\n"
              f"refresh {refresh}, every {args.interval:g}s; Ctrl-C stops", flush=True)
    else:
        print(render_text(snapshot, verdict) + "\n", flush=True)


def _write_plot(args, history, last, thresholds, worst) -> int:
    from .plot import write_lag_png

    guard_lags = []
    retention = last.retention.seconds
    if retention:
        for flag, left in (("--warn-left", thresholds.warn_left_s), ("--fail-left", thresholds.fail_left_s)):
            if left is not None:
                guard_lags.append((f"{flag} trips above this lag", retention - left))
    if thresholds.max_lag_s is not None:
        guard_lags.append(("--max-lag", thresholds.max_lag_s))
    try:
        write_lag_png(history, args.plot, f"tunnel {last.tunnel_name!r} on table {last.table_name!r}: lag",
                      size_px=args.plot_size, retention_s=retention, guard_lags_s=guard_lags)
    except (OSError, ValueError) as err:
        print(f"beam-tunnel lag: cannot write --plot {args.plot!r}: {err}", file=sys.stderr)
        return 1
    print(f"beam-tunnel lag: wrote {args.plot} ({len(history)} samples)", file=sys.stderr)
    return worst.exit_code


def _run_monitor(args) -> int:
    from .web import serve_monitor

    setup = _setup("monitor", args)
    if setup is None:
        return 2
    reader, thresholds = setup
    return serve_monitor(reader, thresholds, table=args.table, port=args.port, interval_s=args.interval,
                         history_points=args.history)
