"""The emulator's state model: tables, stream log, tunnels - no HTTP here.

:class:`Emulator` holds the state of one emulator instance; the wire layer
(``EmulatorServer.backend``) and tests use it directly.
"""

from __future__ import annotations

from ..config import EmulatorConfig
from ..storage import TUNNEL_DB_FILE_NAME, Storage
from .streamlog import StreamLog
from .tables import TableBackend
from .tunnels import TunnelBackend

__all__ = ["Emulator"]

_TUNNEL_CACHE_KIB = 2 * 1024


class Emulator:
    """State of one emulator: storage, clock, tables, stream log, tunnels.

    Args:
      config: the instance settings; ``config.data_dir`` must be set (the
        server substitutes a temporary directory for None).

    Attributes:
      config, clock: as configured.
      storage: the table data (:data:`~..storage.DB_FILE_NAME`).
      tunnel_storage: the tunnel control state, a file of its own so that
        heartbeats and checkpoints never wait for a table commit.
      tables: :class:`~.tables.TableBackend`.
      streams: :class:`~.streamlog.StreamLog`.
      tunnels: :class:`~.tunnels.TunnelBackend`.
    """

    def __init__(self, config: EmulatorConfig) -> None:
        if config.data_dir is None:
            raise ValueError("Emulator needs config.data_dir; EmulatorServer picks a temporary one for None")
        self.config = config
        self.clock = config.clock
        self.storage = Storage(config.data_dir)
        self.tunnel_storage = None
        try:
            # Small: a few rows per tunnel, channel and client.
            self.tunnel_storage = Storage(config.data_dir, TUNNEL_DB_FILE_NAME, lock_dir=False,
                                          cache_kib=_TUNNEL_CACHE_KIB)
            self.tables = TableBackend(
                self.storage, self.clock,
                range_max_rows=config.range_max_rows, range_max_bytes=config.range_max_bytes,
            )
            self.streams = StreamLog(self.storage, self.tables)
            self.tunnels = TunnelBackend(
                self.tunnel_storage, self.clock, self.tables, self.streams, config, data_storage=self.storage,
            )
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the storage (idempotent)."""
        if self.tunnel_storage is not None:
            self.tunnel_storage.close()
        self.storage.close()
