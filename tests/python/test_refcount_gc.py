"""Reference counts and garbage collection of LockFreeStack / LockFreeQueue."""

import gc
import sys
import weakref

import pytest

from concurrent_collections import LockFreeQueue, LockFreeStack

N = 100_000

KINDS = [
    pytest.param(LockFreeStack, "push", "pop", id="stack"),
    pytest.param(LockFreeQueue, "put", "get", id="queue"),
]


@pytest.mark.parametrize(("cls", "add", "take"), KINDS)
def test_refcount_back_after_100k_push_pop(cls, add, take):
    obj = object()
    base = sys.getrefcount(obj)
    c = cls()
    put, get = getattr(c, add), getattr(c, take)
    for _ in range(N):
        put(obj)
        assert get() is obj
    assert sys.getrefcount(obj) == base
    for _ in range(N):
        put(obj)
    assert sys.getrefcount(obj) == base + N
    for _ in range(N):
        get()
    assert sys.getrefcount(obj) == base


@pytest.mark.parametrize(("cls", "add", "take"), KINDS)
def test_refcount_back_when_dropped_full(cls, add, take):
    obj = object()
    base = sys.getrefcount(obj)
    c = cls()
    for _ in range(N):
        getattr(c, add)(obj)
    assert sys.getrefcount(obj) == base + N
    del c
    assert sys.getrefcount(obj) == base


@pytest.mark.parametrize(("cls", "add", "take"), KINDS)
def test_try_and_default_refcounts(cls, add, take):
    c = cls()
    dflt = object()
    base = sys.getrefcount(dflt)
    tryname = "try_pop" if cls is LockFreeStack else "try_get"
    for _ in range(1000):
        assert getattr(c, tryname)(dflt) is dflt
    assert sys.getrefcount(dflt) == base


def test_items_freed_when_container_dies():
    class Item:
        pass

    for cls, add in [(LockFreeStack, "push"), (LockFreeQueue, "put")]:
        c = cls()
        items = [Item() for _ in range(100)]
        refs = [weakref.ref(i) for i in items]
        for i in items:
            getattr(c, add)(i)
        del items, i
        assert all(r() is not None for r in refs)
        del c
        assert all(r() is None for r in refs)


@pytest.mark.parametrize(("cls", "add", "take"), KINDS)
def test_self_cycle_is_collected(cls, add, take):
    c = cls()
    getattr(c, add)(c)
    r = weakref.ref(c)
    del c
    gc.collect()
    assert r() is None


@pytest.mark.parametrize(("cls", "add", "take"), KINDS)
def test_cycle_through_items_is_collected(cls, add, take):
    class Holder:
        pass

    c = cls()
    h = Holder()
    h.container = c
    for _ in range(10):
        getattr(c, add)(h)
    getattr(c, add)([c, [h]])
    rc, rh = weakref.ref(c), weakref.ref(h)
    del c, h
    gc.collect()
    assert rc() is None and rh() is None


def test_cycle_between_two_containers():
    s, q = LockFreeStack(), LockFreeQueue()
    s.push(q)
    q.put(s)
    rs, rq = weakref.ref(s), weakref.ref(q)
    del s, q
    gc.collect()
    assert rs() is None and rq() is None


@pytest.mark.parametrize(("cls", "add", "take"), KINDS)
def test_traverse_reports_items(cls, add, take):
    c = cls()
    items = [object(), [], "x"]
    for i in items:
        getattr(c, add)(i)
    assert gc.is_tracked(c)
    referents = gc.get_referents(c)
    for i in items:
        assert any(x is i for x in referents)
    assert type(c) in referents  # heap type instances visit their type


def test_reachable_container_keeps_items_across_collections():
    s, q = LockFreeStack(), LockFreeQueue()
    for i in range(1000):
        s.push([i])
        q.put([i])
    gc.collect()
    gc.collect()
    assert [s.pop()[0] for _ in range(1000)] == list(range(999, -1, -1))
    assert [q.get()[0] for _ in range(1000)] == list(range(1000))


def test_del_that_pushes_during_clear():
    # tp_clear / dealloc decref items; an item's __del__ may use the container.
    class Pusher:
        def __init__(self, c):
            self.c = c

        def __del__(self):
            self.c.push(1)

    s = LockFreeStack()
    p = Pusher(s)
    s.push(p)
    r = weakref.ref(s)
    del s, p
    gc.collect()
    assert r() is None


def test_deeply_nested_containers_dealloc():
    # The trashcan keeps deallocation of long chains from overflowing the C stack.
    head = LockFreeStack()
    cur = head
    for _ in range(200_000):
        nxt = LockFreeStack()
        cur.push(nxt)
        cur = nxt
    del cur
    del head
