"""LockFreeQueue.shutdown() (as queue.Queue.shutdown, 3.13+), put_many and get_many."""

import gc
import itertools
import queue
import sys
import sysconfig
import threading
import time
import weakref

import pytest

import concurrent_collections
from concurrent_collections import Empty, LockFreeQueue, LockFreeStack, ShutDown

# ---- one exception hierarchy -------------------------------------------------------


def test_one_empty_for_both_containers():
    assert issubclass(Empty, queue.Empty) and issubclass(Empty, IndexError)
    for fail in (LockFreeQueue().get_nowait, LockFreeStack().pop,
                 lambda: LockFreeQueue().get(timeout=0.01)):
        with pytest.raises(Empty):
            fail()
    with pytest.raises(queue.Empty):
        LockFreeQueue().get(False)
    with pytest.raises(IndexError):
        LockFreeStack().pop()


def test_shutdown_is_the_standard_one_where_it_exists():
    if hasattr(queue, "ShutDown"):
        assert ShutDown is queue.ShutDown
    else:
        assert ShutDown.__module__ == "concurrent_collections"
    assert issubclass(ShutDown, Exception)
    assert concurrent_collections.ShutDown is ShutDown


# ---- shutdown ------------------------------------------------------------------------


def test_shutdown_drains_then_raises():
    q = LockFreeQueue()
    q.put_many([1, 2, 3])
    assert q.is_shutdown is False
    q.shutdown()
    assert q.is_shutdown is True
    with pytest.raises(ShutDown):
        q.put(4)
    with pytest.raises(ShutDown):
        q.put_many([4])
    assert q.get() == 1
    assert q.get_many(10) == [2, 3]
    for get in (q.get, q.get_nowait, lambda: q.get(timeout=5), lambda: q.get_many(2),
                q.try_get, lambda: q.get(False)):
        with pytest.raises(ShutDown):
            get()
    q.shutdown(immediate=True)  # again, harder: still fine


def test_shutdown_immediate_discards_and_releases_items():
    class Item:
        pass

    q = LockFreeQueue()
    items = [Item() for _ in range(100)]
    refs = [weakref.ref(i) for i in items]
    q.put_many(items)
    del items
    q.shutdown(immediate=True)
    assert all(r() is None for r in refs)
    assert q.qsize() == 0
    with pytest.raises(ShutDown):
        q.get()
    with pytest.raises(ShutDown):
        q.get_many(1, timeout=5)


@pytest.mark.parametrize("immediate", [False, True])
def test_shutdown_releases_blocked_getters(immediate):
    q = LockFreeQueue()
    outcomes = []
    lock = threading.Lock()

    def getter(kind):
        try:
            r = q.get() if kind == 0 else q.get_many(5) if kind == 1 else q.get(timeout=60)
        except ShutDown:
            r = "shutdown"
        with lock:
            outcomes.append(r)

    threads = [threading.Thread(target=getter, args=(i % 3,)) for i in range(6)]
    for t in threads:
        t.start()
    time.sleep(0.2)  # let them block (a late one still sees the flag)
    q.shutdown(immediate=immediate)
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert outcomes == ["shutdown"] * 6


# ---- put_many / get_many ----------------------------------------------------------------


def test_put_many_get_many_fifo():
    q = LockFreeQueue()
    q.put_many(range(1000))
    q.put_many(iter([1000, 1001]))
    q.put_many([])
    assert q.qsize() == 1002
    got = []
    while len(got) < 1002:
        chunk = q.get_many(300)
        assert 1 <= len(chunk) <= 300
        got.extend(chunk)
    assert got == list(range(1002))
    with pytest.raises(Empty):
        q.get_many(5, block=False)
    with pytest.raises(Empty):
        q.get_many(5, timeout=0.05)
    q.put(1)
    assert q.get_many(max_items=2 ** 80) == [1]  # clamped, not allocated


def test_get_many_bad_arguments():
    q = LockFreeQueue()
    q.put(1)
    for bad in (0, -1, -(2 ** 80)):
        with pytest.raises(ValueError, match="max_items"):
            q.get_many(bad)
    for bad in ("3", 2.0, None):
        with pytest.raises(TypeError):
            q.get_many(bad)
    with pytest.raises(TypeError):
        q.get_many()
    with pytest.raises(ValueError, match="timeout"):
        q.get_many(1, timeout=-1)
    with pytest.raises(TypeError):
        q.put_many(5)
    assert q.get_many(1) == [1]


def test_put_many_keeps_the_items_before_a_failure():
    def gen():
        yield from range(200)
        raise RuntimeError("boom")

    q = LockFreeQueue()
    obj = object()
    base = sys.getrefcount(obj)
    with pytest.raises(RuntimeError):
        q.put_many(itertools.chain([obj] * 10, gen()))
    assert q.qsize() == 210
    got = q.get_many(1000)
    assert got[:10] == [obj] * 10 and got[10:] == list(range(200))
    del got
    assert sys.getrefcount(obj) == base


def test_get_many_blocks_until_put_many():
    q = LockFreeQueue()
    got = []
    t = threading.Thread(target=lambda: got.append(q.get_many(100, timeout=30)))
    t.start()
    time.sleep(0.1)
    q.put_many(range(50))
    t.join(30)
    assert got and 1 <= len(got[0]) <= 50
    rest = q.get_many(100) if q.qsize() else []
    assert got[0] + rest == list(range(50))


def test_batch_refcounts():
    obj = object()
    base = sys.getrefcount(obj)
    q = LockFreeQueue()
    for _ in range(200):
        q.put_many([obj] * 100)
        assert sys.getrefcount(obj) == base + 100
        got = q.get_many(1000)
        assert len(got) == 100
        del got
        assert sys.getrefcount(obj) == base
    q.put_many([obj] * 5)
    del q
    assert sys.getrefcount(obj) == base


@pytest.mark.skipif(
    bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
    reason="_testcapi.set_nomemory corrupts 3.13t: a plain [None] * 3 under it "
    "makes later unrelated tests crash",
)
def test_get_many_keeps_items_when_the_list_cannot_be_allocated():
    _testcapi = pytest.importorskip("_testcapi")
    q = LockFreeQueue()
    q.put_many(["a", "b", "c"])
    failed = False
    _testcapi.set_nomemory(0)
    try:
        q.get_many(3)
    except MemoryError:
        failed = True
    finally:
        _testcapi.remove_mem_hooks()
    assert failed
    assert q.qsize() == 3 and q.get_many(3) == ["a", "b", "c"]


def test_del_that_puts_during_get_many():
    # Cyclic garbage whose __del__ puts into the queue; collections triggered
    # by get_many's own allocations run those finalizers mid-call.
    q = LockFreeQueue()
    counter = itertools.count()
    put = []

    class Circular:
        def __init__(self):
            self.me = self

        def __del__(self):
            n = next(counter)
            put.append(n)
            q.put(n)

    old = gc.get_threshold()
    gc.set_threshold(1)
    try:
        got = []
        for _ in range(2000):
            Circular()
            n = next(counter)
            put.append(n)
            q.put(n)
            got.extend(q.get_many(7))
    finally:
        gc.set_threshold(*old)
    gc.collect()
    while q.qsize():
        got.extend(q.get_many(100))
    assert sorted(got) == sorted(put) and len(got) == len(set(got))


def test_queue_dropped_while_a_getter_waits():
    q = LockFreeQueue()
    r = weakref.ref(q)
    errors = []

    def getter(get):
        try:
            get(timeout=0.3)
        except Empty:
            errors.append("empty")

    t = threading.Thread(target=getter, args=(q.get,))
    t.start()
    del q
    time.sleep(0.05)
    assert r() is not None  # the waiting call holds it
    t.join(30)
    gc.collect()
    assert errors == ["empty"] and r() is None


def test_queue_in_a_cycle_with_batched_items_is_collected():
    q = LockFreeQueue()
    q.put_many([q, [q], {"q": q}])
    r = weakref.ref(q)
    del q
    gc.collect()
    assert r() is None
