"""``beam-tunnel emulator ACTION``: act on a running emulator.

``create-table`` and ``put-rows`` set up what a first ``consume`` needs (a
table in several partitions with a stream, some rows); ``partitions``,
``split`` and ``merge`` change partitions under a running tunnel. All go
over the emulator's signed HTTP API (see :mod:`beam_tunnel.emulator.admin`),
found like ``consume`` finds a service: flags, then ``$TABLESTORE_*`` /
``$ALIBABA_CLOUD_*``, then the emulator's defaults.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from typing import Iterator, List, Sequence, Tuple

from beam_tunnel.emulator.admin import PK_TYPES
from beam_tunnel.errors import TunnelError

from ._common import UsageError, add_service_options, positive_int, service_settings

__all__ = ["add_actions"]


def add_actions(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="admin_action", metavar="ACTION",
                                    help="act on a running emulator instead of starting one")

    def action(name: str, helptext: str, description: str = "") -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=helptext, description=description or helptext)
        add_service_options(sub, emulator_defaults=True)
        sub.add_argument("table", help="table name")
        sub.set_defaults(func=_run)
        return sub

    create = action(
        "create-table", "create a table, optionally in several partitions and with a stream",
        "Create a table through CreateTable. --split-points gives one partition per range of the first "
        "key column (each partition is one full-data channel and one stream channel of a tunnel); "
        "--stream is needed by Stream and BaseAndStream tunnels.",
    )
    create.add_argument("--pk", action="append", required=True, metavar="NAME:TYPE", type=_pk_column,
                        help=f"a primary-key column, in key order; TYPE is one of {', '.join(PK_TYPES)}")
    create.add_argument("--split-points", default="", metavar="V1,V2,...",
                        help="ascending values of the first key column where partitions start")
    create.add_argument("--stream", action="store_true", help="enable the table's stream")
    create.add_argument("--stream-expiration-hours", type=positive_int, default=24, metavar="HOURS",
                        help="how long stream records are kept (default 24)")

    put = action(
        "put-rows", "write rows: JSON objects, or --generate N sample rows",
        "Put rows through BatchWriteRow (a row with an existing key is replaced). Each ROW is a JSON "
        "object holding every primary-key column and any other columns (strings, integers, "
        "numbers, booleans); '-' reads one object per line from stdin.",
    )
    put.add_argument("rows", nargs="*", metavar="ROW", help="a JSON object, or - for JSON lines on stdin")
    put.add_argument("--generate", type=positive_int, metavar="N",
                     help="write N sample rows (keys spread over the first column's range, so over "
                     "the partitions; running it again updates the same N rows)")

    for name, helptext in (("partitions", "list a table's partitions"),
                           ("split", "split an open partition at a first-column value"),
                           ("merge", "merge two adjacent open partitions")):
        sub = action(name, helptext)
        if name == "split":
            sub.add_argument("partition", help="partition id (see 'partitions')")
            sub.add_argument("key", help="split value of the first key column")
            sub.add_argument("--integer", action="store_true", help="the key column is INTEGER")
        elif name == "merge":
            sub.add_argument("left", help="left partition id")
            sub.add_argument("right", help="right partition id (starts where left ends)")


def _pk_column(text: str) -> Tuple[str, str]:
    name, _, kind = text.partition(":")
    if not name or kind.upper() not in PK_TYPES:
        raise argparse.ArgumentTypeError(f"must be NAME:TYPE with TYPE one of {', '.join(PK_TYPES)}, got {text!r}")
    return name, kind.upper()


def _run(args) -> int:
    from beam_tunnel.emulator.admin import AdminClient

    command = f"beam-tunnel emulator {args.admin_action}"
    try:
        service = service_settings(args, emulator_defaults=True)
        admin = AdminClient(service.endpoint, service.instance, service.access_key_id, service.access_key_secret)
        if args.admin_action == "create-table":
            print(_create_table(admin, args))
            return 0
        if args.admin_action == "put-rows":
            print(_put_rows(admin, args))
            return 0
        if args.admin_action == "partitions":
            result = admin.partitions(args.table)
        elif args.admin_action == "split":
            result = admin.split(args.table, args.partition, int(args.key) if args.integer else args.key)
        else:
            result = admin.merge(args.table, args.left, args.right)
    except UsageError as err:
        print(f"{command}: {err}", file=sys.stderr)
        return 2
    except (TunnelError, ValueError) as err:
        print(f"{command}: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


def _create_table(admin, args) -> str:
    first_name, first_type = args.pk[0]
    points = [_typed(first_name, first_type, text, "--split-points") for text in args.split_points.split(",") if text]
    admin.create_table(args.table, args.pk, split_points=points, stream=args.stream,
                       stream_expiration_hours=args.stream_expiration_hours)
    stream = f", stream kept {args.stream_expiration_hours} h" if args.stream else ", no stream"
    return f"created table {args.table!r}: {len(points) + 1} partition(s){stream}"


def _typed(column: str, kind: str, text: str, flag: str):
    if kind == "INTEGER":
        try:
            return int(text)
        except ValueError:
            raise UsageError(f"{flag}: {text!r} is not an integer (column {column!r} is INTEGER)") from None
    return text.encode("utf-8") if kind == "BINARY" else text


def _put_rows(admin, args) -> str:
    if bool(args.rows) == bool(args.generate):
        raise UsageError("give ROWs as JSON objects (or - for stdin), or --generate N, not both and not neither")
    schema = admin.primary_key(args.table)
    rows = _generated(schema, args.generate) if args.generate else _parsed(schema, args.rows)
    written = admin.put_rows(args.table, rows)
    return f"wrote {written} row(s) to table {args.table!r}"


def _generated(schema: Sequence[Tuple[str, str]], count: int) -> Iterator:
    """Rows 0..count-1; the first key column cycles through the alphabet so
    the rows land in every partition of a table split at letters or numbers."""
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    for index in range(count):
        key = []
        for position, (name, kind) in enumerate(schema):
            if kind == "INTEGER":
                key.append((name, index))
            else:
                text = f"{'abcdefghijklmnopqrstuvwxyz'[index % 26]}{index:06d}" if position == 0 else f"k{index:06d}"
                key.append((name, text.encode("ascii") if kind == "BINARY" else text))
        yield key, {"value": index, "note": f"sample row {index}, written {stamp}"}


def _parsed(schema: Sequence[Tuple[str, str]], texts: List[str]) -> Iterator:
    lines = (line for text in texts for line in (sys.stdin if text == "-" else [text]) if line.strip())
    for number, line in enumerate(lines, 1):
        try:
            obj = json.loads(line)
        except ValueError as err:
            raise UsageError(f"row {number} is not JSON ({err}): {line.strip()!r:.200}") from None
        if not isinstance(obj, dict):
            raise UsageError(f"row {number} must be a JSON object, got {line.strip()!r:.200}")
        missing = [name for name, _ in schema if name not in obj]
        if missing:
            raise UsageError(f"row {number} lacks primary-key column(s) {', '.join(missing)}: {line.strip()!r:.200}")
        key = [(name, _key_value(name, kind, obj.pop(name), number)) for name, kind in schema]
        for name, value in obj.items():
            if value is None or isinstance(value, (list, dict)):
                raise UsageError(f"row {number}: column {name!r} must be a string, number or boolean, got {value!r:.100}")
        yield key, obj


def _key_value(name: str, kind: str, value, number: int):
    expected = {"INTEGER": int, "STRING": str, "BINARY": str}[kind]
    if isinstance(value, bool) or not isinstance(value, expected):
        raise UsageError(f"row {number}: key column {name!r} is {kind}, got {value!r:.100}")
    return value.encode("utf-8") if kind == "BINARY" else value
