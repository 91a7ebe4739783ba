"""Blocking behaviour of LockFreeQueue.get() against queue.SimpleQueue.get().

(a) wake-up latency: a thread sleeps in get(); another thread puts
    time.perf_counter_ns() after a short sleep (so the getter is really
    asleep); the getter records perf_counter_ns() - item. Median and p99 over
    the handoffs; the two queues alternate in rounds.
(b) idle wakeups: a thread in get(timeout=T) on an empty queue counts its own
    voluntary context switches (/proc/self/task/<tid>/status, read before and
    after by the waiting thread itself), on the main thread and on another
    thread at the same time. A sleep that never wakes early costs 1-2.
(c) Ctrl-C latency: the main thread sleeps in get(); a helper thread sends
    SIGINT to it (signal.pthread_kill) at a recorded time; the delay until
    KeyboardInterrupt reaches the main thread. Median and max over the tries.
    A get() still blocked 2 s after the signal is counted as 'not interrupted'
    (the helper then puts an item to free it).

    python bench/python/bench_wakeup.py [--handoffs N] [--idle S] [--sigint N]
"""

from __future__ import annotations

import argparse
import os
import platform
import queue
import signal
import statistics
import sys
import sysconfig
import threading
import time

from concurrent_collections import LockFreeQueue

IMPLS = [("LockFreeQueue", LockFreeQueue), ("SimpleQueue", queue.SimpleQueue)]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def wake_latency(make, n, gap_s):
    q, done = make(), make()
    delays = []

    def getter():
        get = q.get
        for _ in range(n):
            t = get()
            delays.append(time.perf_counter_ns() - t)
        done.put(None)

    th = threading.Thread(target=getter)
    th.start()
    for _ in range(n):
        time.sleep(gap_s)
        q.put(time.perf_counter_ns())
    done.get()
    th.join()
    return delays


def vcsw(tid):
    with open(f"/proc/self/task/{tid}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches"):
                return int(line.split()[1])
    return -1


def idle_wakeups(make, secs):
    """(main thread's count, other thread's count), both waiting at the same time."""
    res = {}

    def wait(where):
        q = make()
        tid = threading.get_native_id()
        before = vcsw(tid)
        try:
            q.get(timeout=secs)
        except queue.Empty:
            pass
        res[where] = vcsw(tid) - before

    th = threading.Thread(target=wait, args=("thread",))
    th.start()
    wait("main")
    th.join()
    return res["main"], res["thread"]


def sigint_latency(make, tries, lead_s=0.05, give_up_s=2.0):
    main_id = threading.main_thread().ident
    delays, missed = [], 0
    for _ in range(tries):
        q = make()
        sent = []
        got = threading.Event()

        def helper(q=q, sent=sent, got=got):  # this round's, bound now
            time.sleep(lead_s)
            sent.append(time.perf_counter_ns())
            signal.pthread_kill(main_id, signal.SIGINT)
            if not got.wait(give_up_s):
                q.put("unblock")

        th = threading.Thread(target=helper)
        th.start()
        try:
            q.get()
            missed += 1
        except KeyboardInterrupt:
            delays.append(time.perf_counter_ns() - sent[0])
        got.set()
        th.join()
    return delays, missed


def us(ns):
    return f"{ns / 1e3:.0f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--handoffs", type=int, default=300)
    ap.add_argument("--gap", type=float, default=0.002, help="sleep before each put (s)")
    ap.add_argument("--idle", type=float, default=3.0, help="get(timeout=) of the idle test (s)")
    ap.add_argument("--sigint", type=int, default=20, help="Ctrl-C tries per queue")
    args = ap.parse_args()

    ft = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    pytag = platform.python_version() + ("t" if ft else "")
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    build = "free-threaded, GIL " + ("ON" if gil else "off") if ft else "GIL build"
    print(f"# bench_wakeup: Python {pytag} ({build}), "
          f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")

    rounds = 5
    lat = {name: [] for name, _ in IMPLS}
    for r in range(rounds):
        for name, make in (IMPLS if r % 2 == 0 else IMPLS[::-1]):
            lat[name] += wake_latency(make, args.handoffs // rounds, args.gap)
    idle = {name: idle_wakeups(make, args.idle) for name, make in IMPLS}
    sig = {}
    for name, make in IMPLS:
        sig[name] = sigint_latency(make, args.sigint)

    print(f"# (a) {args.handoffs} handoffs per queue, {args.gap * 1e3:.0f} ms sleep before each put; "
          f"(b) get(timeout={args.idle:g}) on an empty queue; (c) {args.sigint} SIGINTs per queue")
    print()
    print("| queue | wake-up median us | wake-up p99 us | idle vol. switches main / thread "
          "| Ctrl-C median us | Ctrl-C max us | Ctrl-C missed |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, _ in IMPLS:
        d, missed = sig[name]
        print(f"| {name} | {us(statistics.median(lat[name]))} | {us(pct(lat[name], 99))} "
              f"| {idle[name][0]} / {idle[name][1]} "
              f"| {us(statistics.median(d)) if d else '-'} | {us(max(d)) if d else '-'} "
              f"| {missed}/{args.sigint} |")
    a, b = (statistics.median(lat[n]) for n, _ in IMPLS)
    print(f"\nwake-up median: LockFreeQueue / SimpleQueue = {a / b:.2f}x "
          f"(load average {os.getloadavg()[0]:.1f} at the end)")


if __name__ == "__main__":
    main()
