"""Hostile schedules from Python (issue 6): thread churn.

Hundreds of short-lived Python threads (at most WINDOW alive at once, each
started as soon as a slot frees) put/get on a shared LockFreeQueue and
push/pop on a shared LockFreeStack, then exit -- each one registers an SMR
record, retires nodes and leaves its limbo bags to the orphan list. Two
long-lived threads keep both containers busy the whole time. Afterwards:
every item taken exactly once (per-item ids), config.smr_barrier() leaves
smr_stats().pending == 0 and orphaned == 0, records were reused (threads),
and alloc_stats() is back to the baseline (blocks and bytes).

The main test needs free-threaded CPython with the GIL disabled (3.13t): only
there do the threads run the lock-free paths in parallel. Elsewhere it is
skipped with the reason printed; a smaller variant still runs under the GIL
(thread churn and record reuse do not need parallelism).
"""

import gc
import sys
import threading

import pytest

from concurrent_collections import LockFreeQueue, LockFreeStack, config
from conftest import FREE_THREADED, gil_enabled, settle

PARALLEL = FREE_THREADED and not gil_enabled()


def churn(n_threads, per_thread, window):
    settle()
    config.enable_alloc_statistics = True
    settle()
    base = config.alloc_stats()
    q, s = LockFreeQueue(), LockFreeStack()
    taken = []  # list.append: atomic under the GIL, internally locked on 3.13t
    long_ids = []
    errors = []
    stop = threading.Event()
    counter = iter(range(10**9))
    id_lock = threading.Lock()

    def new_ids(k):
        with id_lock:
            return [next(counter) for _ in range(k)]

    def short():
        try:
            for j, v in enumerate(new_ids(per_thread)):
                if j % 2:
                    q.put(v)
                else:
                    s.push(v)
                if j % 3 == 0:
                    x = q.try_get()
                    if x is not None:
                        taken.append(x)
                    x = s.try_pop()
                    if x is not None:
                        taken.append(x)
        except BaseException as e:  # reported below
            errors.append(e)

    def long_lived():
        # Each id goes both into the queue and onto the stack: taken twice.
        try:
            while not stop.is_set():
                ids = new_ids(64)
                long_ids.extend(ids)
                for v in ids:
                    q.put(v)
                    s.push(v)
                    x = q.try_get()
                    if x is not None:
                        taken.append(x)
                    y = s.try_pop()
                    if y is not None:
                        taken.append(y)
        except BaseException as e:  # reported below
            errors.append(e)

    longs = [threading.Thread(target=long_lived) for _ in range(2)]
    for t in longs:
        t.start()
    max_records = 0
    live = []
    for i in range(n_threads):
        if len(live) == window:  # join the oldest, start the next in its slot
            live.pop(0).join()
        th = threading.Thread(target=short)
        th.start()
        live.append(th)
        if i % 50 == 0:
            max_records = max(max_records, config.smr_stats().threads)
    for th in live:
        th.join()
    stop.set()
    for t in longs:
        t.join()
    assert not errors, errors[0]
    while (x := q.try_get()) is not None:
        taken.append(x)
    while (x := s.try_pop()) is not None:
        taken.append(x)
    counts = {}
    for x in taken:
        counts[x] = counts.get(x, 0) + 1
    long_set = set(long_ids)
    assert len(long_set) == len(long_ids)
    for x, c in counts.items():
        assert c == (2 if x in long_set else 1), (x, c)
    expected = n_threads * per_thread + 2 * len(long_set)
    assert len(taken) == expected, (len(taken), expected)
    q = s = taken = counts = None  # drops the containers (`del` would too; ruff misreads it in closures)
    gc.collect()
    config.smr_barrier()
    st = config.smr_stats()
    after = config.alloc_stats()
    print(
        f"\n{n_threads} short threads (window {window}), {expected} items taken exactly once; "
        f"smr threads max sampled {max_records}, now {st.threads}; pending {st.pending}, "
        f"orphaned {st.orphaned}, peak_pending {st.peak_pending}; "
        f"alloc current_blocks {after.current_blocks} (baseline {base.current_blocks})"
    )
    assert st.pending == 0
    assert st.orphaned == 0
    assert st.stalled_threads == 0
    assert st.threads <= 1 + window + 2 + 2  # records of exited threads are reused
    assert after.current_blocks == base.current_blocks
    assert after.current_allocated == base.current_allocated


@pytest.mark.skipif(not PARALLEL, reason="needs free-threaded CPython (3.13t) with the GIL disabled; "
                    f"this is {sys.version.split()[0]}, free-threaded={FREE_THREADED}, GIL enabled={gil_enabled()}")
def test_thread_churn_free_threaded(stats_off_after):
    churn(n_threads=600, per_thread=200, window=32)


def test_thread_churn_small(stats_off_after):
    churn(n_threads=200, per_thread=100, window=16)
