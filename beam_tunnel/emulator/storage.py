"""Durable storage of one emulator: a single SQLite file.

WAL journal with ``synchronous=FULL``: a transaction is on disk when
:meth:`Storage.transaction` returns, so whatever the emulator acknowledged
survives ``kill -9`` (and power loss). Writers are serialised by one lock;
readers use pooled connections of their own and, thanks to WAL, neither
block each other nor wait for the writer.

Each model module owns the DDL of its tables and passes it to
:meth:`Storage.ensure_schema` (idempotent ``CREATE ... IF NOT EXISTS``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sqlite3
import threading
from typing import Iterator

try:  # POSIX only; elsewhere two emulators on one directory are not detected.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

__all__ = ["Storage", "DB_FILE_NAME"]

_LOGGER = logging.getLogger(__name__)

DB_FILE_NAME = "emulator.sqlite3"
_LOCK_FILE_NAME = "emulator.lock"
# Idle reader connections kept for reuse; more are opened under load and
# closed when returned beyond this count.
_MAX_IDLE_READERS = 16
# Waiting on a lock held by a checkpointing connection is normal under WAL;
# giving up early would surface as a spurious 500.
_BUSY_TIMEOUT_MS = 30_000


class Storage:
    """One SQLite database in ``data_dir`` (created if missing).

    Args:
      data_dir: directory for the database file. Only one emulator may use
        a directory at a time; a second one gets a RuntimeError.

    Raises:
      RuntimeError: when another live emulator holds ``data_dir``.
    """

    def __init__(self, data_dir: str) -> None:
        os.makedirs(data_dir, exist_ok=True)
        self.data_dir = data_dir
        self.path = os.path.join(data_dir, DB_FILE_NAME)
        self._lock_file = self._take_dir_lock(data_dir)
        self._write_lock = threading.RLock()
        self._depth = 0
        self._closed = False
        self._idle: "queue.SimpleQueue[sqlite3.Connection]" = queue.SimpleQueue()
        self._idle_count = 0
        self._idle_lock = threading.Lock()
        self._writer = self._connect()
        # Takes effect only on a new database: 16 KiB pages keep rows and
        # log records of a few KiB inside their B-tree pages.
        self._writer.execute("PRAGMA page_size=16384")
        self._writer.execute("PRAGMA journal_mode=WAL")
        self._writer.execute("PRAGMA synchronous=FULL")

    @staticmethod
    def _take_dir_lock(data_dir: str):
        handle = open(os.path.join(data_dir, _LOCK_FILE_NAME), "a+")
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                raise RuntimeError(
                    f"data dir {data_dir!r} is in use by another running emulator"
                ) from None
        return handle

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA temp_store=MEMORY")
        conn.execute("PRAGMA cache_size=-65536")  # 64 MiB page cache
        return conn

    def ensure_schema(self, ddl: str) -> None:
        """Run idempotent DDL (``CREATE TABLE IF NOT EXISTS ...``) once."""
        with self._write_lock:
            self._check_open()
            self._writer.executescript(ddl)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Serialised write transaction; commits on success, rolls back on error.

        Yields the writer connection; use it (not :meth:`read`) for every read
        inside the transaction, to see its own uncommitted writes. A nested
        call on the same thread joins the outer transaction.
        """
        with self._write_lock:
            self._check_open()
            if self._depth:
                self._depth += 1
                try:
                    yield self._writer
                finally:
                    self._depth -= 1
                return
            self._writer.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._writer
            except BaseException:
                self._depth = 0
                self._writer.execute("ROLLBACK")
                raise
            self._depth = 0
            self._writer.execute("COMMIT")

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read-only snapshot: every statement inside sees the same state."""
        self._check_open()
        conn = self._take_reader()
        try:
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")
        finally:
            self._give_back(conn)

    def _take_reader(self) -> sqlite3.Connection:
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = self._connect()
            conn.execute("PRAGMA query_only=1")
            return conn
        with self._idle_lock:
            self._idle_count -= 1
        return conn

    def _give_back(self, conn: sqlite3.Connection) -> None:
        with self._idle_lock:
            keep = not self._closed and self._idle_count < _MAX_IDLE_READERS
            if keep:
                self._idle_count += 1
        if keep:
            self._idle.put(conn)
        else:
            conn.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"storage {self.path!r} is closed")

    def close(self) -> None:
        """Close every connection and release the directory. Idempotent."""
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            with self._idle_lock:
                self._idle_count = 0
            while True:
                try:
                    self._idle.get_nowait().close()
                except queue.Empty:
                    break
            self._writer.close()
            self._lock_file.close()
            _LOGGER.debug("[storage] closed %s", self.path)

    @property
    def closed(self) -> bool:
        return self._closed
