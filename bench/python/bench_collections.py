"""Throughput of concurrent_collections' queues and stack on the running interpreter.

Queues (the baseline is queue.SimpleQueue):
  LockFreeQueue | queue.SimpleQueue | queue.Queue | deque+Lock (+Condition for
  blocking consumers) | on free-threaded builds, ft_utils' ConcurrentQueue
  (push/pop; pop() blocks on its own threading.Condition) and cereggii's queue
  if the installed cereggii has one.
Workloads:
  pairs       K threads, each does put(x) + get() on ONE shared queue, K = 1, 2, 4, 8
  1P/1C, 1P/3C, 3P/1C
              producers put, consumers sit in a BLOCKING get(); when the last
              producer is done it puts one sentinel per consumer
  batches     (queues that have them) put_many(32 items) + get_many(32):
              LockFreeQueue.put_many/get_many, deque.extend/popleft under one
              lock acquisition; in pairs and in 1P/1C
Stacks: push + pop pairs on one shared stack: LockFreeStack | list+Lock (baseline).

Each cell's item count is calibrated so that one run takes ~TARGET seconds.
All cells then run in interleaved rounds (every round runs each cell once, in
a shuffled order). Tables show the median over rounds in M items/s (all threads
together; a put+get pair is one item) and, in parentheses, the median over
rounds of the ratio to the baseline measured in the same round.

    python bench/python/bench_collections.py [--rounds N] [--target S] [--csv FILE]
"""

from __future__ import annotations

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

import concurrent_collections
from concurrent_collections import LockFreeQueue, LockFreeStack, config

BATCH = 32
FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))

# ---- queue adapters ---------------------------------------------------------
# An adapter is a namespace with make() -> q, and bound-method factories:
#   put(q) -> f(x), get(q) -> f() (blocking), and optionally
#   put_many(q) -> f(list), get_many(q) -> f(m) -> list of 1..m items (blocking).


class Adapter:
    def __init__(self, name, make, put, get, put_many=None, get_many=None, note=""):
        self.name, self.make, self.put, self.get = name, make, put, get
        self.put_many, self.get_many, self.note = put_many, get_many, note


def _deque_make():
    return (collections.deque(), threading.Condition(threading.Lock()))


def _deque_put(state):
    d, cond = state
    append, notify = d.append, cond.notify

    def put(x):
        with cond:
            append(x)
            notify()
    return put


def _deque_get(state):
    d, cond = state
    popleft, wait = d.popleft, cond.wait

    def get():
        with cond:
            while not d:
                wait()
            return popleft()
    return get


def _deque_put_many(state):
    d, cond = state
    extend, notify = d.extend, cond.notify

    def put_many(items):
        with cond:
            extend(items)
            notify()
    return put_many


def _deque_get_many(state):
    d, cond = state
    popleft, wait = d.popleft, cond.wait

    def get_many(m):
        with cond:
            while not d:
                wait()
            return [popleft() for _ in range(min(m, len(d)))]
    return get_many


def queue_adapters():
    out = [
        Adapter("LockFreeQueue", LockFreeQueue, lambda q: q.put, lambda q: q.get,
                *((lambda q: q.put_many, lambda q: q.get_many)
                  if hasattr(LockFreeQueue(), "put_many") else ())),
        Adapter("SimpleQueue", queue.SimpleQueue, lambda q: q.put, lambda q: q.get),
        Adapter("queue.Queue", queue.Queue, lambda q: q.put, lambda q: q.get),
        Adapter("deque+Lock", _deque_make, _deque_put, _deque_get,
                _deque_put_many, _deque_get_many,
                note="deque+Lock: a threading.Condition over a Lock; get waits on it, "
                     "put appends and notifies; batches: extend / up to 32 popleft "
                     "under one acquisition"),
    ]
    skipped = []
    if not FREE_THREADED:
        skipped.append("ft_utils, cereggii: no build for this (GIL) interpreter; skipped")
        return out, skipped
    try:
        import ft_utils
        from ft_utils.concurrency import ConcurrentQueue
        ver = getattr(ft_utils, "__version__", None) or _dist_version("ft_utils")
        out.append(Adapter("ft_utils.CQ", ConcurrentQueue, lambda q: q.push, lambda q: q.pop,
                           note=f"ft_utils.CQ: ft_utils {ver} ConcurrentQueue() (default, "
                                "not lock_free): push(), blocking pop(); every push "
                                "notifies a threading.Condition; no batch API"))
    except ImportError as e:
        skipped.append(f"ft_utils: not installed ({e}); skipped")
    try:
        import cereggii
        ver = getattr(cereggii, "__version__", "?")
        qtype = next((getattr(cereggii, n) for n in ("AtomicQueue", "Queue", "ConcurrentQueue")
                      if hasattr(cereggii, n)), None)
        if qtype is None:
            skipped.append(f"cereggii {ver}: this release has no queue type "
                           "(AtomicDict, atomics, ThreadSet only); skipped")
        else:
            out.append(Adapter("cereggii.Q", qtype, lambda q: q.put, lambda q: q.get,
                               *((lambda q: q.put_many, lambda q: q.get_many)
                                 if hasattr(qtype, "put_many") else ()),
                               note=f"cereggii.Q: cereggii {ver} {qtype.__name__}"))
    except ImportError as e:
        skipped.append(f"cereggii: not installed ({e}); skipped")
    return out, skipped


def _dist_version(dist):
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:
        return "?"


# ---- workloads: each returns items per second, timed on the workers' clocks ----


def _run_threads(bodies):
    start = threading.Barrier(len(bodies) + 1)
    began, done = [], []

    def wrap(body):
        start.wait()
        began.append(time.perf_counter())
        body()
        done.append(time.perf_counter())

    threads = [threading.Thread(target=wrap, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    start.wait()
    for t in threads:
        t.join()
    # First start to last end on the workers' own clocks: this thread may run
    # late after the barrier and miss part of the work.
    return max(done) - min(began)


def pairs(ad, k, n):
    q = ad.make()

    def body():
        put, get = ad.put(q), ad.get(q)
        for i in range(n):
            put(i)
            get()
    return k * n / _run_threads([body] * k)


def pairs_batch(ad, k, n):
    q = ad.make()
    rounds = max(1, n // BATCH)
    items = list(range(BATCH))

    def body():
        put_many, get_many = ad.put_many(q), ad.get_many(q)
        for _ in range(rounds):
            put_many(items)
            got = 0
            while got < BATCH:  # another thread may have taken some of ours
                got += len(get_many(BATCH - got))
    return k * rounds * BATCH / _run_threads([body] * k)


def prodcons(ad, p, c, n, batch=False):
    """p producers put n items in all; c consumers block in get() until a sentinel."""
    q = ad.make()
    stop = object()
    per = n // p
    left = [p]
    left_lock = threading.Lock()

    def producer():
        if batch:
            put_many = ad.put_many(q)
            chunk = list(range(BATCH))
            for _ in range(per // BATCH):
                put_many(chunk)
        else:
            put = ad.put(q)
            for i in range(per):
                put(i)
        with left_lock:
            left[0] -= 1
            last = left[0] == 0
        if last:
            put = ad.put(q)
            for _ in range(c):
                put(stop)

    def consumer():
        if batch:
            get_many = ad.get_many(q)
            while stop not in get_many(BATCH):
                pass
        else:
            get = ad.get(q)
            while get() is not stop:
                pass

    total = p * (per // BATCH * BATCH if batch else per)
    return total / _run_threads([producer] * p + [consumer] * c)


def stack_pairs(s_make, k, n):
    obj = s_make()
    if isinstance(obj, LockFreeStack):
        def body():
            push, pop = obj.push, obj.pop
            for i in range(n):
                push(i)
                pop()
    else:
        lst, lock = obj

        def body():
            append, pop = lst.append, lst.pop
            for i in range(n):
                with lock:
                    append(i)
                with lock:
                    pop()
    return k * n / _run_threads([body] * k)


PC = {"1P/1C": (1, 1), "1P/3C": (1, 3), "3P/1C": (3, 1)}


def build_cells(adapters, pair_threads):
    """Cells: (workload, threads, impl, baseline impl, fn(n) -> items/s)."""
    cells = []
    for ad in adapters:
        for k in pair_threads:
            cells.append(("pairs", k, ad.name, "SimpleQueue", lambda n, ad=ad, k=k: pairs(ad, k, n)))
        for w, (p, c) in PC.items():
            cells.append((w, p + c, ad.name, "SimpleQueue",
                          lambda n, ad=ad, p=p, c=c: prodcons(ad, p, c, n)))
        if ad.put_many is not None:
            name = f"{ad.name} batch{BATCH}"
            for k in pair_threads:
                cells.append(("pairs", k, name, "SimpleQueue",
                              lambda n, ad=ad, k=k: pairs_batch(ad, k, n)))
            cells.append(("1P/1C", 2, name, "SimpleQueue",
                          lambda n, ad=ad: prodcons(ad, 1, 1, n, batch=True)))
    stacks = [("LockFreeStack", LockFreeStack), ("list+Lock", lambda: ([], threading.Lock()))]
    for name, make in stacks:
        for k in pair_threads:
            cells.append(("stack pairs", k, name, "list+Lock",
                          lambda n, make=make, k=k: stack_pairs(make, k, n)))
    return cells


def calibrate(fn, target):
    n = 2048
    while True:
        t0 = time.perf_counter()
        fn(n)
        dt = time.perf_counter() - t0
        if dt > target / 4 or n > 50_000_000:
            return max(1024, int(n * target / dt))
        n *= 2


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--target", type=float, default=0.1, help="seconds per cell run")
    ap.add_argument("--threads", default="1,2,4,8", help="thread counts of the pairs workloads")
    ap.add_argument("--csv", help="append rows (python, workload, threads, impl, value, ratio) to FILE")
    args = ap.parse_args()
    pair_threads = [int(x) for x in args.threads.split(",")]

    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    adapters, skipped = queue_adapters()
    gil_after = getattr(sys, "_is_gil_enabled", lambda: True)()
    pytag = platform.python_version() + ("t" if FREE_THREADED else "")
    build = ("free-threaded build, GIL " + ("ON" if gil_after else "off")) if FREE_THREADED else "GIL build"
    print(f"# bench_collections: Python {pytag} ({build}), {os.cpu_count()} CPUs, "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} at start")
    print(f"# concurrent_collections {getattr(concurrent_collections, '__version__', '?')} from "
          f"{os.path.dirname(concurrent_collections.__file__)}; allocator {config.allocator}, "
          f"statistics {'on' if config.enable_alloc_statistics else 'off'}; LockFreeQueue "
          f"{'has' if hasattr(LockFreeQueue(), 'put_many') else 'has no'} put_many/get_many")
    if FREE_THREADED and gil_after != gil:
        print("# WARNING: importing a peer turned the GIL on")
    for ad in adapters:
        if ad.note:
            print(f"# {ad.note}")
    for s in skipped:
        print(f"# {s}")

    cells = build_cells(adapters, pair_threads)
    t0 = time.perf_counter()
    sizes = [calibrate(c[4], args.target) for c in cells]
    t_cal = time.perf_counter() - t0
    print(f"# median of {args.rounds} interleaved shuffled rounds, ~{args.target}s per cell run "
          f"(calibrated in {t_cal:.0f}s); M items/s = millions of items through the structure "
          "per second, all threads together (pairs: a put+get pair is one item)")

    values = collections.defaultdict(list)  # (workload, threads, impl) -> [items/s per round]
    t0 = time.perf_counter()
    for r in range(args.rounds):
        order = list(range(len(cells)))
        random.Random(r).shuffle(order)
        for i in order:
            w, k, name, _, fn = cells[i]
            values[(w, k, name)].append(fn(sizes[i]))
    elapsed = time.perf_counter() - t0

    def ratio(w, k, name, base):
        return statistics.median(a / b for a, b in zip(values[(w, k, name)], values[(w, k, base)], strict=True))

    rows = []  # (workload, threads, impl, median M/s, ratio)
    for w, k, name, base, _ in cells:
        med = statistics.median(values[(w, k, name)]) / 1e6
        rows.append((w, k, name, med, ratio(w, k, name, base)))

    def table(title, workloads, base, key_label):
        names = list(dict.fromkeys(r[2] for r in rows if r[0] in workloads))
        print(f"\n### {title}\n")
        print(f"| {key_label} | " + " | ".join(names) + " |")
        print("|---|" + "---:|" * len(names))
        for w, k in dict.fromkeys((r[0], r[1]) for r in rows if r[0] in workloads):
            cells_ = []
            for n in names:
                hit = [r for r in rows if r[:3] == (w, k, n)]
                if not hit:
                    cells_.append("")
                    continue
                v, rt = hit[0][3], hit[0][4]
                cells_.append(f"{v:.2f}" if n == base else f"{v:.2f} ({rt:.2f}x)")
            label = f"{w}, {k} thr" if w == "pairs" or w == "stack pairs" else w
            print(f"| {label} | " + " | ".join(cells_) + " |")
        print(f"\nM items/s, median over rounds; (ratio to {base}: median of per-round ratios)")

    table("Queues", ("pairs", *PC), "SimpleQueue", "workload")
    table("Stacks", ("stack pairs",), "list+Lock", "workload")

    spread = max((max(v) - min(v)) / statistics.median(v) for v in values.values())
    print(f"\n# measured in {elapsed:.0f}s; load average {os.getloadavg()[0]:.1f} at the end; "
          f"largest (max-min)/median spread of a cell: {spread:.0%}")

    # Targets (informational; they are set for the free-threaded build).
    print()
    if not FREE_THREADED:
        print("targets: set for free-threaded 3.13t; not checked on a GIL build")
    else:
        checks = [("pairs", 1, 1.0)] + [(w, sum(PC[w]), 1.0) for w in PC] + \
                 [("pairs", k, 0.8) for k in (2, 4) if k in pair_threads]
        for w, k, goal in checks:
            rt = ratio(w, k, "LockFreeQueue", "SimpleQueue")
            verdict = "PASS" if rt >= goal else "MISS"
            print(f"target {verdict}: LockFreeQueue {w} ({k} threads) {rt:.2f}x SimpleQueue "
                  f"(goal >= {goal:.1f}x)")

    if args.csv:
        new = not os.path.exists(args.csv) or os.path.getsize(args.csv) == 0
        with open(args.csv, "a") as f:
            if new:
                f.write("python,workload,threads,impl,value,ratio\n")
            for w, k, name, v, rt in rows:
                f.write(f"{pytag},{w},{k},{name},{v:.4f},{rt:.4f}\n")


if __name__ == "__main__":
    main()
