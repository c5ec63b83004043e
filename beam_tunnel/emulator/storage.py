"""Durable storage of one emulator: SQLite files in its data directory.

Two files, each a :class:`Storage` with its own write lock: the table data
(rows, partitions, stream log: :data:`DB_FILE_NAME`) and the tunnel control
state (tunnels, channels, checkpoints, leases: :data:`TUNNEL_DB_FILE_NAME`).
SQLite allows one writer per file, so with one file a slow table commit (a
big batch, an fsync, a WAL checkpoint, or a lock held by another process)
held up every heartbeat and checkpoint; apart, they do not wait for each
other.

WAL journal with ``synchronous=FULL``: a transaction is on disk when
:meth:`Storage.transaction` returns, so whatever the emulator acknowledged
survives ``kill -9`` (and power loss). Writers are serialised by one lock;
readers use pooled connections of their own and, thanks to WAL, neither
block each other nor wait for the writer. A writer that cannot get the lock
within the busy timeout gets a retriable ``OTSServerBusy`` (503).

Memory: every connection has its own page cache, bounded by ``cache_kib``,
and at most ``max_idle_readers`` idle readers are kept per file.

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

from . import errors

__all__ = ["Storage", "DB_FILE_NAME", "TUNNEL_DB_FILE_NAME"]

_LOGGER = logging.getLogger(__name__)

DB_FILE_NAME = "emulator.sqlite3"
TUNNEL_DB_FILE_NAME = "tunnels.sqlite3"
_LOCK_FILE_NAME = "emulator.lock"
# Idle reader connections kept for reuse; more are opened under load and
# closed when returned beyond this count.
_MAX_IDLE_READERS = 4
# Page cache per connection (SQLite's default is 2 MiB). Reads are index
# range scans over recent data, so a small cache per reader costs little.
_CACHE_KIB = 8 * 1024
# How long a writer waits for the write lock (ours, then SQLite's) before
# answering OTSServerBusy; a wait this long means something is wrong.
_BUSY_TIMEOUT_MS = 30_000


class Storage:
    """One SQLite database in ``data_dir`` (created if missing).

    Args:
      data_dir: directory for the database file. Only one emulator may use
        a directory at a time; a second one gets a RuntimeError.
      file_name: the database file in ``data_dir``.
      lock_dir: take the directory lock (False for a second file of the
        same emulator, whose first Storage holds it).
      cache_kib: page cache of each connection, in KiB.
      max_idle_readers: idle reader connections kept for reuse.
      busy_timeout_ms: longest wait for the write lock.

    Raises:
      RuntimeError: when another live emulator holds ``data_dir``.
      ValueError: for a non-positive cache size or negative reader count.
    """

    def __init__(
        self,
        data_dir: str,
        file_name: str = DB_FILE_NAME,
        *,
        lock_dir: bool = True,
        cache_kib: int = _CACHE_KIB,
        max_idle_readers: int = _MAX_IDLE_READERS,
        busy_timeout_ms: int = _BUSY_TIMEOUT_MS,
    ) -> None:
        if not isinstance(cache_kib, int) or cache_kib <= 0:
            raise ValueError(f"cache_kib must be a positive int, got {cache_kib!r}")
        if not isinstance(max_idle_readers, int) or max_idle_readers < 0:
            raise ValueError(f"max_idle_readers must be an int >= 0, got {max_idle_readers!r}")
        if not isinstance(busy_timeout_ms, int) or busy_timeout_ms <= 0:
            raise ValueError(f"busy_timeout_ms must be a positive int, got {busy_timeout_ms!r}")
        os.makedirs(data_dir, exist_ok=True)
        self.data_dir = data_dir
        self.path = os.path.join(data_dir, file_name)
        self._cache_kib = cache_kib
        self._max_idle_readers = max_idle_readers
        self._busy_timeout_ms = busy_timeout_ms
        self._lock_file = self._take_dir_lock(data_dir) if lock_dir else None
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
        conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA temp_store=MEMORY")
        conn.execute(f"PRAGMA cache_size=-{self._cache_kib}")  # negative: KiB, not pages
        return conn

    def ensure_schema(self, ddl: str) -> None:
        """Run idempotent DDL (``CREATE TABLE IF NOT EXISTS ...``) once."""
        with self._write_lock:
            self._check_open()
            self._writer.executescript(ddl)

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[sqlite3.Connection]:
        """The writer connection outside any transaction, for statements a
        transaction cannot hold (ATTACH); nothing else writes meanwhile."""
        with self._write_lock:
            self._check_open()
            yield self._writer

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Serialised write transaction; commits on success, rolls back on error.

        Yields the writer connection; use it (not :meth:`read`) for every read
        inside the transaction, to see its own uncommitted writes. A nested
        call on the same thread joins the outer transaction.
        """
        if not self._write_lock.acquire(timeout=self._busy_timeout_ms / 1000):
            raise self._busy("another write of this emulator")
        try:
            self._check_open()
            if self._depth:
                self._depth += 1
                try:
                    yield self._writer
                finally:
                    self._depth -= 1
                return
            try:
                self._writer.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) and "busy" not in str(err):
                    raise
                raise self._busy("a lock on the database file") from None
            self._depth = 1
            try:
                yield self._writer
            except BaseException:
                self._depth = 0
                self._writer.execute("ROLLBACK")
                raise
            self._depth = 0
            try:
                self._writer.execute("COMMIT")
            except BaseException:
                # Never leave the writer inside a transaction the next
                # BEGIN would trip over.
                if self._writer.in_transaction:
                    self._writer.execute("ROLLBACK")
                raise
        finally:
            self._write_lock.release()

    def _busy(self, holder: str):
        _LOGGER.warning("[storage] %s: no write lock within %d ms (held by %s)", self.path,
                        self._busy_timeout_ms, holder)
        return errors.service_error(
            "OTSServerBusy",
            f"the emulator's storage ({os.path.basename(self.path)}) stayed write-locked by {holder} "
            f"for {self._busy_timeout_ms} ms; retry",
        )

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
            keep = not self._closed and self._idle_count < self._max_idle_readers
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
            if self._lock_file is not None:
                self._lock_file.close()
            _LOGGER.debug("[storage] closed %s", self.path)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def connections_kept(self) -> int:
        """Connections held open between requests: the writer and the idle
        readers (each with a page cache of at most ``cache_kib``)."""
        with self._idle_lock:
            return 0 if self._closed else 1 + self._idle_count
