"""The emulator's SQLite memory is bounded: a small page cache per
connection and few idle connections kept, whatever the load was
(benchmarks/emulator_memory_bench.py measures the resident memory)."""

import threading

from beam_tunnel.emulator import EmulatorConfig
from beam_tunnel.emulator.model import Emulator
from beam_tunnel.emulator.storage import Storage

_READERS = 20


def _cache_kib(conn):
    pages_or_kib = conn.execute("PRAGMA cache_size").fetchone()[0]
    assert pages_or_kib < 0, "cache_size must be set in KiB (negative)"
    return -pages_or_kib


def test_connections_kept_and_their_caches_stay_small_after_a_burst(tmp_path):
    storage = Storage(str(tmp_path))
    try:
        storage.ensure_schema("CREATE TABLE IF NOT EXISTS t (x)")
        barrier = threading.Barrier(_READERS)
        caches = []

        def read():
            with storage.read() as conn:
                barrier.wait(30)  # all readers open at once: the pool must grow
                caches.append(_cache_kib(conn))
                conn.execute("SELECT COUNT(*) FROM t").fetchone()

        threads = [threading.Thread(target=read) for _ in range(_READERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(caches) == _READERS
        assert max(caches) <= 8 * 1024
        assert storage.connections_kept <= 5  # the writer and at most 4 idle readers
        with storage.transaction() as conn:
            assert _cache_kib(conn) <= 8 * 1024
    finally:
        storage.close()
    assert storage.connections_kept == 0


def test_an_emulator_keeps_at_most_ten_connections_of_small_caches(tmp_path):
    emulator = Emulator(EmulatorConfig(data_dir=str(tmp_path)))
    try:
        kept = [emulator.storage, emulator.tunnel_storage]
        assert sum(s.connections_kept for s in kept) <= 10
        with emulator.tunnel_storage.read() as conn:
            assert _cache_kib(conn) <= 2 * 1024
    finally:
        emulator.close()


def test_bad_storage_settings_are_refused_with_their_value(tmp_path):
    import pytest

    for kwargs, text in (({"cache_kib": 0}, "cache_kib must be a positive int, got 0"),
                         ({"max_idle_readers": -1}, "max_idle_readers must be an int >= 0, got -1"),
                         ({"busy_timeout_ms": 0}, "busy_timeout_ms must be a positive int, got 0")):
        with pytest.raises(ValueError, match=text):
            Storage(str(tmp_path), **kwargs)
