"""Every row of a source table, read with the table API's GetRange.

The tunnel client speaks only the tunnel API; like
``beam_tunnel.beam.rows.describe_table_schema``, this makes table-API calls
with the client's endpoint, credentials, timeouts and retry policy, on a
connection of its own.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, Tuple

from beam_tunnel.client.auth import OtsV2Auth
from beam_tunnel.client.config import TunnelConfig
from beam_tunnel.client.transport import HttpTransport
from beam_tunnel.errors import ConfigError
from beam_tunnel.protocol import table_pb2
from beam_tunnel.protocol.plainbuffer import decode_rows, encode_primary_key
from beam_tunnel.protocol.rows import INF_MAX, INF_MIN
from beam_tunnel.beam.rows import describe_table_schema

__all__ = ["iter_source_rows", "source_rows"]

_TABLE_API_VERSION = "2015-12-31"
_PAGE_ROWS = 5000


def iter_source_rows(client: Any, table: str) -> Iterator[Tuple[tuple, Dict[str, Any]]]:
    """Yield ``(key tuple, {column: newest value})`` for every row of
    ``table``, in key order (GetRange pages, one version per column).

    Args:
      client: a ``TunnelClient`` or its ``TunnelConfig``.
      table: the table name.

    Raises:
      ConfigError: a malformed argument.
      TunnelError: the service's answer, e.g. ObjectNotExistError.
    """
    config = getattr(client, "config", client)
    if not isinstance(config, TunnelConfig):
        raise ConfigError(f"client must be a TunnelClient or a TunnelConfig, got {client!r}")
    key_names = [name for name, _ in describe_table_schema(config, table).key_schema]
    auth = OtsV2Auth(config.credentials, config.instance_name, _TABLE_API_VERSION)
    transport = HttpTransport(config.endpoint, auth, connect_timeout_s=config.connect_timeout_s,
                              read_timeout_s=config.read_timeout_s, pool_size=1)
    start = encode_primary_key(tuple((name, INF_MIN) for name in key_names))
    end = encode_primary_key(tuple((name, INF_MAX) for name in key_names))
    try:
        while start is not None:
            request = table_pb2.GetRangeRequest(
                table_name=table, direction=table_pb2.FORWARD, max_versions=1, limit=_PAGE_ROWS,
                inclusive_start_primary_key=start, exclusive_end_primary_key=end,
            )
            response, _ = config.meta_retry.run(
                lambda: transport.call("GetRange", "/GetRange", request, table_pb2.GetRangeResponse),
                idempotent=True, description=f"GetRange of {table!r}",
            )
            for row in decode_rows(response.rows) if response.rows else ():
                yield (tuple(value for _, value in row.primary_key),
                       {cell.name: cell.value for cell in row.cells})
            start = response.next_start_primary_key if response.HasField("next_start_primary_key") else None
    finally:
        transport.close()


def source_rows(client: Any, table: str) -> Dict[tuple, Dict[str, Any]]:
    """:func:`iter_source_rows` as a dict."""
    return dict(iter_source_rows(client, table))
