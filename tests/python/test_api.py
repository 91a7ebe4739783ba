"""The public API and its errors: config, snapshots, LockFreeStack, LockFreeQueue."""

import ast
import inspect
import os
import pickle
import queue
import time
import weakref

import pytest

import concurrent_collections
from concurrent_collections import (
    AllocStats,
    Config,
    Empty,
    LockFreeQueue,
    LockFreeStack,
    SMRStats,
    config,
)

from conftest import run_child, settle


# ---- package ---------------------------------------------------------------


def test_from_import_config():
    from concurrent_collections import config as c

    assert c is concurrent_collections.config
    assert isinstance(c, Config)


def test_all_names_exist_and_have_docstrings():
    assert sorted(concurrent_collections.__all__) == sorted(
        ["AllocStats", "Config", "Empty", "LockFreeQueue", "LockFreeStack", "SMRStats", "ShutDown", "config"]
    )
    for name in concurrent_collections.__all__:
        obj = getattr(concurrent_collections, name)
        assert obj.__doc__, name
    assert concurrent_collections.__doc__


# Class constants of struct sequences (AllocStats, SMRStats), stubbed as ClassVar.
_STRUCTSEQ_CONSTANTS = {"n_fields", "n_sequence_fields", "n_unnamed_fields"}


def _public_members(cls):
    return [
        n
        for n in vars(cls)
        if (not n.startswith("_") or n == "_asdict") and n not in _STRUCTSEQ_CONSTANTS
    ]


@pytest.mark.parametrize("cls", [LockFreeStack, LockFreeQueue, Config, AllocStats, SMRStats])
def test_every_public_member_has_a_docstring(cls):
    assert cls.__doc__
    for name in _public_members(cls):
        assert getattr(cls, name).__doc__, f"{cls.__name__}.{name}"


def test_types_live_in_the_package():
    for cls in (LockFreeStack, LockFreeQueue, Config, AllocStats, SMRStats, Empty):
        assert cls.__module__ == "concurrent_collections", cls


def _stub_tree():
    path = os.path.join(os.path.dirname(concurrent_collections.__file__), "__init__.pyi")
    with open(path, encoding="utf-8") as f:
        return ast.parse(f.read())


def test_stubs_are_shipped_and_complete():
    pkg_dir = os.path.dirname(concurrent_collections.__file__)
    assert os.path.exists(os.path.join(pkg_dir, "py.typed"))
    tree = _stub_tree()
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    top = set(classes)
    for n in tree.body:
        if isinstance(n, ast.AnnAssign):
            top.add(n.target.id)
    for name in concurrent_collections.__all__:
        assert name in top, f"{name} missing from __init__.pyi"
    for name, cls in [
        ("LockFreeStack", LockFreeStack),
        ("LockFreeQueue", LockFreeQueue),
        ("Config", Config),
        ("AllocStats", AllocStats),
        ("SMRStats", SMRStats),
    ]:
        stubbed = {
            n.name for n in classes[name].body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
        }
        for member in _public_members(cls):
            assert member in stubbed, f"{name}.{member} missing from the stub"


def test_stub_signatures_match_runtime():
    tree = _stub_tree()
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    for cname, cls in [("LockFreeQueue", LockFreeQueue), ("LockFreeStack", LockFreeStack)]:
        for fn in classes[cname].body:
            if not isinstance(fn, ast.FunctionDef) or fn.name.startswith("_"):
                continue
            if any(isinstance(d, ast.Name) and d.id in ("overload", "property") for d in fn.decorator_list):
                continue
            runtime = inspect.signature(getattr(cls, fn.name))
            stub_params = [a.arg for a in fn.args.posonlyargs + fn.args.args]
            assert stub_params == list(runtime.parameters), (cname, fn.name)


# ---- config ----------------------------------------------------------------


def test_enable_alloc_statistics_roundtrip(stats_off_after):
    config.enable_alloc_statistics = True
    assert config.enable_alloc_statistics is True
    config.enable_alloc_statistics = False
    assert config.enable_alloc_statistics is False


@pytest.mark.parametrize("bad", [1, 0, None, "True", 1.0, [], object()])
def test_enable_alloc_statistics_rejects_non_bool(bad, stats_off_after):
    for start in (True, False):
        config.enable_alloc_statistics = start
        with pytest.raises(TypeError):
            config.enable_alloc_statistics = bad
        assert config.enable_alloc_statistics is start


def test_enable_alloc_statistics_cannot_be_deleted(stats_off_after):
    before = config.enable_alloc_statistics
    with pytest.raises(TypeError):
        del config.enable_alloc_statistics
    assert config.enable_alloc_statistics is before


def test_stats_start_off_unless_env():
    code = "from concurrent_collections import config; print(config.enable_alloc_statistics)"
    env = {"CONCURRENT_COLLECTIONS_ENABLE_STATS": "0"}
    assert run_child(code, env).stdout.strip() == "False"
    env = {"CONCURRENT_COLLECTIONS_ENABLE_STATS": "1"}
    assert run_child(code, env).stdout.strip() == "True"
    r = run_child(code, {"CONCURRENT_COLLECTIONS_ENABLE_STATS": ""})
    assert r.stdout.strip() == "False"


def test_allocator_is_read_only():
    assert config.allocator in ("mimalloc", "system", "debug")
    with pytest.raises(AttributeError):
        config.allocator = "system"
    with pytest.raises(AttributeError):
        del config.allocator


@pytest.mark.parametrize("backend", ["mimalloc", "system", "debug"])
def test_allocator_from_env(backend):
    code = "from concurrent_collections import config; print(config.allocator)"
    r = run_child(code, {"CONCURRENT_COLLECTIONS_ALLOCATOR": backend})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == backend


def test_config_cannot_be_instantiated_or_extended():
    with pytest.raises(TypeError):
        Config()
    with pytest.raises(TypeError):
        type(config)()
    with pytest.raises(AttributeError):
        config.no_such_setting = 1
    assert "allocator=" in repr(config)


def test_retire_threshold():
    before = config.retire_threshold
    try:
        config.retire_threshold = 7
        assert config.retire_threshold == 7
        for bad, exc in [(0, ValueError), (-1, ValueError), (2**20 + 1, ValueError),
                         (2**100, ValueError), (True, TypeError), ("8", TypeError), (8.0, TypeError)]:
            with pytest.raises(exc):
                config.retire_threshold = bad
            assert config.retire_threshold == 7
        with pytest.raises(TypeError):
            del config.retire_threshold
    finally:
        config.retire_threshold = before


def test_alloc_stats_snapshot(stats_off_after):
    settle()
    config.enable_alloc_statistics = True
    config.reset_alloc_stats()
    # Live counts cover every live block of the glue (whenever allocated);
    # the event counts cover the window since the reset.
    base = config.alloc_stats()
    s = LockFreeStack()
    for i in range(10):
        s.push(i)
    snap = config.alloc_stats()
    assert isinstance(snap, AllocStats)
    assert snap.alloc_count == 11  # the stack header + 10 nodes
    assert snap.free_count == 0
    assert snap.current_blocks - base.current_blocks == 11
    assert snap.current_allocated - base.current_allocated == snap.alloc_bytes > 0
    d = snap._asdict()
    assert list(d) == ["alloc_count", "free_count", "alloc_bytes", "free_bytes",
                       "current_allocated", "current_blocks"]
    assert d["alloc_count"] == 11 and all(type(v) is int for v in d.values())
    # a struct sequence, as os.stat_result: its repr names the module
    assert repr(snap).startswith("concurrent_collections.AllocStats(alloc_count=11, free_count=0, ")
    # immutable
    with pytest.raises(AttributeError):
        snap.alloc_count = 0
    with pytest.raises(AttributeError):
        snap.new_attribute = 0
    with pytest.raises(TypeError):
        AllocStats()
    assert snap == snap and hash(snap) == hash(snap)
    # snapshots do not change afterwards
    del s
    settle()
    assert snap.alloc_count == 11
    after = config.alloc_stats()
    assert after.free_count == 11
    assert after.current_blocks == base.current_blocks
    assert after.current_allocated == base.current_allocated
    assert after != snap
    config.reset_alloc_stats()
    zero = config.alloc_stats()
    assert zero.alloc_count == zero.free_count == zero.alloc_bytes == zero.free_bytes == 0
    assert zero.current_blocks == base.current_blocks  # a reset leaves live counts alone


def test_stats_off_counts_nothing(stats_off_after):
    settle()
    config.enable_alloc_statistics = False
    config.reset_alloc_stats()
    q = LockFreeQueue()
    for i in range(100):
        q.put(i)
    while not q.empty():
        q.get()
    del q
    settle()
    assert config.alloc_stats().alloc_count == 0


def test_smr_stats_and_barrier():
    s = LockFreeStack()
    for i in range(1000):
        s.push(i)
    before = config.smr_stats()
    for i in range(1000):
        s.pop()
    mid = config.smr_stats()
    assert isinstance(mid, SMRStats)
    assert mid.retired >= before.retired + 1000
    config.smr_barrier()
    after = config.smr_stats()
    assert after.freed >= mid.retired
    d = after._asdict()
    assert list(d)[:4] == ["retired", "freed", "pending", "epoch"]
    assert d["pending"] == after.retired - after.freed
    assert repr(after).startswith("concurrent_collections.SMRStats(retired=")
    with pytest.raises(AttributeError):
        after.epoch = 1


def test_smr_fence_mode_in_stats():
    # The mode the C library chose: asymmetric unless the environment asks for
    # 'always' or the kernel lacks membarrier (then no membarrier is ever made).
    st = config.smr_stats()
    assert st.asymmetric in (0, 1)
    if os.environ.get("CONCURRENT_COLLECTIONS_SMR_FENCE") == "always":
        assert st.asymmetric == 0
    if not st.asymmetric:
        assert st.membarriers == 0
    assert list(st._asdict())[-2:] == ["asymmetric", "membarriers"]


# ---- LockFreeStack ---------------------------------------------------------------


def test_stack_basics():
    s = LockFreeStack()
    assert len(s) == 0 and not s
    for i in range(5):
        s.push(i)
    assert len(s) == 5 and s
    assert [s.pop() for _ in range(5)] == [4, 3, 2, 1, 0]
    assert len(s) == 0 and not s


def test_stack_pop_empty_raises_empty():
    s = LockFreeStack()
    with pytest.raises(Empty) as info:
        s.pop()
    assert isinstance(info.value, IndexError)
    assert issubclass(Empty, IndexError)
    with pytest.raises(IndexError):
        s.pop()


def test_stack_try_pop():
    s = LockFreeStack()
    assert s.try_pop() is None
    sentinel = object()
    assert s.try_pop(sentinel) is sentinel
    assert s.try_pop(default=sentinel) is sentinel
    s.push(1)
    assert s.try_pop(sentinel) == 1
    with pytest.raises(TypeError):
        s.try_pop(1, 2)
    with pytest.raises(TypeError):
        s.try_pop(dflt=1)
    with pytest.raises(TypeError):
        s.try_pop(1, default=2)


def test_stack_argument_errors():
    s = LockFreeStack()
    with pytest.raises(TypeError):
        s.push()
    with pytest.raises(TypeError):
        s.push(1, 2)
    with pytest.raises(TypeError):
        s.pop(1)
    with pytest.raises(TypeError):
        LockFreeStack(1)
    with pytest.raises(TypeError):
        LockFreeStack(x=1)


def test_stack_stores_any_object_including_none():
    s = LockFreeStack()
    objs = [None, 0, "x", (), s]
    for o in objs:
        s.push(o)
    assert [s.pop() for _ in objs] == objs[::-1]


def test_stack_subclass_weakref_generic():
    class MyStack(LockFreeStack):
        def __init__(self, items):
            super().__init__()
            for i in items:
                self.push(i)

    m = MyStack([1, 2])
    assert m.pop() == 2 and len(m) == 1
    r = weakref.ref(m)
    del m
    assert r() is None
    assert LockFreeStack[int].__origin__ is LockFreeStack


def test_containers_cannot_be_pickled():
    for c in (LockFreeStack(), LockFreeQueue()):
        with pytest.raises(TypeError):
            pickle.dumps(c)


# ---- LockFreeQueue (SimpleQueue parity is in test_simplequeue_parity.py) ------------


def test_queue_empty_is_queue_empty():
    q = LockFreeQueue()
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(False)
    assert Empty is not queue.Empty


def test_queue_try_get():
    q = LockFreeQueue()
    assert q.try_get() is None
    sentinel = object()
    assert q.try_get(sentinel) is sentinel
    q.put(1)
    q.put(2)
    assert q.try_get(default=sentinel) == 1
    assert q.try_get() == 2
    assert q.try_get(sentinel) is sentinel


def test_queue_get_timeout_timing():
    q = LockFreeQueue()
    t0 = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.2)
    elapsed = time.monotonic() - t0
    assert 0.19 <= elapsed < 2.0
    t0 = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(True, 0)
    assert time.monotonic() - t0 < 0.5


def test_queue_signature():
    assert str(inspect.signature(LockFreeQueue.put)) == "(self, /, item, block=True, timeout=None)"
    assert str(inspect.signature(LockFreeQueue.get)) == "(self, /, block=True, timeout=None)"
    assert str(inspect.signature(LockFreeQueue.put_nowait)) == "(self, /, item)"
    assert str(inspect.signature(LockFreeQueue.get_nowait)) == "(self, /)"


# ---- allocation failure -> MemoryError, container intact ---------------------------

FAIL_SCRIPT = r"""
import gc, sys
from concurrent_collections import LockFreeQueue, LockFreeStack, config
assert config.allocator == "debug", config.allocator

def make(cls):
    while True:
        try:
            return cls()
        except MemoryError:
            pass

obj = object()
base = sys.getrefcount(obj)
for cls, add, take in [(LockFreeStack, "push", "pop"), (LockFreeQueue, "put", "get_nowait")]:
    c = make(cls)
    ok, failed = [], 0
    for i in range(300):
        item = (i, obj)
        try:
            getattr(c, add)(item)
            ok.append(item)
        except MemoryError:
            failed += 1
    assert failed > 0, "no injected failure"
    n = len(c) if cls is LockFreeStack else c.qsize()
    assert n == len(ok), (n, len(ok))
    got = [getattr(c, take)() for _ in range(n)]
    expect = ok[::-1] if cls is LockFreeStack else ok
    assert got == expect
    del c, got, ok, expect, item
gc.collect()
assert sys.getrefcount(obj) == base, (sys.getrefcount(obj), base)
config.smr_barrier()
print("OK")
"""


def test_allocation_failure_raises_memoryerror_and_keeps_container():
    r = run_child(
        FAIL_SCRIPT,
        {"CONCURRENT_COLLECTIONS_ALLOCATOR": "debug", "CONCURRENT_COLLECTIONS_FAIL_ALLOC": "every:7"},
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().endswith("OK")
    assert "still live" not in r.stderr, r.stderr


LEAK_SCRIPT = r"""
import gc
from concurrent_collections import LockFreeQueue, LockFreeStack, config
s, q = LockFreeStack(), LockFreeQueue()
for i in range(1000):
    s.push(i); q.put(i)
for i in range(500):
    s.pop(); q.get()
del s, q
gc.collect()
config.smr_barrier()
print("OK")
"""


def test_no_blocks_leak_under_the_debug_backend():
    r = run_child(LEAK_SCRIPT, {"CONCURRENT_COLLECTIONS_ALLOCATOR": "debug"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "OK"
    assert "still live" not in r.stderr, r.stderr
