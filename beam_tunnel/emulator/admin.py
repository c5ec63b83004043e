"""Admin actions on a running emulator: partition split, merge and listing.

In process, call the model directly::

    server.admin.split_partition("orders", partition_id, "m")

From another process, :class:`AdminClient` signs requests to the admin
paths (``/emulator/split``, ``/emulator/merge``, ``/emulator/partitions``;
formats in ``wire/admin_handlers.py``) like any other call::

    admin = AdminClient("http://127.0.0.1:8080")
    low, high = admin.split("orders", admin.partitions("orders")[0]["partition_id"], "m")

This is what ``beam-tunnel emulator split|merge|partitions`` uses. Status:
experimental.
"""

from __future__ import annotations

import datetime
import http.client
import json
import urllib.parse
import uuid
from typing import List

from google.protobuf.message import DecodeError
from google.protobuf.wrappers_pb2 import StringValue

from beam_tunnel.errors import ProtocolError, TransportError, for_code
from beam_tunnel.protocol import signing, table_pb2

from .config import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, DEFAULT_INSTANCE
from .wire.admin_handlers import key_to_json

__all__ = ["AdminClient"]

_API_VERSION = "2018-04-01"


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

    def _call(self, path: str, payload: dict) -> dict:
        body = StringValue(value=json.dumps(payload)).SerializeToString()
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
            return json.loads(StringValue.FromString(data).value)
        except (DecodeError, ValueError):
            raise ProtocolError(
                f"{path} answered HTTP {response.status} with an unreadable body", request_id=request_id
            ) from None
