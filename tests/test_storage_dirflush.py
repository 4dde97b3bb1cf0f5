"""
L{spectroreg.storage._dirflush.DirectoryFlushes}: which calls flush, which
wait for another's flush, and which return at once; with a recording flush
function and real threads.
"""

import threading

from twisted.trial import unittest

from spectroreg.storage._dirflush import DirectoryFlushes

WAIT = 10


class _Flusher:
    """The flush function: records each call; C{hold()} makes the next calls wait for C{release()}."""

    def __init__(self):
        self.calls = []
        self.failures = []
        self._lock = threading.Lock()
        self._gate = None
        self.entered = threading.Semaphore(0)

    def hold(self):
        self._gate = threading.Event()

    def release(self):
        if self._gate is not None:
            self._gate.set()

    def fail_next(self, error):
        self.failures.append(error)

    def __call__(self, directory):
        with self._lock:
            self.calls.append(directory)
            failure = self.failures.pop(0) if self.failures else None
        self.entered.release()
        gate = self._gate
        if gate is not None:
            gate.wait(WAIT)
        if failure is not None:
            raise failure


class DirectoryFlushesTests(unittest.TestCase):
    def setUp(self):
        self.flusher = _Flusher()
        self.addCleanup(self.flusher.release)
        self.flushes = DirectoryFlushes(self.flusher)

    def call_in_thread(self, directory):
        """flush(directory) in a thread: (returned event, outcome list)."""
        returned = threading.Event()
        outcome = []

        def run():
            try:
                self.flushes.flush(directory)
                outcome.append(None)
            except Exception as error:
                outcome.append(error)
            returned.set()

        thread = threading.Thread(target=run)
        thread.start()
        self.addCleanup(thread.join)
        return returned, outcome

    def test_flushes_after_a_change(self):
        self.flushes.changed("/d")
        self.flushes.flush("/d")
        self.assertEqual(self.flusher.calls, ["/d"])

    def test_no_second_flush_without_a_change(self):
        """A flush that began after the last change covers every later call, until the next change."""
        self.flushes.changed("/d")
        self.flushes.flush("/d")
        self.flushes.flush("/d")
        self.assertEqual(self.flusher.calls, ["/d"])
        self.flushes.changed("/d")
        self.flushes.flush("/d")
        self.assertEqual(self.flusher.calls, ["/d", "/d"])

    def test_directories_apart(self):
        self.flushes.changed("/a", "/b")
        self.flushes.flush("/a")
        self.flushes.flush("/b")
        self.flushes.flush("/a")
        self.assertEqual(self.flusher.calls, ["/a", "/b"])

    def test_unknown_directory_is_flushed(self):
        """A directory with no change reported (made by another process, or forgotten) is flushed when asked."""
        self.flushes.flush("/other")
        self.assertEqual(self.flusher.calls, ["/other"])

    def test_waits_for_a_flush_that_began_after_the_change(self):
        self.flushes.changed("/d")
        self.flusher.hold()
        first, _ = self.call_in_thread("/d")
        self.assertTrue(self.flusher.entered.acquire(timeout=WAIT))
        second, outcome = self.call_in_thread("/d")
        # The second call relies on the first's flush: it neither flushes
        # nor returns before that flush has.
        self.assertFalse(second.wait(0.3))
        self.assertEqual(self.flusher.calls, ["/d"])
        self.flusher.release()
        self.assertTrue(first.wait(WAIT))
        self.assertTrue(second.wait(WAIT))
        self.assertEqual(outcome, [None])
        self.assertEqual(self.flusher.calls, ["/d"])

    def test_change_after_a_flush_began_needs_its_own(self):
        self.flushes.changed("/d")
        self.flusher.hold()
        first, _ = self.call_in_thread("/d")
        self.assertTrue(self.flusher.entered.acquire(timeout=WAIT))
        # A name made while that flush runs: not covered by it.
        self.flushes.changed("/d")
        second, _ = self.call_in_thread("/d")
        self.assertTrue(self.flusher.entered.acquire(timeout=WAIT))
        self.assertEqual(self.flusher.calls, ["/d", "/d"])
        # And a third call now waits for the second flush, not the first.
        third, _ = self.call_in_thread("/d")
        self.assertFalse(third.wait(0.3))
        self.flusher.release()
        for returned in (first, second, third):
            self.assertTrue(returned.wait(WAIT))
        self.assertEqual(self.flusher.calls, ["/d", "/d"])
        # Both flushes are done: nothing left to flush.
        self.flushes.flush("/d")
        self.assertEqual(len(self.flusher.calls), 2)

    def test_failed_flush_covers_no_one(self):
        """The caller of a flush that failed gets its error; a caller that waited for it flushes itself."""
        self.flushes.changed("/d")
        self.flusher.fail_next(OSError(5, "EIO"))
        self.flusher.hold()
        first, first_outcome = self.call_in_thread("/d")
        self.assertTrue(self.flusher.entered.acquire(timeout=WAIT))
        second, second_outcome = self.call_in_thread("/d")
        self.assertFalse(second.wait(0.3))
        self.flusher.release()
        self.assertTrue(first.wait(WAIT))
        self.assertTrue(second.wait(WAIT))
        self.assertIsInstance(first_outcome[0], OSError)
        self.assertEqual(second_outcome, [None])
        self.assertEqual(self.flusher.calls, ["/d", "/d"])
        # The second flush succeeded: it covers the change.
        self.flushes.flush("/d")
        self.assertEqual(len(self.flusher.calls), 2)

    def test_failed_flush_is_not_remembered(self):
        self.flushes.changed("/d")
        self.flusher.fail_next(OSError(28, "ENOSPC"))
        self.assertRaises(OSError, self.flushes.flush, "/d")
        self.flushes.flush("/d")
        self.assertEqual(self.flusher.calls, ["/d", "/d"])

    def test_bounded(self):
        """At most C{capacity} directories are remembered; a forgotten one is flushed when asked."""
        flushes = DirectoryFlushes(self.flusher, capacity=2)
        for directory in ("/a", "/b", "/c"):
            flushes.changed(directory)
            flushes.flush(directory)
        flushes.flush("/c")
        self.assertEqual(self.flusher.calls, ["/a", "/b", "/c"])
        flushes.flush("/a")
        self.assertEqual(self.flusher.calls, ["/a", "/b", "/c", "/a"])
