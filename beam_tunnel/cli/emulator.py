"""``beam-tunnel emulator``: serve the embedded emulator until SIGINT/SIGTERM.

The admin actions on a running emulator (``beam-tunnel emulator
create-table|put-rows|partitions|split|merge``) are in ``emulator_admin.py``.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading
from typing import Dict, Optional

from beam_tunnel.emulator.config import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, DEFAULT_INSTANCE

from . import emulator_admin
from ._common import non_negative_number, positive_int, share

__all__ = ["add_parser"]


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "emulator",
        help="run the embedded Tablestore + Tunnel Service emulator, or act on a running one",
        description="Serve the Tablestore table API and Tunnel Service on a local port, "
        "storing everything under --data-dir, until SIGINT or SIGTERM. With an ACTION, act on "
        "an emulator that is already running instead.",
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
    parser.add_argument("--max-body-bytes", type=positive_int, default=5 * 1024 * 1024,
                        help="largest accepted request body (default 5 MiB)")
    parser.add_argument("--max-date-skew", type=non_negative_number, default=900.0, metavar="SECONDS",
                        help="largest accepted x-ots-date difference, 0 to disable (default 900)")
    faults = parser.add_argument_group("fault injection (tunnel paths unless --fault-all-paths)")
    faults.add_argument("--fault-error-rate", type=share, default=0.0, metavar="SHARE",
                        help="share of requests answered 503 OTSTunnelServerUnavailable")
    faults.add_argument("--fault-drop-rate", type=share, default=0.0, metavar="SHARE",
                        help="share of requests whose connection is closed without an answer")
    faults.add_argument("--fault-latency-ms", type=non_negative_number, default=0.0, metavar="MS",
                        help="fixed delay added to each request")
    faults.add_argument("--fault-jitter-ms", type=non_negative_number, default=0.0, metavar="MS",
                        help="extra random delay up to this much")
    faults.add_argument("--fault-all-paths", action="store_true", help="apply faults to table paths too")
    faults.add_argument("--fault-seed", type=int, default=None, help="seed of the fault RNG")
    parser.set_defaults(func=_run)
    emulator_admin.add_actions(parser)


def _access_keys(args) -> Optional[Dict[str, str]]:
    ids, secrets = args.access_key_id or [], args.access_key_secret or []
    if len(ids) != len(secrets):
        raise SystemExit(
            f"beam-tunnel emulator: give as many --access-key-secret as --access-key-id "
            f"(got {len(ids)} ids and {len(secrets)} secrets)"
        )
    return dict(zip(ids, secrets)) if ids else None


def _bind_error(args, err: OSError) -> str:
    where = f"{args.host}:{args.port}"
    if err.errno == errno.EADDRINUSE:
        return f"cannot listen on {where}: the port is already in use (another emulator?); pick another with --port, or --port 0 for any free one"
    if err.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {where}: {args.host!r} is not an address of this machine (--host)"
    return f"cannot listen on {where}: {err.strerror or err}"


def _run(args) -> int:
    from beam_tunnel.emulator.faults import SCOPE_ALL, SCOPE_TUNNEL, FaultSettings
    from beam_tunnel.emulator.server import EmulatorServer

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
    except OSError as err:
        print(f"beam-tunnel emulator: {_bind_error(args, err)}", file=sys.stderr)
        return 1
    except (ValueError, RuntimeError) as err:
        print(f"beam-tunnel emulator: {err}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def _on_signal(signum, _frame):
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        _print_banner(server, given_keys=args.access_key_id is not None)
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.stop()
    print("beam-tunnel emulator stopped", flush=True)
    return 0


def _print_banner(server, given_keys: bool) -> None:
    """What a client needs to connect. A secret given on the command line is
    never printed (terminal scroll-back and CI logs keep it); the documented
    default pair is, so it can be copied."""
    print("beam-tunnel emulator is running", flush=True)
    print(f"  endpoint:          {server.endpoint}")
    print(f"  instance:          {server.instance_name}")
    for key_id, secret in server.access_keys.items():
        print(f"  access key id:     {key_id}")
        if given_keys:
            print("  access key secret: (given with --access-key-secret; not shown)")
        else:
            print(f"  access key secret: {secret} (the documented default)")
    print(f"  data dir:          {server.data_dir}")
    if not given_keys:
        print("Clients (beam-tunnel consume, beam-tunnel emulator create-table ...) find it with:")
        print(f"  export TABLESTORE_ENDPOINT={server.endpoint} TABLESTORE_INSTANCE={server.instance_name}")
        print(f"  export ALIBABA_CLOUD_ACCESS_KEY_ID={DEFAULT_ACCESS_KEY_ID} "
              f"ALIBABA_CLOUD_ACCESS_KEY_SECRET={DEFAULT_ACCESS_KEY_SECRET}")
    print("Stop with Ctrl+C (SIGINT) or SIGTERM.", flush=True)
