"""A producer/consumer pipeline on LockFreeQueue.

    python examples/pipeline.py [--items N] [--workers N]

Producers put work items, workers take them with blocking get(), transform
them and pass the results on through a second queue in batches (put_many),
and the main thread collects the results with get_many. Once the producers
are done, shutdown() lets the workers drain the queue and leave. On a free-threaded interpreter (3.13t)
the workers run in parallel; on a GIL build the program works the same way.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import threading
import time

from concurrent_collections import LockFreeQueue, ShutDown


def produce(work: LockFreeQueue, first: int, count: int) -> None:
    for i in range(first, first + count):
        work.put(i)


def transform(work: LockFreeQueue, results: LockFreeQueue) -> None:
    batch = []
    while True:
        try:
            i = work.get()
        except ShutDown:  # shut down and drained: no more work will come
            break
        batch.append((i, hashlib.blake2b(i.to_bytes(8, "little"), digest_size=8).hexdigest()))
        if len(batch) == 64:
            results.put_many(batch)
            batch = []
    results.put_many(batch)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=200_000)
    ap.add_argument("--producers", type=int, default=2)
    ap.add_argument("--workers", type=int, default=4)
    args = ap.parse_args()

    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    print(f"Python {sys.version.split()[0]}, GIL {'enabled' if gil else 'disabled'}: "
          f"{args.producers} producers -> {args.workers} workers -> main thread")
    work, results = LockFreeQueue(), LockFreeQueue()
    share = args.items // args.producers
    total = share * args.producers
    t0 = time.perf_counter()
    workers = [threading.Thread(target=transform, args=(work, results)) for _ in range(args.workers)]
    producers = [threading.Thread(target=produce, args=(work, p * share, share))
                 for p in range(args.producers)]
    for t in workers + producers:
        t.start()

    for t in producers:
        t.join()
    work.shutdown()  # no more work: workers leave get() with ShutDown once it is drained

    seen = bytearray(total)
    got = 0
    while got < total:
        for i, _digest in results.get_many(1024, timeout=30):
            seen[i] += 1
            got += 1
    for t in workers:
        t.join()
    elapsed = time.perf_counter() - t0

    ok = got == total and all(c == 1 for c in seen) and results.empty()
    print(f"{total} items through two queues in {elapsed:.2f} s "
          f"({total / elapsed / 1e3:.0f} k items/s); every item exactly once: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
