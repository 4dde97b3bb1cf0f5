"""
Tests for L{spectroreg.bounded}.
"""

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from spectroreg.bounded import LRU, Waiters


class LRUTests(TestCase):
    def test_capacity(self):
        lru = LRU(2)
        lru.put("a", 1)
        lru.put("b", 2)
        lru.put("c", 3)
        self.assertEqual(lru.keys(), ["b", "c"])
        self.assertIsNone(lru.get("a"))
        self.assertEqual(len(lru), 2)

    def test_get_refreshes(self):
        lru = LRU(2)
        lru.put("a", 1)
        lru.put("b", 2)
        self.assertEqual(lru.get("a"), 1)
        lru.put("c", 3)
        self.assertEqual(lru.keys(), ["a", "c"])

    def test_peek_does_not_refresh(self):
        lru = LRU(2)
        lru.put("a", 1)
        lru.put("b", 2)
        self.assertEqual(lru.peek("a"), 1)
        lru.put("c", 3)
        self.assertEqual(lru.keys(), ["b", "c"])

    def test_pop_default_and_contains(self):
        lru = LRU(3)
        lru.put("a", 1)
        self.assertIn("a", lru)
        self.assertEqual(lru.pop("a"), 1)
        self.assertNotIn("a", lru)
        self.assertEqual(lru.pop("a", "gone"), "gone")
        self.assertEqual(lru.get("a", 0), 0)

    def test_pop_oldest(self):
        lru = LRU(3)
        lru.put("a", 1)
        lru.put("b", 2)
        lru.get("a")
        self.assertEqual(lru.pop_oldest(), ("b", 2))
        self.assertEqual(lru.pop_oldest(), ("a", 1))
        self.assertRaises(KeyError, lru.pop_oldest)


class WaitersTests(TestCase):
    def test_fire_all_in_order(self):
        waiters = Waiters()
        fired = []
        for n in range(3):
            waiters.wait().addCallback(lambda r, n=n: fired.append((n, r)))
        self.assertEqual(len(waiters), 3)
        waiters.fire("x")
        self.assertEqual(fired, [(0, "x"), (1, "x"), (2, "x")])
        self.assertFalse(waiters)

    def test_added_while_firing_waits_for_next(self):
        waiters = Waiters()
        fired = []

        def again(_):
            waiters.wait().addCallback(lambda r: fired.append(r))

        waiters.wait().addCallback(again)
        waiters.fire(1)
        self.assertEqual(fired, [])
        waiters.fire(2)
        self.assertEqual(fired, [2])

    def test_fail(self):
        waiters = Waiters()
        d = waiters.wait()
        waiters.fail(Failure(ValueError("no")))
        self.failureResultOf(d, ValueError)

    def test_cancelled_waiter_is_forgotten(self):
        waiters = Waiters()
        first, second = waiters.wait(), waiters.wait()
        first.cancel()
        self.failureResultOf(first, defer.CancelledError)
        self.assertEqual(len(waiters), 1)
        waiters.fire("x")
        self.assertEqual(self.successResultOf(second), "x")

    def test_cancel_all(self):
        waiters = Waiters()
        d = waiters.wait()
        waiters.cancel_all()
        self.failureResultOf(d, defer.CancelledError)
        self.assertFalse(waiters)
        waiters.fire(None)  # nothing left to fire twice
