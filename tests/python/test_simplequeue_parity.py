"""LockFreeQueue is a drop-in for queue.SimpleQueue: the SAME test bodies run
against both classes (parametrized), and a cross-check compares the outcome
(result or exception type and message) of every edge case one by one."""

import gc
import itertools
import math
import queue
import threading
import time
import weakref
from fractions import Fraction

import pytest

from concurrent_collections import LockFreeQueue

QUEUES = [queue.SimpleQueue, LockFreeQueue]


@pytest.fixture(params=QUEUES, ids=lambda c: c.__name__)
def Q(request):
    return request.param


class BadBool:
    def __bool__(self):
        raise ZeroDivisionError("bad bool")


class Index:
    def __index__(self):
        return 0


def test_fifo_qsize_empty(Q):
    q = Q()
    assert q.empty() is True and q.qsize() == 0
    for i in range(100):
        q.put(i)
    assert q.empty() is False and q.qsize() == 100
    assert [q.get() for _ in range(50)] == list(range(50))
    assert [q.get_nowait() for _ in range(50)] == list(range(50, 100))
    assert q.empty() and q.qsize() == 0


def test_empty_gets_raise_queue_empty(Q):
    q = Q()
    for call in (q.get_nowait, lambda: q.get(False), lambda: q.get(block=False),
                 lambda: q.get(timeout=0), lambda: q.get(True, 0.0), lambda: q.get(0)):
        with pytest.raises(queue.Empty):
            call()


def test_negative_timeout(Q):
    q = Q()
    with pytest.raises(ValueError, match="^'timeout' must be a non-negative number$"):
        q.get(timeout=-1)
    with pytest.raises(ValueError, match="^'timeout' must be a non-negative number$"):
        q.get(True, -0.5)
    q.put(1)  # checked even when an item is there
    with pytest.raises(ValueError):
        q.get(timeout=-1)
    assert q.qsize() == 1


def test_nonblocking_get_ignores_timeout(Q):
    q = Q()
    for bad in (-1, "x", math.nan, 1e300, None):
        with pytest.raises(queue.Empty):
            q.get(False, bad)
        with pytest.raises(queue.Empty):
            q.get(block=False, timeout=bad)
    q.put("a")
    assert q.get(False, "x") == "a"


def test_timeout_types(Q):
    q = Q()
    q.put("item")
    with pytest.raises(TypeError):
        q.get(True, "x")
    with pytest.raises(TypeError):
        q.get(True, Fraction(1, 10))
    with pytest.raises(ValueError):
        q.get(True, math.nan)
    with pytest.raises(OverflowError):
        q.get(True, 1e300)
    with pytest.raises(OverflowError):
        q.get(True, math.inf)
    with pytest.raises(OverflowError):
        q.get(True, 10**30)
    with pytest.raises(OverflowError):
        q.get(True, 10**10)
    assert q.qsize() == 1
    assert q.get(True, 9.2e9) == "item"  # huge but valid: returns at once
    q.put("item")
    assert q.get(True, Index()) == "item"
    q.put("item")
    assert q.get(True, True) == "item"
    q.put("item")
    assert q.get(timeout=1e-12) == "item"
    with pytest.raises(queue.Empty):
        q.get(timeout=-1e-12)  # rounds up to 0


def test_block_is_truth_tested(Q):
    q = Q()
    with pytest.raises(queue.Empty):
        q.get([], 10)  # [] is false: non-blocking
    with pytest.raises(queue.Empty):
        q.get("yes", 0)
    with pytest.raises(ZeroDivisionError):
        q.get(BadBool())
    with pytest.raises(ZeroDivisionError):
        q.put(1, BadBool())
    assert q.qsize() == 0


def test_put_ignores_block_and_timeout(Q):
    q = Q()
    q.put(1, False, -1)
    q.put(2, block=False, timeout="x")
    q.put(3, True, math.nan)
    q.put(item=4)
    q.put(5, [], None)
    q.put_nowait(6)
    q.put_nowait(item=7)
    assert [q.get() for _ in range(7)] == [1, 2, 3, 4, 5, 6, 7]


def test_argument_errors(Q):
    q = Q()
    bad_calls = [
        lambda: q.put(),
        lambda: q.put(1, 2, 3, 4),
        lambda: q.put(1, item=2),
        lambda: q.put(1, foo=2),
        lambda: q.put(block=True),
        lambda: q.put_nowait(),
        lambda: q.put_nowait(1, 2),
        lambda: q.put_nowait(1, block=True),
        lambda: q.get(1, 2, 3),
        lambda: q.get(True, block=True),
        lambda: q.get(foo=1),
        lambda: q.get_nowait(1),
        lambda: q.empty(1),
        lambda: q.qsize(1),
        lambda: Q(1),
        lambda: Q(maxsize=1),
    ]
    for call in bad_calls:
        with pytest.raises(TypeError):
            call()
    assert q.qsize() == 0


def test_is_always_true_and_has_no_len(Q):
    q = Q()
    assert bool(q) is True
    with pytest.raises(TypeError):
        len(q)


def test_subclass_generic_weakref(Q):
    class Sub(Q):
        def __init__(self, first):
            super().__init__()
            self.put(first)

    s = Sub("first")
    s.extra = 1  # subclasses get a __dict__
    assert s.get() == "first"
    r = weakref.ref(s)
    del s
    gc.collect()
    assert r() is None
    alias = Q[int]
    assert alias.__origin__ is Q


def test_blocking_get_wakes_on_put(Q):
    q = Q()
    got = []

    def consumer():
        got.append(q.get())
        got.append(q.get(timeout=10))

    t = threading.Thread(target=consumer)
    t.start()
    time.sleep(0.05)
    q.put("a")
    time.sleep(0.05)
    q.put("b")
    t.join(10)
    assert not t.is_alive()
    assert got == ["a", "b"]


def test_get_timeout_expires(Q):
    q = Q()
    t0 = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(True, 0.1)
    assert 0.09 <= time.monotonic() - t0 < 2.0


def test_reentrancy(Q):
    # bpo-14976 (CPython's test_queue): put() may be called reentrantly from a
    # __del__ that the GC runs in the middle of a put.
    q = Q()
    gen = itertools.count()
    N = 10000
    results = []

    class Circular:
        def __init__(self):
            self.circular = self

        def __del__(self):
            q.put(next(gen))

    while True:
        o = Circular()
        q.put(next(gen))
        del o
        results.append(q.get())
        if results[-1] >= N:
            break
    assert results == list(range(N + 1))


# ---- outcome cross-check ----------------------------------------------------

EDGE_CASES = [
    ("get_empty_nonblock", lambda q: q.get(False)),
    ("get_neg", lambda q: q.get(timeout=-1)),
    ("get_neg_float", lambda q: q.get(True, -0.25)),
    ("get_nonblock_bad_timeout", lambda q: q.get(False, "x")),
    ("get_str_timeout", lambda q: q.get(True, "x")),
    ("get_nan", lambda q: q.get(True, math.nan)),
    ("get_huge_float", lambda q: q.get(True, 1e300)),
    ("get_huge_int", lambda q: q.get(True, 10**30)),
    ("get_ns_overflow", lambda q: q.get(True, 10**10)),
    ("get_fraction", lambda q: q.get(True, Fraction(1, 3))),
    ("get_zero", lambda q: q.get(True, 0)),
    ("get_tiny_negative", lambda q: q.get(True, -1e-12)),
    ("get_badbool", lambda q: q.get(BadBool())),
    ("put_badbool", lambda q: q.put(1, BadBool())),
    ("put_missing", lambda q: q.put()),
    ("put_too_many", lambda q: q.put(1, 2, 3, 4)),
    ("put_dup", lambda q: q.put(1, item=2)),
    ("put_unknown_kw", lambda q: q.put(1, foo=2)),
    ("put_nowait_missing", lambda q: q.put_nowait()),
    ("put_nowait_too_many", lambda q: q.put_nowait(1, 2)),
    ("get_too_many", lambda q: q.get(1, 2, 3)),
    ("get_unknown_kw", lambda q: q.get(foo=1)),
    ("get_nowait_args", lambda q: q.get_nowait(1)),
]


def _outcome(fn, q):
    try:
        return ("ok", fn(q))
    except Exception as e:  # noqa: BLE001 - comparing outcomes
        msg = str(e).replace("SimpleQueue", "<Q>").replace("LockFreeQueue", "<Q>")
        # LockFreeQueue raises concurrent_collections.Empty, a subclass of
        # queue.Empty (so one `except` catches the stack's and the queue's).
        kind = queue.Empty if isinstance(e, queue.Empty) else type(e)
        return (kind, msg)


@pytest.mark.parametrize("name,fn", EDGE_CASES, ids=[n for n, _ in EDGE_CASES])
@pytest.mark.parametrize("prefill", [False, True], ids=["empty", "one-item"])
def test_same_outcome_as_simplequeue(name, fn, prefill):
    outcomes = []
    for cls in QUEUES:
        q = cls()
        if prefill:
            q.put("item")
        outcomes.append((_outcome(fn, q), q.qsize()))
    assert outcomes[1] == outcomes[0], name
