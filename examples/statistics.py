"""Allocation and SMR statistics, switched on and off at run time.

    python examples/statistics.py

The glue counts every block all the time: `current_blocks` and
`current_allocated` are the live blocks whether statistics are on or not.
Switching statistics on opens a window for the event counters (alloc_count,
free_count, alloc_bytes, free_bytes); reset_alloc_stats() starts a new window.
"""

from __future__ import annotations

from concurrent_collections import LockFreeQueue, LockFreeStack, config


def show(title: str) -> None:
    a = config.alloc_stats()
    print(f"{title}\n  live blocks {a.current_blocks}, live bytes {a.current_allocated}; "
          f"window: {a.alloc_count} allocations, {a.free_count} frees "
          f"(statistics {'on' if config.enable_alloc_statistics else 'off'})")


def main() -> None:
    print(f"allocator {config.allocator}, mimalloc {config.mimalloc_version}")
    config.enable_alloc_statistics = False
    stack = LockFreeStack()
    for i in range(10_000):
        stack.push(i)  # one node per item
    show("10,000 items pushed with statistics off:")

    config.enable_alloc_statistics = True
    config.reset_alloc_stats()
    queue = LockFreeQueue()
    queue.put_many(range(10_000))  # one segment per 1,024 items
    show("statistics on, 10,000 items put on a queue:")

    while len(stack):
        stack.pop()
    while not queue.empty():
        queue.get()
    config.smr_barrier()  # every retired node and segment is freed when it returns
    show("both drained, after smr_barrier() (left: the stack, the queue and its current segment):")

    s = config.smr_stats()
    print(f"SMR: {s.retired} retired, {s.freed} freed, {s.pending} pending, epoch {s.epoch}")
    print("as a dict:", config.alloc_stats()._asdict())


if __name__ == "__main__":
    main()
