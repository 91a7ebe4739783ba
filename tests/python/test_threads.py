"""Threads: exactly-once delivery, per-producer FIFO order, blocking gets,
statistics toggled under load, exact statistics after join (and the GIL)."""

import gc
import queue
import sys
import threading
import time

import pytest

import concurrent_collections
from concurrent_collections import LockFreeQueue, LockFreeStack, config

from conftest import FREE_THREADED, gil_enabled, settle

PRODUCERS = CONSUMERS = 8
PER_PRODUCER = 20_000


def run_threads(targets):
    """Start every target at once (barrier) and join them; re-raise failures."""
    barrier = threading.Barrier(len(targets))
    errors = []

    def wrap(fn):
        def run():
            try:
                barrier.wait()
                fn()
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        return run

    threads = [threading.Thread(target=wrap(t)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
        assert not t.is_alive(), "thread hung"
    if errors:
        raise errors[0]


@pytest.mark.parametrize("blocking", [True, False], ids=["get", "get_nowait"])
def test_queue_mpmc_exactly_once_and_per_producer_order(blocking):
    q = LockFreeQueue()
    received = [[] for _ in range(CONSUMERS)]
    done_producers = []

    def producer(p):
        def run():
            for i in range(PER_PRODUCER):
                q.put((p, i))
            done_producers.append(p)
            if len(done_producers) == PRODUCERS:
                for _ in range(CONSUMERS):
                    q.put(None)  # one stop marker per consumer, after all items

        return run

    def consumer(c):
        out = received[c]

        def run():
            while True:
                if blocking:
                    item = q.get()
                else:
                    try:
                        item = q.get_nowait()
                    except queue.Empty:
                        continue
                if item is None:
                    return
                out.append(item)

        return run

    run_threads([producer(p) for p in range(PRODUCERS)] + [consumer(c) for c in range(CONSUMERS)])
    seen = set()
    for out in received:
        last = [-1] * PRODUCERS
        for p, i in out:
            assert i > last[p], "per-producer order broken"
            last[p] = i
            seen.add((p, i))
    assert sum(len(o) for o in received) == PRODUCERS * PER_PRODUCER  # no duplicates
    assert len(seen) == PRODUCERS * PER_PRODUCER  # nothing lost
    assert q.empty() and q.qsize() == 0


def test_stack_exactly_once():
    s = LockFreeStack()
    received = [[] for _ in range(CONSUMERS)]
    producers_left = [PRODUCERS]
    lock = threading.Lock()

    def producer(p):
        def run():
            for i in range(PER_PRODUCER):
                s.push((p, i))
            with lock:
                producers_left[0] -= 1

        return run

    def consumer(c):
        out = received[c]

        def run():
            while True:
                item = s.try_pop()
                if item is not None:
                    out.append(item)
                elif producers_left[0] == 0 and not s:
                    return

        return run

    run_threads([producer(p) for p in range(PRODUCERS)] + [consumer(c) for c in range(CONSUMERS)])
    items = [x for out in received for x in out] + [s.pop() for _ in range(len(s))]
    assert len(items) == PRODUCERS * PER_PRODUCER
    assert set(items) == {(p, i) for p in range(PRODUCERS) for i in range(PER_PRODUCER)}
    # LIFO per pusher seen by one popper: not required; exactly-once is.


def test_ping_pong_no_lost_wakeups():
    # Two threads bounce a token through two queues, always blocking in get().
    # A lost wakeup would stall a non-main thread for ~1 s (its wait slice).
    a, b = LockFreeQueue(), LockFreeQueue()
    rounds = 2000

    def ping():
        for i in range(rounds):
            a.put(i)
            assert b.get(timeout=30) == i

    def pong():
        for _ in range(rounds):
            b.put(a.get(timeout=30))

    t0 = time.monotonic()
    run_threads([ping, pong])
    assert time.monotonic() - t0 < 10


def test_many_blocked_getters_all_woken():
    q = LockFreeQueue()
    n = 16
    got = []
    lock = threading.Lock()

    def getter():
        v = q.get(timeout=30)
        with lock:
            got.append(v)

    threads = [threading.Thread(target=getter) for _ in range(n)]
    for t in threads:
        t.start()
    time.sleep(0.1)  # let them block
    t0 = time.monotonic()
    for i in range(n):
        q.put(i)
    for t in threads:
        t.join(30)
    assert sorted(got) == list(range(n))
    assert time.monotonic() - t0 < 5


def test_blocked_get_does_not_spin():
    q = LockFreeQueue()
    outcome = []

    def wait():
        try:
            q.get(timeout=0.5)
        except queue.Empty:
            outcome.append("empty")

    t = threading.Thread(target=wait)
    cpu0 = time.process_time()
    t.start()
    t.join()
    cpu = time.process_time() - cpu0
    assert outcome == ["empty"]
    assert cpu < 0.25, f"waiting used {cpu:.3f} s of CPU"


def test_stats_toggled_under_load_then_exact(stats_off_after):
    """Phase 1: workers push/pop while the main thread toggles statistics and
    takes snapshots: no crash, snapshots consistent, every item accounted for.
    Phase 2: statistics on from the start (after a barrier and a reset): after
    the join and a barrier, the counts are exact: alloc_count = pushes,
    free_count = pops (each pop retires one node: a stack node or the queue's
    old dummy), current_blocks = items still stored."""
    workers, per = 4, 5000
    settle()
    start = config.alloc_stats()  # live counts cover every block, whenever allocated
    s, q = LockFreeStack(), LockFreeQueue()
    stop = threading.Event()

    def worker(w):
        def run():
            for i in range(per):
                s.push((w, i))
                q.put((w, i))
                if i % 3:
                    s.pop()
                    q.get_nowait()

        return run

    def toggler():
        k = 0
        while not stop.is_set():
            config.enable_alloc_statistics = bool(k & 1)
            snap = config.alloc_stats()
            # live blocks are at least one byte each (a racing snapshot
            # clamps its copy at 0, never below)
            assert snap.current_allocated >= snap.current_blocks >= 0
            if k % 50 == 0:
                config.reset_alloc_stats()
            k += 1

    t = threading.Thread(target=toggler)
    t.start()
    try:
        run_threads([worker(w) for w in range(workers)])
    finally:
        stop.set()
        t.join()
    kept = sum(1 for i in range(per) if i % 3 == 0) * workers
    assert len(s) == kept and q.qsize() == kept

    # Phase 2: exact.
    gc.collect()
    gc.disable()  # no unrelated container may die during the phase
    try:
        config.smr_barrier()  # nothing retired before the reset is freed later
        config.enable_alloc_statistics = True
        config.reset_alloc_stats()
        base = config.alloc_stats()  # phase 1's items and the containers are live
        run_threads([worker(w) for w in range(workers)])
        config.smr_barrier()
        st = config.alloc_stats()
    finally:
        gc.enable()
    pushes = 2 * workers * per
    pops = 2 * workers * sum(1 for i in range(per) if i % 3)
    assert st.alloc_count == pushes
    assert st.free_count == pops
    live_blocks = st.current_blocks - base.current_blocks
    live_bytes = st.current_allocated - base.current_allocated
    assert live_blocks == pushes - pops == (len(s) - kept) + (q.qsize() - kept)
    assert live_bytes == st.alloc_bytes - st.free_bytes
    if config.allocator != "system":  # malloc_usable_size varies per block
        assert st.alloc_bytes % st.alloc_count == 0  # all nodes have one size
        assert live_bytes == live_blocks * (st.alloc_bytes // st.alloc_count)

    # Dropping the containers frees every remaining node.
    del s, q
    settle()
    st = config.alloc_stats()
    assert st.current_blocks == start.current_blocks
    assert st.current_allocated == start.current_allocated


def test_smr_barrier_while_threads_work():
    s = LockFreeStack()
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            for i in range(100):
                s.push(i)
            for i in range(100):
                s.pop()

    threads = [threading.Thread(target=churn) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for _ in range(20):
            before = config.smr_stats()
            config.smr_barrier()
            assert config.smr_stats().freed >= before.retired
    finally:
        stop.set()
        for t in threads:
            t.join()


def test_ctrl_c_interrupts_blocking_get():
    # A real SIGINT to the main thread, as Ctrl-C sends. (_thread.interrupt_main
    # only schedules the handler and interrupts no system call: it leaves
    # SimpleQueue.get blocked too.)
    import signal

    q = LockFreeQueue()
    main = threading.main_thread().ident
    timer = threading.Timer(0.2, signal.pthread_kill, (main, signal.SIGINT))
    timer.start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        q.get()
    assert time.monotonic() - t0 < 2
    timer.join()
    q.put(1)  # the queue still works, and no waiter is left registered
    assert q.get(timeout=1) == 1


def test_signal_handler_exception_interrupts_get():
    import os
    import signal

    class Stop(Exception):
        pass

    def handler(signum, frame):
        raise Stop

    old = signal.signal(signal.SIGUSR1, handler)
    try:
        q = LockFreeQueue()
        timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGUSR1))
        timer.start()
        with pytest.raises(Stop):
            q.get(timeout=20)
        timer.join()
    finally:
        signal.signal(signal.SIGUSR1, old)


# ---- GIL ----------------------------------------------------------------------


def test_gil_stays_disabled_on_free_threaded_build():
    if not FREE_THREADED:
        pytest.skip(f"not a free-threaded build (Python {sys.version.split()[0]} has a GIL)")
    assert "concurrent_collections._core" in sys.modules
    assert not gil_enabled(), "importing concurrent_collections re-enabled the GIL"
    s, q = LockFreeStack(), LockFreeQueue()
    run_threads([lambda: [s.push(i) or q.put(i) for i in range(1000)] for _ in range(4)])
    assert len(s) == 4000 and q.qsize() == 4000
    config.enable_alloc_statistics = config.enable_alloc_statistics
    config.smr_barrier()
    assert not gil_enabled()


def test_gil_fresh_interpreter():
    if not FREE_THREADED:
        pytest.skip(f"not a free-threaded build (Python {sys.version.split()[0]} has a GIL)")
    from conftest import run_child

    code = (
        "import sys, warnings\n"
        "warnings.simplefilter('error')\n"
        "import concurrent_collections as cc\n"
        "q = cc.LockFreeQueue(); q.put(1); q.get()\n"
        "print(sys._is_gil_enabled())\n"
    )
    r = run_child(code, {"PYTHON_GIL": None})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False", r.stdout + r.stderr
    assert "GIL" not in r.stderr, r.stderr
