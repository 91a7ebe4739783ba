"""Throughput of concurrent_collections on the running interpreter.

Queues: every thread does put(x) + get() pairs on ONE shared queue
(a thread gets only after its own put, so get() never has to wait):
  LockFreeQueue | queue.SimpleQueue (the C peer) | queue.Queue | deque + Lock
Stacks: push + pop pairs on one shared stack:
  LockFreeStack | list + Lock

For 1, 2 and 4 threads, the implementations run in interleaved rounds (each
round runs every cell once, in a shuffled order) and the median over rounds
is reported in M pairs/s (all threads together), with the ratio to
SimpleQueue (queues) or list+Lock (stacks). Each cell's pair count is
calibrated so that one run takes ~TARGET seconds; the whole run stays well
under a minute.

    PYTHONPATH=build/python python3 bench/python/bench_collections.py [--rounds N] [--target S]
"""

import argparse
import collections
import os
import platform
import queue
import random
import statistics
import sys
import sysconfig
import threading
import time

from concurrent_collections import LockFreeQueue, LockFreeStack, config

# ---- workloads: make(n) -> (setup object); work(obj, n) runs n pairs ----------


def q_work(q, n):
    put, get = q.put, q.get
    for i in range(n):
        put(i)
        get()


def deque_work(state, n):
    d, lock = state
    append, popleft = d.append, d.popleft
    for i in range(n):
        with lock:
            append(i)
        with lock:
            popleft()


def stack_work(s, n):
    push, pop = s.push, s.pop
    for i in range(n):
        push(i)
        pop()


def list_work(state, n):
    lst, lock = state
    append, pop = lst.append, lst.pop
    for i in range(n):
        with lock:
            append(i)
        with lock:
            pop()


QUEUES = [
    ("LockFreeQueue", LockFreeQueue, q_work),
    ("queue.SimpleQueue", queue.SimpleQueue, q_work),
    ("queue.Queue", queue.Queue, q_work),
    ("deque+Lock", lambda: (collections.deque(), threading.Lock()), deque_work),
]
STACKS = [
    ("LockFreeStack", LockFreeStack, stack_work),
    ("list+Lock", lambda: ([], threading.Lock()), list_work),
]


def run_cell(make, work, nthreads, n):
    """Pairs per second of nthreads threads doing n pairs each on one object."""
    obj = make()
    start = threading.Barrier(nthreads + 1)
    began, done = [], []

    def body():
        start.wait()
        began.append(time.perf_counter())
        work(obj, n)
        done.append(time.perf_counter())

    threads = [threading.Thread(target=body) for _ in range(nthreads)]
    for t in threads:
        t.start()
    start.wait()
    for t in threads:
        t.join()
    # The workers' own clocks, first start to last end: this thread may run
    # late after the barrier and miss part of the work.
    return nthreads * n / (max(done) - min(began))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--target", type=float, default=0.12, help="seconds per cell run")
    ap.add_argument("--threads", default="1,2,4")
    args = ap.parse_args()
    thread_counts = [int(x) for x in args.threads.split(",")]

    ft = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    print(f"# Python {platform.python_version()} "
          f"({'free-threaded build, GIL ' + ('ON' if gil else 'off') if ft else 'GIL build'}), "
          f"{os.cpu_count()} CPUs, allocator {config.allocator}, "
          f"statistics {'on' if config.enable_alloc_statistics else 'off'}")
    print(f"# median of {args.rounds} interleaved rounds, ~{args.target}s per cell run; "
          "M pairs/s = millions of put+get (push+pop) pairs per second, all threads together")

    cells = [(group, name, make, work, k)
             for group, impls in (("queue", QUEUES), ("stack", STACKS))
             for name, make, work in impls for k in thread_counts]
    # Calibrate n per cell (short runs, doubling until ~target/4).
    sizes = {}
    for _group, name, make, work, k in cells:
        n = 2000
        while True:
            t0 = time.perf_counter()
            run_cell(make, work, k, n)
            dt = time.perf_counter() - t0
            if dt > args.target / 4 or n > 50_000_000:
                break
            n *= 2
        sizes[(name, k)] = max(1000, int(n * args.target / dt))

    results = collections.defaultdict(list)
    t_start = time.perf_counter()
    for r in range(args.rounds):
        order = list(cells)
        random.Random(r).shuffle(order)
        for _group, name, make, work, k in order:
            results[(name, k)].append(run_cell(make, work, k, sizes[(name, k)]))
    elapsed = time.perf_counter() - t_start

    for group, impls, base in (("queue", QUEUES, "queue.SimpleQueue"),
                               ("stack", STACKS, "list+Lock")):
        print()
        print(f"| {group}: threads | " + " | ".join(name for name, _, _ in impls) + " |")
        print("|---:|" + "---:|" * len(impls))
        for k in thread_counts:
            med = {name: statistics.median(results[(name, k)]) for name, _, _ in impls}
            row = []
            for name, _, _ in impls:
                v = med[name] / 1e6
                cell = f"{v:.2f}"
                if name != base:
                    cell += f" ({med[name] / med[base]:.2f}x)"
                row.append(cell)
            print(f"| {k} | " + " | ".join(row) + " |")
        print(f"\n(M pairs/s; in parentheses: ratio to {base})")
    spread = max(
        (max(v) - min(v)) / statistics.median(v) for v in results.values()
    )
    print(f"\n# measured in {elapsed:.1f}s; largest (max-min)/median spread of a cell: {spread:.0%}")


if __name__ == "__main__":
    main()
