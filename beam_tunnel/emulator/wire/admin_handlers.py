"""Emulator-only admin paths: partition split, merge and listing.

They are signed and checked like every other path, and faults never hit
them. The body is a protobuf ``google.protobuf.StringValue`` holding a JSON
object, and so is the answer (the service has no messages for these)::

    /emulator/split       {"table": t, "partition_id": p, "split_key": v}
                          -> {"children": [low id, high id]}
    /emulator/merge       {"table": t, "left": p1, "right": p2}
                          -> {"child": id}
    /emulator/partitions  {"table": t}
                          -> {"partitions": [{"partition_id", "epoch",
                              "parents", "closed", "start", "end"}, ...]}

Key values in JSON: an integer is INTEGER, a string is STRING, and
``{"binary": "<base64>"}`` is BINARY; ``start``/``end`` are the first
primary-key column's bound, null for an open end.
"""

from __future__ import annotations

import base64
import binascii
import json

from google.protobuf.wrappers_pb2 import StringValue

from . import errors
from .routes import API_ADMIN, Route

__all__ = ["ROUTES", "key_to_json", "key_from_json"]


def key_to_json(value):
    """A first-column key value as JSON (see the module doc)."""
    if isinstance(value, bytes):
        return {"binary": base64.b64encode(value).decode("ascii")}
    return value


def key_from_json(value):
    """The key value a JSON value stands for.

    Raises:
      ServiceError: OTSParameterInvalid for any other JSON.
    """
    if isinstance(value, dict) and set(value) == {"binary"} and isinstance(value["binary"], str):
        try:
            return base64.b64decode(value["binary"], validate=True)
        except (binascii.Error, ValueError):
            raise errors.parameter_invalid(f"split_key binary {value['binary']!r} is not base64") from None
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise errors.parameter_invalid(
        f"split_key must be an integer, a string or {{\"binary\": base64}}, got {value!r:.200}"
    )


def _args(request: StringValue, *names: str) -> list:
    try:
        body = json.loads(request.value or "{}")
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise errors.parameter_invalid(f"admin request is not JSON: {request.value!r:.200}") from None
    if not isinstance(body, dict):
        raise errors.parameter_invalid(f"admin request must be a JSON object, got {request.value!r:.200}")
    missing = [name for name in names if name not in body]
    if missing:
        raise errors.parameter_invalid(f"admin request is missing {', '.join(missing)}")
    for name in names:
        if name != "split_key" and not isinstance(body[name], str):
            raise errors.parameter_invalid(f"{name} must be a string, got {body[name]!r:.200}")
    return [body[name] for name in names]


def _answer(data) -> StringValue:
    return StringValue(value=json.dumps(data, sort_keys=True))


def split(ctx, request: StringValue) -> StringValue:
    table, partition_id, split_key = _args(request, "table", "partition_id", "split_key")
    children = ctx.backend.tunnels.split_partition(table, partition_id, key_from_json(split_key))
    return _answer({"children": children})


def merge(ctx, request: StringValue) -> StringValue:
    table, left, right = _args(request, "table", "left", "right")
    return _answer({"child": ctx.backend.tunnels.merge_partitions(table, left, right)})


def _bound(bound):
    return key_to_json(bound[0][1]) if isinstance(bound, tuple) else None


def partitions(ctx, request: StringValue) -> StringValue:
    (table,) = _args(request, "table")
    listed = [
        {
            "partition_id": p.partition_id,
            "epoch": p.epoch,
            "parents": list(p.parent_ids),
            "closed": p.closed,
            "start": _bound(p.start),
            "end": _bound(p.end),
        }
        for p in ctx.backend.tables.list_partitions(table)
    ]
    return _answer({"partitions": listed})


ROUTES = [
    Route("/emulator/split", StringValue, split, API_ADMIN),
    Route("/emulator/merge", StringValue, merge, API_ADMIN),
    Route("/emulator/partitions", StringValue, partitions, API_ADMIN),
]
