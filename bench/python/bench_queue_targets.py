"""LockFreeQueue against queue.SimpleQueue on the workloads of its targets.

  1T      one thread: put(i); get()                      (target >= 1.0x)
  1P/1C, 1P/3C, 3P/1C  producers put, consumers get() blocking until a
          None per consumer arrives                      (target >= 1.0x)
  pairs-2, pairs-4  every thread put(i); get() on one queue (target >= 0.8x)

Each round runs both queues on every workload, in a shuffled order; the
figure per workload is the median over rounds of the per-round ratio
(LockFreeQueue items/s divided by SimpleQueue items/s), so machine noise that
hits a whole round cancels out.

    PYTHONPATH=build/python python bench/python/bench_queue_targets.py [--rounds 7] [--items 200000]
"""

import argparse
import queue
import random
import statistics
import sys
import threading
import time

from concurrent_collections import LockFreeQueue


def run_threads(fns):
    threads = [threading.Thread(target=f) for f in fns]
    barrier_start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - barrier_start


def one_thread(Q, n):
    q = Q()
    put, get = q.put, q.get
    t0 = time.perf_counter()
    for i in range(n):
        put(i)
        get()
    return time.perf_counter() - t0


def prod_cons(Q, n, producers, consumers):
    q = Q()
    per = n // producers

    def produce():
        put = q.put
        for i in range(per):
            put(i)

    def consume():
        get = q.get
        while get() is not None:
            pass

    cons = [threading.Thread(target=consume) for _ in range(consumers)]
    for t in cons:
        t.start()
    elapsed = run_threads([produce] * producers)
    for _ in range(consumers):
        q.put(None)
    t0 = time.perf_counter()
    for t in cons:
        t.join()
    return elapsed + (time.perf_counter() - t0)


def pairs(Q, n, threads):
    q = Q()
    per = n // threads

    def work():
        put, get = q.put, q.get
        for i in range(per):
            put(i)
            get()

    return run_threads([work] * threads)


WORKLOADS = {
    "1T": lambda Q, n: one_thread(Q, n),
    "1P/1C": lambda Q, n: prod_cons(Q, n, 1, 1),
    "1P/3C": lambda Q, n: prod_cons(Q, n, 1, 3),
    "3P/1C": lambda Q, n: prod_cons(Q, n, 3, 1),
    "pairs-2": lambda Q, n: pairs(Q, n, 2),
    "pairs-4": lambda Q, n: pairs(Q, n, 4),
}
TARGET = {"pairs-2": 0.8, "pairs-4": 0.8}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--items", type=int, default=200_000)
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    names = [w for w in WORKLOADS if not args.only or w in args.only.split(",")]
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    print(f"# Python {sys.version.split()[0]} (GIL {'on' if gil else 'off'}), "
          f"{args.rounds} rounds, {args.items} items per run")
    ratios = {w: [] for w in names}
    rates = {(w, c): [] for w in names for c in ("lfq", "sq")}
    for _ in range(args.rounds):
        cells = [(w, c) for w in names for c in ("lfq", "sq")]
        random.shuffle(cells)
        t = {}
        for w, c in cells:
            Q = LockFreeQueue if c == "lfq" else queue.SimpleQueue
            t[w, c] = WORKLOADS[w](Q, args.items)
            rates[w, c].append(args.items / t[w, c] / 1e6)
        for w in names:
            ratios[w].append(t[w, "sq"] / t[w, "lfq"])
    print(f"{'workload':10} {'LFQ M/s':>8} {'SQ M/s':>8} {'ratio':>6} {'target':>6}")
    for w in names:
        r = statistics.median(ratios[w])
        tgt = TARGET.get(w, 1.0)
        print(f"{w:10} {statistics.median(rates[w, 'lfq']):8.2f} "
              f"{statistics.median(rates[w, 'sq']):8.2f} {r:6.2f} {tgt:6.1f}"
              f"{'' if r >= tgt else '  (missed)'}")


if __name__ == "__main__":
    main()
