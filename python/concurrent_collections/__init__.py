"""Lock-free concurrent collections for CPython, free-threaded 3.13t included.

The collections are built on the concurrent-collections C library: nodes come
from its allocation glue (over mimalloc) and are freed through its safe memory
reclamation (SMR), so a thread never sees a node freed under it.

- :class:`LockFreeQueue`: an unbounded MPMC FIFO queue, a drop-in replacement
  for :class:`queue.SimpleQueue` (same methods, signatures and edge cases),
  plus ``try_get()``, ``put_many()``, ``get_many()`` and ``shutdown()``.
- :class:`LockFreeStack`: a LIFO stack with ``push``, ``pop``, ``try_pop``,
  ``len`` and ``bool``.
- :class:`Empty`: raised by both on empty; a subclass of :class:`queue.Empty`
  and of :class:`IndexError`, so ``except queue.Empty`` (SimpleQueue code) and
  ``except IndexError`` (stack code) keep working.
- :class:`ShutDown`: raised by a shut-down queue; :class:`queue.ShutDown` on
  Python 3.13+, the package's own :class:`Exception` subclass before.
- :data:`config`: the process-wide configuration: ``enable_alloc_statistics``,
  ``alloc_stats()``, ``reset_alloc_stats()``, ``allocator``,
  ``retire_threshold``, ``smr_barrier()`` and ``smr_stats()``.

On free-threaded CPython the extension declares that it does not need the
GIL: importing it leaves ``sys._is_gil_enabled()`` False, and push/pop/put/get
run in parallel with no lock around them.

Example::

    from concurrent_collections import LockFreeQueue, config

    config.enable_alloc_statistics = True
    q = LockFreeQueue()
    q.put("job")
    assert q.get() == "job"
    print(config.alloc_stats())
"""

from ._core import (
    AllocStats,
    Config,
    Empty,
    LockFreeQueue,
    LockFreeStack,
    SMRStats,
    ShutDown,
    config,
)
from ._version import __version__

__all__ = [
    "AllocStats",
    "Config",
    "Empty",
    "LockFreeQueue",
    "LockFreeStack",
    "SMRStats",
    "ShutDown",
    "config",
]
