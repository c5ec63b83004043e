"""``beam-tunnel monitor``: the lag view as a local web page.

One poller thread reads every watched tunnel each interval (however many
browser tabs are open) and keeps a bounded lag history per tunnel; a
stdlib HTTP server on 127.0.0.1 serves:

* ``GET /`` - the page (``_page.py``), which polls ``/api/state`` and
  redraws the tunnels, channels and an SVG lag chart per tunnel;
* ``GET /api/state`` - the latest snapshots, verdicts and histories as JSON
  (the ``lag --json`` object per tunnel, plus ``history``).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional

from beam_tunnel.errors import TunnelError

from ._page import PAGE_HTML
from .guard import Level, Thresholds, combine, evaluate
from .history import LagHistory
from .render import snapshot_to_dict
from .service import LagReader

__all__ = ["MonitorState", "serve_monitor"]

_LOGGER = logging.getLogger(__name__)

_HOST = "127.0.0.1"
# How long shutdown waits for a poll in flight (its calls have bounded
# timeouts; the process exits regardless once this passes).
_POLLER_JOIN_S = 5.0


class MonitorState:
    """The watched tunnels' latest snapshots and histories. Thread-safe.

    Args:
      reader: reads the service.
      thresholds: the expiry guard's thresholds.
      table: watch this table's tunnels; None for the whole instance.
      history_points: lag samples kept per tunnel.
    """

    def __init__(self, reader: LagReader, thresholds: Thresholds, table: Optional[str], history_points: int) -> None:
        self._reader = reader
        self._thresholds = thresholds
        self._table = table
        self._history_points = history_points
        self._lock = threading.Lock()
        self._tunnels: List[dict] = []
        self._histories: Dict[str, LagHistory] = {}
        self._error: Optional[str] = None
        self._refreshes = 0
        self._refreshed_ns: Optional[int] = None

    def refresh(self) -> None:
        """Read every watched tunnel once. Failures are kept as the state's
        error (the page shows them); the last good snapshots stay."""
        try:
            infos = self._reader.tunnels(self._table)
        except TunnelError as err:
            self.record_error(f"ListTunnel failed: {err}")
            return
        tunnels, errors = [], []
        for info in sorted(infos, key=lambda i: (i.table_name, i.tunnel_name)):
            try:
                snapshot = self._reader.snapshot(info.table_name, info.tunnel_name)
            except TunnelError as err:
                errors.append(f"DescribeTunnel {info.table_name}/{info.tunnel_name} failed: {err}")
                continue
            verdict = evaluate(snapshot, self._thresholds)
            tunnels.append((snapshot, verdict))
        with self._lock:
            kept = {}
            entries = []
            for snapshot, verdict in tunnels:
                history = self._histories.get(snapshot.tunnel_id)
                if history is None:
                    history = LagHistory(self._history_points)
                history.add(snapshot)
                kept[snapshot.tunnel_id] = history
                entry = snapshot_to_dict(snapshot, verdict)
                entry["history"] = history.to_dict()
                entries.append(entry)
            self._histories = kept
            self._tunnels = entries
            self._error = "; ".join(errors) or None
            self._refreshes += 1
            self._refreshed_ns = self._reader.clock.now_ns()

    def record_error(self, message: str) -> None:
        """Show ``message`` on the page until the next good refresh."""
        _LOGGER.warning("[monitor] %s", message)
        with self._lock:
            self._error = message

    def to_dict(self) -> dict:
        """The JSON answer of ``/api/state``."""
        config = self._reader.client.config
        with self._lock:
            levels = [entry["level"] for entry in self._tunnels]
            return {
                "endpoint": config.endpoint,
                "instance": config.instance_name,
                "table": self._table,
                "refreshes": self._refreshes,
                "refreshed_ns": self._refreshed_ns,
                "error": self._error,
                "level": combine(Level[name] for name in levels).name,
                "tunnels": list(self._tunnels),
            }


def _handler_class(state: MonitorState, interval_s: float):
    page = PAGE_HTML.replace("__INTERVAL_MS__", str(max(200, int(interval_s * 1000)))).encode("utf-8")

    class _Handler(BaseHTTPRequestHandler):
        server_version = "beam-tunnel-monitor"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                self._send(200, "text/html; charset=utf-8", page)
            elif path == "/api/state":
                self._send(200, "application/json", json.dumps(state.to_dict()).encode("utf-8"))
            else:
                self._send(404, "text/plain; charset=utf-8", f"no such page: {path}\n".encode("utf-8"))

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args) -> None:  # noqa: A002 (http.server's signature)
            _LOGGER.debug("[monitor] %s " + format, self.address_string(), *args)

    return _Handler


def serve_monitor(
    reader: LagReader,
    thresholds: Thresholds,
    *,
    table: Optional[str],
    port: int,
    interval_s: float,
    history_points: int,
) -> int:
    """Serve the page until SIGINT or SIGTERM; the exit status (0, or 1
    when the port cannot be bound). Closes ``reader``."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        reader.close()
        print(f"beam-tunnel monitor: --port must be in [0, 65535], got {port!r}", file=sys.stderr)
        return 2
    state = MonitorState(reader, thresholds, table, history_points)
    try:
        httpd = ThreadingHTTPServer((_HOST, port), _handler_class(state, interval_s))
    except OSError as err:
        reader.close()
        print(f"beam-tunnel monitor: cannot listen on {_HOST}:{port}: {err}", file=sys.stderr)
        return 1
    httpd.daemon_threads = True
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                state.refresh()
            except Exception as err:  # noqa: BLE001 - a monitor outlives one bad answer
                _LOGGER.exception("[monitor] refresh failed")
                state.record_error(f"refresh failed: {type(err).__name__}: {err}")
            stop.wait(interval_s)

    poller = threading.Thread(target=poll, name="monitor-poller", daemon=True)
    server = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
                              name="monitor-http", daemon=True)
    previous = {sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        poller.start()
        server.start()
        url = f"http://{_HOST}:{httpd.server_address[1]}/"
        scope = f"table {table!r}" if table else f"instance {reader.client.config.instance_name!r}"
        print(f"beam-tunnel monitor: serving the tunnels of {scope} at {url}", flush=True)
        print("Stop with Ctrl+C (SIGINT) or SIGTERM.", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        stop.set()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if server.is_alive():  # shutdown() waits for serve_forever, forever if it never ran
            httpd.shutdown()
        httpd.server_close()
        poller.join(_POLLER_JOIN_S)
        reader.close()
    print("beam-tunnel monitor stopped", flush=True)
    return 0
