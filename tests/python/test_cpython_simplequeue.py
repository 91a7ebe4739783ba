"""CPython's own SimpleQueue tests (Lib/test/test_queue.py), unchanged, run
against LockFreeQueue. Skipped where the interpreter ships without its test
package (Debian's python3 needs libpython3.X-testsuite)."""

import queue
import unittest

import pytest

from concurrent_collections import LockFreeQueue

tq = pytest.importorskip("test.test_queue")


class LockFreeQueueCPythonSimpleQueueTest(tq.BaseSimpleQueueTest, unittest.TestCase):
    # The queue module whose exceptions the tests expect: the one imported
    # normally (test_queue's own c_queue/py_queue are fresh copies, with
    # exception classes of their own).
    queue = queue

    def setUp(self):
        self.type2test = LockFreeQueue
        super().setUp()

    # CPython runs its reentrancy test (bpo-14976) on the C SimpleQueue only.
    test_reentrancy = tq.CSimpleQueueTest.test_reentrancy
