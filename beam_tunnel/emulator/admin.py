"""Admin actions on a running emulator: partition split, merge and listing,
and the table set-up a newcomer needs from the command line.

In process, call the model directly::

    server.admin.split_partition("orders", partition_id, "m")

From another process, :class:`AdminClient` signs requests to the admin
paths (``/emulator/split``, ``/emulator/merge``, ``/emulator/partitions``;
formats in ``wire/admin_handlers.py``) like any other call::

    admin = AdminClient("http://127.0.0.1:8080")
    low, high = admin.split("orders", admin.partitions("orders")[0]["partition_id"], "m")

:meth:`AdminClient.create_table` and :meth:`AdminClient.put_rows` use the
ordinary table API (CreateTable with split points and a stream, which the
official Python SDK cannot send; BatchWriteRow)::

    admin.create_table("orders", [("region", "STRING"), ("id", "INTEGER")],
                       split_points=["eu", "us"], stream=True)
    admin.put_rows("orders", [((("region", "ap"), ("id", 1)), {"amount": 10})])

This is what ``beam-tunnel emulator split|merge|partitions|create-table|
put-rows`` uses. Status: experimental.
"""

from __future__ import annotations

import datetime
import http.client
import json
import struct
import urllib.parse
import uuid
from typing import Iterable, List, Mapping, Sequence, Tuple

from google.protobuf.message import DecodeError
from google.protobuf.wrappers_pb2 import StringValue

from beam_tunnel.errors import ProtocolError, TransportError, for_code
from beam_tunnel.protocol import signing, table_pb2
from beam_tunnel.protocol.plainbuffer import encode_row
from beam_tunnel.protocol.rows import Cell, Row

from .config import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, DEFAULT_INSTANCE
from .wire.admin_handlers import key_to_json

__all__ = ["AdminClient"]

_API_VERSION = "2018-04-01"

PK_TYPES = ("STRING", "INTEGER", "BINARY")
"""Primary-key column types :meth:`AdminClient.create_table` accepts."""

_BATCH_ROWS = 200
"""BatchWriteRow's limit of rows per request."""

_PK_PYTHON_TYPES = {"STRING": str, "INTEGER": int, "BINARY": bytes}


class AdminClient:
    """Signed calls to an emulator's admin paths.

    Args:
      endpoint: ``http://host:port`` of the emulator.
      instance_name: its instance name (default ``beam-tunnel``).
      access_key_id, access_key_secret: a configured AccessKey pair
        (default: the emulator's documented default pair).
      timeout_s: socket timeout in seconds (default 30).

    Raises:
      ValueError: for an endpoint that is not ``http://host[:port]``.
    """

    def __init__(
        self,
        endpoint: str,
        instance_name: str = DEFAULT_INSTANCE,
        access_key_id: str = DEFAULT_ACCESS_KEY_ID,
        access_key_secret: str = DEFAULT_ACCESS_KEY_SECRET,
        timeout_s: float = 30.0,
    ) -> None:
        parsed = urllib.parse.urlsplit(endpoint)
        if parsed.scheme != "http" or not parsed.hostname or parsed.path not in ("", "/"):
            raise ValueError(f"endpoint must look like http://host:port, got {endpoint!r}")
        self._host, self._port = parsed.hostname, parsed.port or 80
        self._instance = instance_name
        self._key_id, self._secret = access_key_id, access_key_secret
        self._timeout_s = timeout_s

    def partitions(self, table: str) -> List[dict]:
        """The table's partitions, open and closed (see the handler doc)."""
        return self._call("/emulator/partitions", {"table": table})["partitions"]

    def split(self, table: str, partition_id: str, split_key) -> List[str]:
        """Split an open partition at a first-column value; returns the two
        child partition ids, lower range first."""
        payload = {"table": table, "partition_id": partition_id, "split_key": key_to_json(split_key)}
        return self._call("/emulator/split", payload)["children"]

    def merge(self, table: str, left_id: str, right_id: str) -> str:
        """Merge two adjacent open partitions; returns the child's id."""
        return self._call("/emulator/merge", {"table": table, "left": left_id, "right": right_id})["child"]

    def create_table(
        self,
        table: str,
        primary_key: Sequence[Tuple[str, str]],
        split_points: Sequence = (),
        stream: bool = False,
        stream_expiration_hours: int = 24,
    ) -> None:
        """Create a table through the table API's CreateTable.

        Args:
          table: the table name.
          primary_key: ``(name, type)`` pairs in key order; type is one of
            :data:`PK_TYPES`.
          split_points: ascending values of the first key column; the table
            gets one partition per range between them.
          stream: enable the table's stream (needed by Stream and
            BaseAndStream tunnels).
          stream_expiration_hours: how long stream records are kept.

        Raises:
          ValueError: a bad column type, or a split point that does not fit
            the first column's type.
          TunnelError: the emulator refused (e.g. OTSObjectAlreadyExist).
        """
        request = table_pb2.CreateTableRequest()
        request.table_meta.table_name = table
        if not primary_key:
            raise ValueError(f"table {table!r} needs at least one primary-key column")
        for name, kind in primary_key:
            if kind not in PK_TYPES:
                raise ValueError(f"primary-key column {name!r}: type must be one of {', '.join(PK_TYPES)}, got {kind!r}")
            request.table_meta.primary_key.add(name=name, type=table_pb2.PrimaryKeyType.Value(kind))
        request.reserved_throughput.capacity_unit.read = 0
        request.reserved_throughput.capacity_unit.write = 0
        first_name, first_type = primary_key[0]
        for value in split_points:
            if type(value) is not _PK_PYTHON_TYPES[first_type]:
                raise ValueError(
                    f"split point {value!r} does not fit the first key column {first_name!r} ({first_type})"
                )
        bounds = [b"\x09", *(_bound(value) for value in split_points), b"\x0a"]
        if split_points:
            request.partitions.extend(
                table_pb2.PartitionRange(begin=low, end=high) for low, high in zip(bounds, bounds[1:])
            )
        if stream:
            request.stream_spec.enable_stream = True
            request.stream_spec.expiration_time = stream_expiration_hours
        self._call_table("/CreateTable", request, table_pb2.CreateTableResponse)

    def primary_key(self, table: str) -> List[Tuple[str, str]]:
        """The table's primary-key columns as ``(name, type)`` pairs."""
        response = self._call_table(
            "/DescribeTable", table_pb2.DescribeTableRequest(table_name=table), table_pb2.DescribeTableResponse
        )
        return [(c.name, table_pb2.PrimaryKeyType.Name(c.type)) for c in response.table_meta.primary_key]

    def put_rows(self, table: str, rows: Iterable[Tuple[Sequence[Tuple[str, object]], Mapping[str, object]]]) -> int:
        """Put rows (insert or replace) through BatchWriteRow, 200 per request.

        Args:
          rows: ``(primary_key, columns)`` pairs: the key as ``(name,
            value)`` pairs in key order, the other columns as a mapping of
            name to value (str, int, float, bool or bytes).

        Returns:
          How many rows were written.

        Raises:
          TunnelError: the emulator refused a row (the first refusal, naming
            the row); rows before it in the same request are written.
        """
        written = 0
        batch: List[Row] = []
        for primary_key, columns in rows:
            batch.append(Row(tuple(primary_key), tuple(Cell(name, value) for name, value in columns.items())))
            if len(batch) == _BATCH_ROWS:
                written += self._put_batch(table, batch)
                batch = []
        if batch:
            written += self._put_batch(table, batch)
        return written

    def _put_batch(self, table: str, rows: List[Row]) -> int:
        request = table_pb2.BatchWriteRowRequest()
        entry = request.tables.add(table_name=table)
        for row in rows:
            item = entry.rows.add(type=table_pb2.PUT, row_change=encode_row(row))
            item.condition.row_existence = table_pb2.IGNORE
        response = self._call_table("/BatchWriteRow", request, table_pb2.BatchWriteRowResponse)
        for row, result in zip(rows, response.tables[0].rows if response.tables else ()):
            if not result.is_ok:
                raise for_code(result.error.code)(
                    f"row {dict(row.primary_key)!r:.200}: {result.error.message}", code=result.error.code
                )
        return len(rows)

    def _call(self, path: str, payload: dict) -> dict:
        answer = self._call_table(path, StringValue(value=json.dumps(payload)), StringValue)
        try:
            return json.loads(answer.value)
        except ValueError:
            raise ProtocolError(f"{path} answered with a body that is not JSON") from None

    def _call_table(self, path: str, message, response_type):
        body = message.SerializeToString()
        headers = {
            "x-ots-date": signing.format_date(datetime.datetime.now(datetime.timezone.utc)),
            "x-ots-apiversion": _API_VERSION,
            "x-ots-accesskeyid": self._key_id,
            "x-ots-instancename": self._instance,
            "x-ots-contentmd5": signing.content_md5(body),
            "x-ots-trace-id": str(uuid.uuid4()),
        }
        headers["x-ots-signature"] = signing.sign_request(path, headers, self._secret)
        conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout_s)
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except OSError as err:
            raise TransportError(f"{path} to {self._host}:{self._port} failed: {err}") from None
        finally:
            conn.close()
        request_id = response.getheader("x-ots-requestid")
        try:
            if response.status != 200:
                error = table_pb2.Error.FromString(data)
                raise for_code(error.code)(
                    error.message, code=error.code, request_id=request_id, http_status=response.status
                )
            return response_type.FromString(data)
        except DecodeError:
            raise ProtocolError(
                f"{path} answered HTTP {response.status} with an unreadable body", request_id=request_id
            ) from None


def _bound(value) -> bytes:
    """A PartitionRange bound: the value's type byte and payload, as the
    SDKs write it (no cell framing)."""
    if isinstance(value, int):
        return b"\x00" + struct.pack("<q", value)
    raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    return (b"\x03" if isinstance(value, str) else b"\x07") + struct.pack("<I", len(raw)) + raw
