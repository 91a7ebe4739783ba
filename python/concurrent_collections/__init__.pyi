"""Type stubs for concurrent_collections (lock-free stack and queue, config)."""

import queue
from collections.abc import Iterable
from types import GenericAlias
from typing import Any, ClassVar, Final, Generic, Literal, TypeVar, final, overload

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

__version__: str

_T = TypeVar("_T")
_D = TypeVar("_D")

class Empty(queue.Empty, IndexError):
    """Raised by LockFreeStack.pop() and LockFreeQueue's gets when empty.

    One class for both containers: a subclass of queue.Empty (so SimpleQueue
    code's `except queue.Empty` still catches the queue's) and of IndexError
    (so list-like `except IndexError` still catches the stack's).
    """

# queue.ShutDown on Python 3.13+ (the same class); the package's own before.
class ShutDown(Exception):
    """Raised by a LockFreeQueue after shutdown(): by put, and by gets once drained."""

@final
class AllocStats(tuple[int, ...]):
    """An immutable snapshot of the allocation statistics (config.alloc_stats()).

    A struct sequence, as os.stat_result: a tuple with named fields (picklable).
    """

    @property
    def alloc_count(self) -> int:
        """Blocks allocated (counted while statistics were on)."""
    @property
    def free_count(self) -> int:
        """Blocks freed (counted while statistics were on)."""
    @property
    def alloc_bytes(self) -> int:
        """Bytes allocated: the usable size of each block."""
    @property
    def free_bytes(self) -> int:
        """Bytes freed: the usable size of each block."""
    @property
    def current_allocated(self) -> int:
        """Bytes of every live block, whenever allocated (a reset leaves it)."""
    @property
    def current_blocks(self) -> int:
        """Every live block, whenever allocated (a reset leaves it)."""
    n_fields: ClassVar[int]
    n_sequence_fields: ClassVar[int]
    n_unnamed_fields: ClassVar[int]
    def _asdict(self) -> dict[str, int]:
        """Return the snapshot as a new dict {field name: int}, in field order."""

@final
class SMRStats(tuple[int, ...]):
    """An immutable snapshot of safe-memory-reclamation statistics (config.smr_stats()).

    A struct sequence, as os.stat_result: a tuple with named fields (picklable).
    """

    @property
    def retired(self) -> int:
        """Nodes ever retired to safe memory reclamation."""
    @property
    def freed(self) -> int:
        """Retired nodes ever freed."""
    @property
    def pending(self) -> int:
        """Retired nodes not freed yet (retired - freed)."""
    @property
    def epoch(self) -> int:
        """The current global epoch."""
    @property
    def threads(self) -> int:
        """Threads registered with SMR (live)."""
    @property
    def orphaned(self) -> int:
        """Pending nodes handed over by exited threads."""
    @property
    def stalled_threads(self) -> int:
        """Threads in a critical section whose epoch is behind the global one."""
    @property
    def peak_pending(self) -> int:
        """Highest 'pending' sampled."""
    @property
    def asymmetric(self) -> int:
        """1 if critical sections enter without a fence (membarrier mode)."""
    @property
    def membarriers(self) -> int:
        """membarrier(2) calls made by the asymmetric mode."""
    n_fields: ClassVar[int]
    n_sequence_fields: ClassVar[int]
    n_unnamed_fields: ClassVar[int]
    def _asdict(self) -> dict[str, int]:
        """Return the snapshot as a new dict {field name: int}, in field order."""

@final
class Config:
    """The type of `config`, the process-wide runtime configuration (one instance)."""

    @property
    def enable_alloc_statistics(self) -> bool:
        """Whether allocation statistics are counted. Only True/False may be assigned."""
    @enable_alloc_statistics.setter
    def enable_alloc_statistics(self, value: bool) -> None: ...
    @property
    def allocator(self) -> Literal["mimalloc", "system", "debug"]:
        """The allocator backend in use (read-only)."""
    @property
    def retire_threshold(self) -> int:
        """SMR retire threshold, an int in [1, 2**20]."""
    @retire_threshold.setter
    def retire_threshold(self, value: int) -> None: ...
    def alloc_stats(self) -> AllocStats:
        """Return a snapshot of the allocation statistics."""
    def reset_alloc_stats(self) -> None:
        """Reset the allocation statistics to zero."""
    def smr_barrier(self) -> None:
        """Wait until every node retired so far has been freed (releases the GIL)."""
    def smr_stats(self) -> SMRStats:
        """Return a snapshot of the safe-memory-reclamation statistics."""

config: Final[Config]
"""The runtime configuration of concurrent_collections (process-wide)."""

class LockFreeStack(Generic[_T]):
    """A lock-free LIFO stack (Treiber stack) safe to share between threads.

    len() is exact while no other thread changes the stack, approximate otherwise.
    """

    def __init__(self) -> None: ...
    def push(self, item: _T, /) -> None:
        """Push item on top of the stack."""
    def pop(self) -> _T:
        """Remove and return the top item; raise Empty if the stack is empty."""
    @overload
    def try_pop(self) -> _T | None: ...
    @overload
    def try_pop(self, default: _D) -> _T | _D: ...
    def __len__(self) -> int: ...
    def __bool__(self) -> bool: ...
    def __class_getitem__(cls, item: Any, /) -> GenericAlias: ...

class LockFreeQueue(Generic[_T]):
    """Unbounded lock-free MPMC FIFO queue; a drop-in replacement for queue.SimpleQueue.

    Empty gets raise Empty (a subclass of queue.Empty). Like SimpleQueue it has
    no __len__ and is always true (emptiness changes under other threads: ask
    qsize() or empty()). shutdown() works as queue.Queue.shutdown (3.13+).
    """

    def __init__(self) -> None: ...
    def put(self, item: _T, block: bool = True, timeout: float | None = None) -> None:
        """Put the item on the queue (never blocks; block and timeout are ignored)."""
    def put_nowait(self, item: _T) -> None:
        """Equivalent to put(item)."""
    def put_many(self, items: Iterable[_T], /) -> None:
        """Put every item of the iterable, in order (those before a failure stay put)."""
    def get(self, block: bool = True, timeout: float | None = None) -> _T:
        """Remove and return an item, waiting as SimpleQueue.get does."""
    def get_nowait(self) -> _T:
        """Remove and return an item if one is immediately available, else raise Empty."""
    def get_many(
        self, max_items: int, block: bool = True, timeout: float | None = None
    ) -> list[_T]:
        """Remove and return 1 to max_items items, waiting as get() does for the first."""
    @overload
    def try_get(self) -> _T | None: ...
    @overload
    def try_get(self, default: _D) -> _T | _D: ...
    def shutdown(self, immediate: bool = False) -> None:
        """Shut down: puts raise ShutDown, gets raise it once drained (at once if immediate)."""
    @property
    def is_shutdown(self) -> bool:
        """True once shutdown() has been called."""
    def empty(self) -> bool:
        """Return True if the queue is empty (exact while no other thread changes it)."""
    def qsize(self) -> int:
        """Return the size of the queue (exact while no other thread changes it)."""
    def __class_getitem__(cls, item: Any, /) -> GenericAlias: ...
