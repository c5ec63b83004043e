"""EmulatorServer: the embedded Tablestore + Tunnel Service emulator, in process.

Usage::

    with EmulatorServer() as server:          # temporary data dir, free port
        client = tablestore.OTSClient(server.endpoint, server.access_key_id,
                                      server.access_key_secret, server.instance_name)
        ...
        server.backend.tables.list_partitions("orders")   # state, for tests
        server.faults.configure(error_rate=0.2, seed=1)   # faults on demand

One object per test: nothing is shared between instances.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import socket
import tempfile
import threading
from typing import Mapping, Optional

from .clock import Clock
from .config import DEFAULT_INSTANCE, EmulatorConfig
from .faults import FaultInjector, FaultSettings
from .model import Emulator
from .wire.http import WireApp
from .wire.routes import build_routes
from .wire.transport import EmulatorHTTPServer, WireLimits

__all__ = ["EmulatorServer"]

_LOGGER = logging.getLogger(__name__)
_THREAD_NAME = "beam-tunnel-emulator"
# How long stop() waits for requests already being handled.
_STOP_GRACE_S = 5.0


class EmulatorServer:
    """A running emulator on a local port.

    Args:
      data_dir: directory for the SQLite data; None means a temporary
        directory removed by :meth:`stop`. A directory from an earlier run
        is reopened with everything in it.
      port: TCP port; 0 (default) picks a free one (see :attr:`endpoint`).
      host: address to bind (default ``127.0.0.1``: local only).
      instance_name: the instance name clients must send.
      access_keys: AccessKey id -> secret; default one documented pair.
      clock: time source (default wall clock); pass a ``ManualClock`` to
        move time in tests. Request dates are checked, and answers dated,
        by this clock: once it is moved more than 15 minutes away from the
        wall clock, pass ``max_date_skew_s=None`` (and note that the
        official SDKs, which check answer dates, will refuse the answers).
      faults: initial :class:`~.faults.FaultSettings` (default none).
      max_connections: open connections served at once (default 256);
        beyond it the longest-idle connection is closed, or, when none is
        idle, the new one gets 503 ``OTSServerBusy``.
      header_timeout_s: a new connection must send its request line and
        headers within this long (default 20 s); 408 otherwise.
      body_timeout_s: the body must arrive, and the answer be taken,
        within this long (default 60 s).
      idle_timeout_s: a keep-alive connection with no new request is
        closed after this long (default 600 s).
      **options: other :class:`~.config.EmulatorConfig` fields
        (``max_body_bytes``, ``max_date_skew_s``, ``range_max_rows``, ...).

    Raises:
      ValueError: for an invalid setting, naming it.
    """

    def __init__(
        self,
        data_dir: Optional[str] = None,
        port: int = 0,
        host: str = "127.0.0.1",
        instance_name: str = DEFAULT_INSTANCE,
        access_keys: Optional[Mapping[str, str]] = None,
        clock: Optional[Clock] = None,
        faults: Optional[FaultSettings] = None,
        max_connections: int = WireLimits.max_connections,
        header_timeout_s: float = WireLimits.header_timeout_s,
        body_timeout_s: float = WireLimits.body_timeout_s,
        idle_timeout_s: float = WireLimits.idle_timeout_s,
        **options,
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an int in [0, 65535], got {port!r}")
        if not isinstance(host, str) or not host:
            raise ValueError(f"host must be a non-empty string, got {host!r}")
        self._limits = WireLimits(max_connections, header_timeout_s, body_timeout_s, idle_timeout_s)
        kwargs = dict(options)
        if access_keys is not None:
            kwargs["access_keys"] = access_keys
        if clock is not None:
            kwargs["clock"] = clock
        if faults is not None:
            kwargs["faults"] = faults
        self._config = EmulatorConfig(instance_name=instance_name, data_dir=data_dir, **kwargs)
        self._host = host
        self._port = port
        self.faults = FaultInjector(self._config.faults)
        self._lock = threading.Lock()
        self._httpd: Optional[EmulatorHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self._backend: Optional[Emulator] = None
        self._temp_dir: Optional[str] = None

    # ------------------------------------------------------------------
    # Lifecycle

    def start(self) -> "EmulatorServer":
        """Open the storage, bind the port and serve in a daemon thread.

        Raises:
          RuntimeError: when already running, or the data dir is in use.
          OSError: when the port cannot be bound.
        """
        with self._lock:
            if self._httpd is not None:
                raise RuntimeError("EmulatorServer is already running")
            config = self._config
            if config.data_dir is None:
                self._temp_dir = tempfile.mkdtemp(prefix="beam-tunnel-emulator-")
                config = dataclasses.replace(config, data_dir=self._temp_dir)
            try:
                self._backend = Emulator(config)
                app = WireApp(self._backend, build_routes(), self.faults)
                server_cls = _IPv6Server if ":" in self._host else EmulatorHTTPServer
                self._httpd = server_cls((self._host, self._port), app, self._limits)
            except BaseException:
                self._cleanup()
                raise
            self._port = self._httpd.server_address[1]
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=_THREAD_NAME, daemon=True
            )
            self._thread.start()
        _LOGGER.info("[server] emulator serving %s (instance %s, data %s)",
                     self.endpoint, self.instance_name, config.data_dir)
        return self

    def stop(self) -> None:
        """Stop serving, close open connections, close storage; remove a
        temporary data dir. Idempotent."""
        with self._lock:
            httpd, thread = self._httpd, self._thread
            if httpd is None:
                return
            httpd.shutdown()
            httpd.server_close()
            httpd.close_all(_STOP_GRACE_S)
            if thread is not None:
                thread.join(_STOP_GRACE_S)
            self._cleanup()
        _LOGGER.info("[server] emulator stopped")

    def _cleanup(self) -> None:
        self._httpd = None
        self._thread = None
        if self._backend is not None:
            self._backend.close()
            self._backend = None
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    def __enter__(self) -> "EmulatorServer":
        if self._httpd is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------
    # Properties

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        """The bound port (the chosen one after start() when 0 was asked)."""
        return self._port

    @property
    def endpoint(self) -> str:
        """``http://host:port`` for clients (loopback when bound to all addresses)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self._host, self._host)
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self._port}"

    @property
    def limits(self) -> WireLimits:
        """Connection limits and timeouts (see the constructor)."""
        return self._limits

    @property
    def instance_name(self) -> str:
        return self._config.instance_name

    @property
    def access_key_id(self) -> str:
        """The first configured AccessKey id."""
        return next(iter(self._config.access_keys))

    @property
    def access_key_secret(self) -> str:
        """The secret of :attr:`access_key_id`."""
        return self._config.access_keys[self.access_key_id]

    @property
    def access_keys(self) -> Mapping[str, str]:
        return dict(self._config.access_keys)

    @property
    def clock(self) -> Clock:
        return self._config.clock

    @property
    def config(self) -> EmulatorConfig:
        return self._config

    @property
    def data_dir(self) -> Optional[str]:
        """The data directory in use (the temporary one while running with None)."""
        return self._backend.config.data_dir if self._backend is not None else self._config.data_dir

    @property
    def backend(self) -> Emulator:
        """The emulator state (tables, stream log, tunnels) for tests and admin.

        Raises:
          RuntimeError: when the server is not running.
        """
        if self._backend is None:
            raise RuntimeError("EmulatorServer is not running; call start() first")
        return self._backend

    @property
    def admin(self):
        """In-process admin actions: ``split_partition(table, partition_id,
        split_key)`` and ``merge_partitions(table, left_id, right_id)`` (the
        model's TunnelBackend; ``beam_tunnel.emulator.admin.AdminClient`` does
        the same over HTTP).

        Raises:
          RuntimeError: when the server is not running.
        """
        return self.backend.tunnels


class _IPv6Server(EmulatorHTTPServer):
    address_family = socket.AF_INET6
