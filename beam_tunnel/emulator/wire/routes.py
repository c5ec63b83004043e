"""Routing: URL path -> handler. The table, tunnel and admin APIs register here.

Each handler module exposes ``ROUTES``, a list of :class:`Route`. A handler
is ``handler(ctx: RequestContext, request) -> response message``: it decodes
nothing but the fields it needs, calls one backend method and builds the
response; the HTTP layer does parsing, auth, errors and signing.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, NamedTuple

__all__ = ["Route", "RequestContext", "API_TABLE", "API_TUNNEL", "API_ADMIN", "build_routes"]

API_TABLE = "table"
API_TUNNEL = "tunnel"
API_ADMIN = "admin"
_APIS = (API_TABLE, API_TUNNEL, API_ADMIN)


class RequestContext(NamedTuple):
    """What a handler may know about the request besides its message."""

    backend: Any  # model.Emulator
    instance_name: str
    access_key_id: str
    request_id: str
    api_version: str
    path: str


class Route(NamedTuple):
    """One API path.

    Attributes:
      path: the URL path, e.g. ``"/PutRow"`` or ``"/tunnel/readrecords"``.
      request_type: the protobuf class the body is parsed into.
      handler: ``handler(ctx, request) -> message``.
      api: ``"table"``, ``"tunnel"`` or ``"admin"`` (faults hit tunnel paths
        by default and never admin paths).
    """

    path: str
    request_type: type
    handler: Callable[[RequestContext, Any], Any]
    api: str


def build_routes() -> Dict[str, Route]:
    """The path -> :class:`Route` table of every registered API.

    Raises:
      ValueError: when two routes claim one path or a route is malformed.
    """
    # Imported here, not at the top: the handler modules import Route from
    # this module.
    from . import admin_handlers, table_handlers, tunnel_handlers

    table: Dict[str, Route] = {}
    for route in (*table_handlers.ROUTES, *tunnel_handlers.ROUTES, *admin_handlers.ROUTES):
        if not route.path.startswith("/"):
            raise ValueError(f"route path must start with '/', got {route.path!r}")
        if route.api not in _APIS:
            raise ValueError(f"route {route.path!r} has api {route.api!r}, expected one of {_APIS}")
        if route.path in table:
            raise ValueError(f"two routes claim {route.path!r}")
        table[route.path] = route
    return table
