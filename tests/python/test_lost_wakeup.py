"""Lost-wakeup stress test of LockFreeQueue's blocking get.

Producers put small bursts (put or put_many) and then wait until every item
of the burst has been consumed; getters block in get() / get_many() with a
long timeout, mixed with short timeouts, get_nowait and tiny sleeps. There are
more threads than cores, so getters are preempted anywhere in the wait
protocol (spinning, registered, counted as sleepers, in the kernel).

Because each producer waits for its own burst, the test reaches many quiet
points where every getter sleeps and nobody puts: if a put's wakeup is lost
there, its item stays in the queue with every getter asleep, and the
producer's wait (STUCK_S) or a getter's long get (LONG_S, then Empty while
items remain) detects it. Ends with shutdown(), which wakes every getter
through its own unconditional wakeup. Probabilistic: a stress test, run for
DURATION_S.
"""

import os
import random
import threading
import time

import pytest

from concurrent_collections import Empty, LockFreeQueue, ShutDown

DURATION_S = float(os.environ.get("CC_LOST_WAKEUP_SECONDS", "2.5"))
STUCK_S = 5.0  # a burst not consumed within this: a lost wakeup
LONG_S = 10.0  # the getters' long timeout: Empty while items remain is a failure


# (producers, getters): a single getter is the sensitive case (no other getter
# is awake to take an item whose wakeup was lost); many of each oversubscribe
# the cores.
@pytest.mark.thread_unsafe(reason="starts its own threads and counts them against the cores")
@pytest.mark.parametrize(("PRODUCERS", "GETTERS"), [(1, 1), (3, 1), (2, 2), (4, 5)])
def test_no_lost_wakeup_under_bursts_and_timeouts(PRODUCERS, GETTERS):
    q = LockFreeQueue()
    done = [threading.Semaphore(0) for _ in range(PRODUCERS)]
    got = [[] for _ in range(GETTERS)]
    failures = []
    stop = threading.Event()
    produced = [0] * PRODUCERS

    def producer(p):
        rnd = random.Random(p)
        seq = 0
        end = time.monotonic() + DURATION_S
        while time.monotonic() < end and not failures:
            burst = rnd.choice((1, 1, 1, 2, 3, 8))
            items = [(p, seq + i) for i in range(burst)]
            seq += burst
            if burst > 1 and rnd.random() < 0.5:
                q.put_many(items)
            else:
                for it in items:
                    q.put(it)
                    if rnd.random() < 0.1:
                        time.sleep(0)
            for _ in range(burst):
                if not done[p].acquire(timeout=STUCK_S):
                    failures.append(
                        f"producer {p}: a burst not consumed in {STUCK_S} s, "
                        f"{q.qsize()} item(s) left in the queue (lost wakeup)"
                    )
                    return
            # a pause that lands the next put anywhere in a getter's wait path
            r = rnd.random()
            if r < 0.5:  # busy: 0-40 us, the spin and the way into the kernel
                until = time.perf_counter() + rnd.random() * 4e-5
                while time.perf_counter() < until:
                    pass
            elif r < 0.7:
                time.sleep(rnd.random() * 2e-4)
            elif r < 0.8:
                time.sleep(0)
        produced[p] = seq

    def getter(g):
        rnd = random.Random(1000 + g)
        mine = got[g]
        long_next = False  # after a short wait that failed, a long one (no polling)
        while True:
            r = rnd.random() * (0.75 if long_next else 1.0)
            long_next = False
            try:
                if r < 0.6:
                    items = [q.get(timeout=LONG_S)]
                elif r < 0.75:
                    items = q.get_many(rnd.choice((2, 5)), timeout=LONG_S)
                elif r < 0.9:
                    items = [q.get(timeout=rnd.random() * 1e-3)]
                else:
                    items = [q.get_nowait()]
            except ShutDown:
                return
            except Empty:
                if r < 0.75 and not stop.is_set():
                    n = q.qsize()
                    if n:
                        failures.append(
                            f"getter {g}: Empty after {LONG_S} s with {n} item(s) "
                            "in the queue (lost wakeup)"
                        )
                        return
                long_next = True
                continue
            for it in items:
                mine.append(it)
                done[it[0]].release()
            if rnd.random() < 0.05:
                time.sleep(rnd.random() * 1e-4)

    threads = [threading.Thread(target=getter, args=(g,)) for g in range(GETTERS)]
    producers = [threading.Thread(target=producer, args=(p,)) for p in range(PRODUCERS)]
    for t in threads + producers:
        t.start()
    for t in producers:
        t.join(DURATION_S + STUCK_S + 30)
        assert not t.is_alive(), "producer hung"
    stop.set()
    q.shutdown()  # wakes every getter (an unconditional wakeup)
    for t in threads:
        t.join(30)
        assert not t.is_alive(), "getter hung after shutdown"
    assert not failures, failures
    seen = sorted(it for mine in got for it in mine)
    expected = sorted((p, i) for p in range(PRODUCERS) for i in range(produced[p]))
    assert seen == expected  # every item consumed exactly once
    assert q.qsize() == 0
