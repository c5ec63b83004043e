"""The worker's two thread hand-off helpers: the bounded batch queue
(back-pressure, close wakes both sides) and the parallelism limit (a stop
event frees a waiting reader). Threads synchronise on events, never on
sleeps; no timing is asserted."""

import threading

import pytest

from beam_tunnel.worker._batch_queue import CLOSED, EMPTY, _BatchQueue
from beam_tunnel.worker._limit import _ParallelismLimit


def _run(target):
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_queue_is_fifo_and_times_out_empty():
    queue = _BatchQueue(3)
    for item in "abc":
        assert queue.put(item)
    assert [queue.get(0), queue.get(0), queue.get(0)] == ["a", "b", "c"]
    assert queue.get(0) is EMPTY


def test_put_waits_while_full_until_a_get_makes_room():
    queue = _BatchQueue(1)
    queue.put("first")
    done = threading.Event()

    def producer():
        queue.put("second")
        done.set()

    thread = _run(producer)
    # The producer is blocked: the queue still holds exactly one item.
    assert not done.wait(0.05)
    assert len(queue) == 1
    assert queue.get() == "first"
    thread.join(5)
    assert done.is_set() and queue.get(0) == "second"


def test_close_wakes_a_blocked_put_and_a_blocked_get():
    full, empty = _BatchQueue(1), _BatchQueue(1)
    full.put("x")
    results = {}
    threads = [
        _run(lambda: results.__setitem__("put", full.put("y"))),
        _run(lambda: results.__setitem__("get", empty.get())),
    ]
    full.close()
    empty.close()
    for thread in threads:
        thread.join(5)
    assert results == {"put": False, "get": CLOSED}
    # Closed for good, and queued items are discarded.
    assert full.get(0) is CLOSED and not full.put("z")


def test_queue_capacity_is_validated():
    with pytest.raises(ValueError, match="got 0"):
        _BatchQueue(0)


def test_limit_admits_at_most_n_and_a_release_admits_the_next():
    limit = _ParallelismLimit(1)
    stop = threading.Event()
    assert limit.acquire(stop)
    entered = threading.Event()
    thread = _run(lambda: limit.acquire(stop) and entered.set())
    assert not entered.wait(0.05)
    limit.release()
    thread.join(5)
    assert entered.is_set()


def test_a_stopped_reader_leaves_the_limit_without_a_slot():
    limit = _ParallelismLimit(1)
    assert limit.acquire(threading.Event())
    stop = threading.Event()
    result = []
    thread = _run(lambda: result.append(limit.acquire(stop)))
    stop.set()
    limit.wake()
    thread.join(5)
    assert result == [False]


def test_no_limit_never_blocks_but_still_honours_stop():
    limit = _ParallelismLimit(None)
    stop = threading.Event()
    assert all(limit.acquire(stop) for _ in range(100))
    stop.set()
    assert not limit.acquire(stop)
