"""Stateful property tests (hypothesis): random sequences of every method,
single-threaded, each checked against a reference model after every step.

- LockFreeQueue against queue.SimpleQueue (the type it replaces).
- LockFreeStack against a list.

Items are returned by identity: a container must give back the very object
that went in. Example counts are bounded so that the file runs in seconds.
"""

import queue

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from concurrent_collections import Empty, LockFreeQueue, LockFreeStack

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
    def __init__(self):
        super().__init__()
        self.q = LockFreeQueue()
        self.model = queue.SimpleQueue()

    def model_get(self):
        """The model's next item, or the sentinel Empty when there is none."""
        try:
            return self.model.get_nowait()
        except queue.Empty:
            return Empty

    @rule(item=items)
    def put(self, item):
        self.q.put(item)
        self.model.put(item)

    @rule(item=items, block=st.booleans(), timeout=st.sampled_from([None, 0, 0.5]))
    def put_with_args(self, item, block, timeout):
        self.q.put(item, block, timeout)
        self.model.put(item, block, timeout)

    @rule(item=items)
    def put_nowait(self, item):
        self.q.put_nowait(item)
        self.model.put_nowait(item)

    @rule(how=st.sampled_from(["get_nowait", "block=False", "timeout=0"]))
    def get_without_waiting(self, how):
        expected = self.model_get()
        call = {
            "get_nowait": self.q.get_nowait,
            "block=False": lambda: self.q.get(block=False),
            "timeout=0": lambda: self.q.get(timeout=0),
        }[how]
        if expected is Empty:
            with pytest.raises(queue.Empty):
                call()
        else:
            assert call() is expected

    @precondition(lambda self: not self.model.empty())
    @rule()
    def get_blocking_when_not_empty(self):
        assert self.q.get() is self.model.get()

    @rule(default=defaults, pass_default=st.booleans())
    def try_get(self, default, pass_default):
        expected = self.model_get()
        got = self.q.try_get(default) if pass_default else self.q.try_get()
        if expected is Empty:
            assert got is (default if pass_default else None)
        else:
            assert got is expected

    @invariant()
    def sizes_agree(self):
        assert self.q.qsize() == self.model.qsize()
        assert self.q.empty() == self.model.empty()


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


def test_empty_is_an_index_error():
    # The stack's Empty is what pop() raises above; it must stay an IndexError.
    assert issubclass(Empty, IndexError)
