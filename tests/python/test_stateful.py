"""Stateful property tests (hypothesis): random sequences of every method,
single-threaded, each checked against a reference model after every step.

- LockFreeQueue against queue.SimpleQueue (the type it replaces), every
  method: put/put_nowait/put_many, the non-blocking and (when an item is
  there) blocking gets, get_many, try_get, shutdown, qsize/empty/is_shutdown.
- LockFreeStack against a list.

Items are returned by identity: a container must give back the very object
that went in. Example counts are bounded so that the file runs in seconds.
"""

import queue

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from concurrent_collections import Empty, LockFreeQueue, LockFreeStack, ShutDown

SETTINGS = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    database=None,  # nothing written into the checkout
    suppress_health_check=[HealthCheck.too_slow],
)

# Unhashable, mutable, None, equal-but-distinct values: identity is checked.
items = st.one_of(
    st.integers(),
    st.text(max_size=5),
    st.none(),
    st.lists(st.integers(), max_size=3),
    st.builds(object),
    st.floats(allow_nan=True),
)
defaults = st.one_of(st.none(), st.integers(), st.builds(object))


class QueueMachine(RuleBasedStateMachine):
    """The model is a SimpleQueue plus a shutdown state (SimpleQueue has no
    shutdown; the queue follows queue.Queue.shutdown of 3.13)."""

    def __init__(self):
        super().__init__()
        self.q = LockFreeQueue()
        self.model = queue.SimpleQueue()
        self.shut = False

    def model_get(self):
        """The model's next item, or the sentinel Empty when there is none."""
        try:
            return self.model.get_nowait()
        except queue.Empty:
            return Empty

    def check_put(self, call, *items):
        if self.shut:
            with pytest.raises(ShutDown):
                call()
            return
        call()
        for item in items:
            self.model.put(item)

    def expect_empty(self, call):
        """An empty queue raises Empty when open, ShutDown once shut down."""
        with pytest.raises(ShutDown if self.shut else Empty):
            call()

    @rule(item=items)
    def put(self, item):
        self.check_put(lambda: self.q.put(item), item)

    @rule(item=items, block=st.booleans(), timeout=st.sampled_from([None, 0, 0.5]))
    def put_with_args(self, item, block, timeout):
        self.check_put(lambda: self.q.put(item, block, timeout), item)

    @rule(item=items)
    def put_nowait(self, item):
        self.check_put(lambda: self.q.put_nowait(item), item)

    @rule(batch=st.lists(items, max_size=6), as_iterator=st.booleans())
    def put_many(self, batch, as_iterator):
        arg = iter(batch) if as_iterator else batch
        self.check_put(lambda: self.q.put_many(arg), *batch)

    @precondition(lambda self: not self.shut)
    @rule(batch=st.lists(items, max_size=6))
    def put_many_iteration_fails(self, batch):
        # The items before the failure are put, the exception propagates.
        class Boom(Exception):
            pass

        def gen():
            yield from batch
            raise Boom

        with pytest.raises(Boom):
            self.q.put_many(gen())
        for item in batch:
            self.model.put(item)

    @rule(how=st.sampled_from(["get_nowait", "block=False", "timeout=0"]))
    def get_without_waiting(self, how):
        expected = self.model_get()
        call = {
            "get_nowait": self.q.get_nowait,
            "block=False": lambda: self.q.get(block=False),
            "timeout=0": lambda: self.q.get(timeout=0),
        }[how]
        if expected is Empty:
            self.expect_empty(call)
        else:
            assert call() is expected

    @precondition(lambda self: not self.model.empty())
    @rule()
    def get_blocking_when_not_empty(self):
        assert self.q.get() is self.model.get()

    @rule(default=defaults, pass_default=st.booleans())
    def try_get(self, default, pass_default):
        expected = self.model_get()
        call = (lambda: self.q.try_get(default)) if pass_default else self.q.try_get
        if expected is Empty and self.shut:
            with pytest.raises(ShutDown):
                call()
        elif expected is Empty:
            assert call() is (default if pass_default else None)
        else:
            assert call() is expected

    @rule(max_items=st.integers(1, 8), how=st.sampled_from(["block", "block=False", "timeout=0"]))
    def get_many(self, max_items, how):
        if how == "block" and self.model.empty():
            return  # it would wait for ever
        kwargs = {"block": {}, "block=False": {"block": False}, "timeout=0": {"timeout": 0}}[how]
        expected = []
        while len(expected) < max_items and not self.model.empty():
            expected.append(self.model.get())
        if not expected:
            self.expect_empty(lambda: self.q.get_many(max_items, **kwargs))
            return
        got = self.q.get_many(max_items, **kwargs)
        assert type(got) is list
        assert len(got) == len(expected)
        assert all(a is b for a, b in zip(got, expected, strict=True))

    @rule(bad=st.sampled_from([0, -1, -(2**70)]))
    def get_many_rejects_max_items_below_one(self, bad):
        with pytest.raises(ValueError, match="max_items"):
            self.q.get_many(bad, block=False)

    @rule(bad=st.sampled_from([1.0, "2", None]))
    def get_many_rejects_non_int(self, bad):
        with pytest.raises(TypeError):
            self.q.get_many(bad, block=False)

    # Rare: one draw in eight shuts down, so most runs see the open queue too.
    @rule(draw=st.integers(0, 7), immediate=st.booleans())
    def shutdown(self, draw, immediate):
        if draw:
            return
        self.q.shutdown(immediate=immediate)
        self.shut = True
        if immediate:  # the items left are discarded
            while not self.model.empty():
                self.model.get()

    @invariant()
    def state_agrees(self):
        assert self.q.qsize() == self.model.qsize()
        assert self.q.empty() == self.model.empty()
        assert self.q.is_shutdown is self.shut


class StackMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.s = LockFreeStack()
        self.model = []

    @rule(item=items)
    def push(self, item):
        self.s.push(item)
        self.model.append(item)

    @rule()
    def pop(self):
        if not self.model:
            with pytest.raises(Empty):
                self.s.pop()
            return
        assert self.s.pop() is self.model.pop()

    @rule(default=defaults, pass_default=st.booleans())
    def try_pop(self, default, pass_default):
        got = self.s.try_pop(default) if pass_default else self.s.try_pop()
        if not self.model:
            assert got is (default if pass_default else None)
        else:
            assert got is self.model.pop()

    @invariant()
    def sizes_agree(self):
        assert len(self.s) == len(self.model)
        assert bool(self.s) == bool(self.model)


TestQueueAgainstSimpleQueue = QueueMachine.TestCase
TestQueueAgainstSimpleQueue.settings = SETTINGS
TestStackAgainstList = StackMachine.TestCase
TestStackAgainstList.settings = SETTINGS


def test_empty_is_both_queue_empty_and_index_error():
    # The machines above expect this one class from both containers.
    assert issubclass(Empty, queue.Empty)
    assert issubclass(Empty, IndexError)
