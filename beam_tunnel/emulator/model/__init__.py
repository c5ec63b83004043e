"""The emulator's state model: tables, stream log, tunnels - no HTTP here.

:class:`Emulator` holds the state of one emulator instance; the wire layer
(``EmulatorServer.backend``) and tests use it directly.
"""

from __future__ import annotations

from ..config import EmulatorConfig
from ..storage import Storage
from .streamlog import StreamLog
from .tables import TableBackend
from .tunnels import TunnelBackend

__all__ = ["Emulator"]


class Emulator:
    """State of one emulator: storage, clock, tables, stream log, tunnels.

    Args:
      config: the instance settings; ``config.data_dir`` must be set (the
        server substitutes a temporary directory for None).

    Attributes:
      config, clock, storage: as configured.
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
        try:
            self.tables = TableBackend(
                self.storage, self.clock,
                range_max_rows=config.range_max_rows, range_max_bytes=config.range_max_bytes,
            )
            self.streams = StreamLog(self.storage, self.tables)
            self.tunnels = TunnelBackend(self.storage, self.clock, self.tables, self.streams, config)
        except BaseException:
            self.storage.close()
            raise

    def close(self) -> None:
        """Release the storage (idempotent)."""
        self.storage.close()
