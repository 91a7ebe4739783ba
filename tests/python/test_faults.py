"""Allocation failures from Python (issue 6): put/push raise MemoryError and
the container is intact, under the debug backend with fault injection.

Fault injection is environment-only from Python, so each case runs a child
interpreter with CONCURRENT_COLLECTIONS_ALLOCATOR=debug and
CONCURRENT_COLLECTIONS_FAIL_ALLOC=every:N or N. Only node allocations go
through the glue (Python's own objects do not), so with every:N exactly every
Nth node allocation fails. The child checks, operation by operation, that a
failed push/put/put_nowait raises MemoryError and leaves len()/qsize() and the
contents unchanged (pops interleaved and compared with a model list), that a
constructor can raise MemoryError too, that the refcount of the pushed object
only counts successful pushes, and that after draining, smr_barrier() and
deleting the containers the glue's block count is back to its start (and the
debug allocator reports nothing live at exit).

Compared with test_api.py's single every:7 run: several every:N and Nth
values, put_nowait, constructors, interleaved pops against a model, exact
failure counts, statistics balance, and a multi-threaded case.
"""

import pytest

from conftest import run_child

FAULT_SCRIPT = r"""
import gc, sys, os
from concurrent_collections import LockFreeQueue, LockFreeStack, config
assert config.allocator == "debug", config.allocator
config.enable_alloc_statistics = True
config.smr_barrier()
start = config.alloc_stats().current_blocks

spec = os.environ["CONCURRENT_COLLECTIONS_FAIL_ALLOC"]
every = int(spec.split(":")[1]) if spec.startswith("every:") else 0

ctor_failures = 0
def make(cls):
    global ctor_failures
    for _ in range(100):
        try:
            return cls()
        except MemoryError:
            ctor_failures += 1
    return None

obj = object()
base = sys.getrefcount(obj)
report = []
for cls, adds, take in [
    (LockFreeStack, ["push"], "pop"),
    (LockFreeQueue, ["put", "put_nowait"], "get_nowait"),
]:
    c = make(cls)
    if c is None:
        # A queue needs two consecutive allocations (header, dummy): under
        # every:2 one of them always fails, so it can never be created.
        assert cls is LockFreeQueue and every == 2, cls
        report.append(f"{cls.__name__}: constructor MemoryError x100 (needs 2 consecutive allocations)")
        continue
    size = (lambda: len(c)) if cls is LockFreeStack else c.qsize
    model, failed, attempts, ok_pushes = [], 0, 0, 0
    # The queue allocates one segment per 1024 items: enough adds that many
    # segment allocations happen (each pop of the model's head is O(1)).
    head = 0
    for i in range(3000 if cls is LockFreeStack else 40000):
        if i % 4 == 3 and len(model) > head:
            got = getattr(c, take)()
            if cls is LockFreeStack:
                want = model.pop()
            else:
                want = model[head]
                model[head] = None
                head += 1
            assert got is want, (i, got, want)
            del got, want  # they hold a tuple holding obj
            continue
        item = (i, obj)
        attempts += 1
        try:
            getattr(c, adds[i % len(adds)])(item)
            model.append(item)
            ok_pushes += 1
        except MemoryError:
            failed += 1
            assert size() == len(model) - head, (i, size(), len(model) - head)
        del item
    model = model[head:]
    assert size() == len(model), (size(), len(model))
    assert sys.getrefcount(obj) == base + len(model), (sys.getrefcount(obj), base, len(model))
    got = [getattr(c, take)() for _ in range(len(model))]
    expect = model[::-1] if cls is LockFreeStack else model
    assert len(got) == len(expect) and all(a is b for a, b in zip(got, expect))
    assert size() == 0
    report.append(f"{cls.__name__}: {attempts} adds, {failed} MemoryError")
    if every == 0:
        assert failed <= 1
    else:
        assert failed > 0, "no injected failure"
    del c, size, got, model, expect
gc.collect()
assert sys.getrefcount(obj) == base, (sys.getrefcount(obj), base)
config.smr_barrier()
end = config.alloc_stats().current_blocks
assert end == start, (end, start)
print("; ".join(report), f"; ctor MemoryError {ctor_failures}")
print("OK")
"""


@pytest.mark.parametrize("spec", ["every:1", "every:2", "every:3", "every:5", "every:13", "1", "2", "50"])
def test_memoryerror_keeps_container_intact(spec):
    env = {"CONCURRENT_COLLECTIONS_ALLOCATOR": "debug", "CONCURRENT_COLLECTIONS_FAIL_ALLOC": spec}
    if spec == "every:1":
        # Nothing can be allocated: every constructor fails.
        code = r"""
from concurrent_collections import LockFreeQueue, LockFreeStack
for cls in (LockFreeStack, LockFreeQueue):
    for _ in range(100):
        try:
            cls()
        except MemoryError:
            pass
        else:
            raise AssertionError("constructor succeeded with every allocation failing")
print("OK")
"""
    else:
        code = FAULT_SCRIPT
    r = run_child(code, env)
    print(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().endswith("OK")
    assert "still live" not in r.stderr, r.stderr


THREADED_SCRIPT = r"""
import sys, threading
from concurrent_collections import LockFreeQueue, LockFreeStack, config
assert config.allocator == "debug"
config.enable_alloc_statistics = True
config.smr_barrier()
start = config.alloc_stats().current_blocks

ctor_failed = 0
def make(cls):
    global ctor_failed
    while True:
        try:
            return cls()
        except MemoryError:
            ctor_failed += 1

s, q = make(LockFreeStack), make(LockFreeQueue)
N, T = 3000, 8
ok = [[] for _ in range(T)]
failed = [0] * T
popped = [[] for _ in range(T)]
def work(t):
    for i in range(N):
        v = t * N + i
        try:
            (s.push if i % 2 else q.put)(v)
            ok[t].append(v)
        except MemoryError:
            failed[t] += 1
        if i % 3 == 0:
            x = s.try_pop()
            if x is not None: popped[t].append(x)
            x = q.try_get()
            if x is not None: popped[t].append(x)
threads = [threading.Thread(target=work, args=(t,)) for t in range(T)]
for th in threads: th.start()
for th in threads: th.join()
rest = []
while (x := s.try_pop()) is not None: rest.append(x)
while (x := q.try_get()) is not None: rest.append(x)
got = sorted(sum(popped, []) + rest)
want = sorted(sum(ok, []))
assert got == want, (len(got), len(want))
total_failed = sum(failed)
# Every glue allocation since start is counted (statistics on from the start),
# and a failed one is not: attempts = alloc_count + failures, and exactly every
# 7th attempt failed.
failures = total_failed + ctor_failed
attempts = config.alloc_stats().alloc_count + failures
assert failures == attempts // 7, (failures, attempts)
del s, q
config.smr_barrier()
assert config.alloc_stats().current_blocks == start
print(f"{T} threads, {T*N} adds, {total_failed} MemoryError, {len(want)} delivered exactly once")
print("OK")
"""


def test_memoryerror_under_threads_every7():
    env = {
        "CONCURRENT_COLLECTIONS_ALLOCATOR": "debug",
        "CONCURRENT_COLLECTIONS_FAIL_ALLOC": "every:7",
        "CONCURRENT_COLLECTIONS_ENABLE_STATS": "1",
    }
    r = run_child(THREADED_SCRIPT, env, timeout=120)
    print(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().endswith("OK")
    assert "still live" not in r.stderr, r.stderr
