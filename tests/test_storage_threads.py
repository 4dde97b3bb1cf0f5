"""The disk drivers' thread pool: results, errors, shared calls, stopping."""

import sys
import threading

from twisted.internet import defer, reactor
from twisted.trial import unittest

from spectroreg.storage._threads import LazyThreadPool
from tests.support.asynctest import async_test


class Gate:
    """A call that blocks its worker until the test opens the gate."""

    def __init__(self):
        self.entered = threading.Event()
        self.opened = threading.Event()

    def __call__(self, value=None):
        self.entered.set()
        if not self.opened.wait(10):
            raise RuntimeError("gate never opened")
        return value


async def wait_for(event):
    """Wait (without blocking the reactor) until a thread sets C{event}."""
    for _ in range(1000):
        if event.is_set():
            return
        await deferLater(0.01)
    raise AssertionError("timed out waiting for a worker")


def deferLater(seconds):
    from twisted.internet import task

    return task.deferLater(reactor, seconds, lambda: None)


class ThreadPoolTests(unittest.TestCase):
    def pool(self, maxthreads=4):
        pool = LazyThreadPool(maxthreads, reactor, name="test-pool")
        self.addCleanup(pool.stop)
        return pool

    @async_test
    async def test_result_on_the_reactor_thread(self):
        """A call runs in a worker; its Deferred fires on the reactor thread."""
        pool = self.pool()
        fired_in = []

        def record(value):
            fired_in.append(threading.current_thread())
            return value

        d = pool.run(lambda a, b=0: (threading.current_thread(), a + b), 2, b=3)
        d.addCallback(record)
        worker, total = await d
        self.assertEqual(total, 5)
        self.assertNotEqual(worker, threading.main_thread())
        self.assertEqual(fired_in, [threading.main_thread()])

    @async_test
    async def test_errors_keep_their_type(self):
        pool = self.pool()

        def fail():
            raise FileNotFoundError(2, "gone")

        with self.assertRaises(FileNotFoundError):
            await pool.run(fail)
        # The worker survived the error.
        self.assertEqual(await pool.run(lambda: "still working"), "still working")

    @async_test
    async def test_bounded_and_parallel(self):
        """Never more than maxthreads calls at once, and that many do run together."""
        pool = self.pool(maxthreads=3)
        lock = threading.Lock()
        running, peak = [0], [0]
        all_in = threading.Barrier(3, timeout=10)

        def work():
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            try:
                all_in.wait()
            except threading.BrokenBarrierError:
                pass
            with lock:
                running[0] -= 1

        await defer.gatherResults([pool.run(work) for _ in range(9)], consumeErrors=True)
        self.assertEqual(peak[0], 3)
        self.assertEqual(pool.threads, 3)

    @async_test
    async def test_shared_call_while_queued(self):
        """Calls with the same key made before a worker starts the first share its result."""
        pool = self.pool(maxthreads=1)
        gate = Gate()
        blocker = pool.run(gate)
        await wait_for(gate.entered)  # the only worker is busy
        calls = []

        def read(n):
            calls.append(n)
            return "value-{}".format(len(calls))

        first = pool.run_shared("k", read, 1)
        second = pool.run_shared("k", read, 2)
        other = pool.run_shared("other", read, 3)
        gate.opened.set()
        results = await defer.gatherResults([first, second, other])
        await blocker
        self.assertEqual(calls, [1, 3])
        self.assertEqual(results, ["value-1", "value-1", "value-2"])

    @async_test
    async def test_no_sharing_once_started(self):
        """A call made after the first one started runs again: it sees later writes."""
        pool = self.pool(maxthreads=2)
        state = {"value": "old"}
        gate = Gate()

        def read():
            value = state["value"]
            gate()
            return value

        first = pool.run_shared("k", read)
        await wait_for(gate.entered)  # the first read has started (and read "old")
        state["value"] = "new"  # a write finishing after that read began
        second = pool.run_shared("k", read)
        gate.opened.set()
        self.assertEqual(await defer.gatherResults([first, second]), ["old", "new"])

    @async_test
    async def test_shared_errors(self):
        """Every caller sharing a failed call gets the error."""
        pool = self.pool(maxthreads=1)
        gate = Gate()
        blocker = pool.run(gate)
        await wait_for(gate.entered)

        def fail():
            raise FileNotFoundError(2, "gone")

        calls = [pool.run_shared("k", fail) for _ in range(3)]
        gate.opened.set()
        await blocker
        for d in calls:
            with self.assertRaises(FileNotFoundError):
                await d

    @async_test
    async def test_stop_runs_queued_calls_and_restarts(self):
        """stop() lets queued calls finish; a later run() starts new workers."""
        pool = LazyThreadPool(1, reactor, name="test-pool")
        gate = Gate()
        calls = [pool.run(gate, "blocked")] + [pool.run(lambda n=n: n) for n in range(3)]
        await wait_for(gate.entered)
        # stop() blocks the reactor thread until the worker is done, so the
        # gate is opened from a thread here.
        threading.Timer(0.05, gate.opened.set).start()
        pool.stop()
        self.assertEqual(pool.threads, 0)
        self.assertEqual(await defer.gatherResults(calls), ["blocked", 0, 1, 2])
        self.assertEqual(await pool.run(lambda: "again"), "again")
        self.assertEqual(pool.threads, 1)
        pool.stop()
        self.assertEqual(pool.threads, 0)

    @async_test
    async def test_many_results_one_wake_up(self):
        """Results finished together reach the reactor in one callFromThread."""
        wakes = []

        class CountingReactor:
            def callFromThread(self, function, *args):
                wakes.append(function)
                reactor.callFromThread(function, *args)

            def addSystemEventTrigger(self, *args):
                return reactor.addSystemEventTrigger(*args)

            def removeSystemEventTrigger(self, handle):
                reactor.removeSystemEventTrigger(handle)

        pool = LazyThreadPool(1, CountingReactor(), name="test-pool")
        self.addCleanup(pool.stop)
        gate = Gate()
        blocker = pool.run(gate)
        await wait_for(gate.entered)
        # Hold the reactor thread while the worker finishes everything.
        calls = [pool.run(lambda n=n: n) for n in range(50)]
        gate.opened.set()
        finished = threading.Event()
        pool.run(finished.set)
        finished.wait(10)
        self.assertEqual(await defer.gatherResults(calls), list(range(50)))
        await blocker
        self.assertEqual(len(wakes), 1)

    def test_maxthreads_at_least_one(self):
        self.assertRaises(ValueError, LazyThreadPool, 0, reactor)


class HandOffCostTests(unittest.TestCase):
    """A call handed to an idle worker costs the reactor thread no Python beyond the pool's own."""

    @async_test
    async def test_waking_an_idle_worker(self):
        pool = LazyThreadPool(2, reactor, name="test-pool")
        self.addCleanup(pool.stop)
        await pool.run(lambda: None)  # a worker, idle now
        for _ in range(100):
            if pool._idle:
                break
            await deferLater(0.01)
        called = []

        def profile(frame, event, arg):
            if event == "call":
                called.append("{}:{}".format(frame.f_code.co_filename.rsplit("/", 1)[-1], frame.f_code.co_name))

        sys.setprofile(profile)
        try:
            d = pool.run(lambda: "done")
        finally:
            sys.setprofile(None)
        self.assertEqual(await d, "done")
        # No waking through threading's Python code (Condition.notify and
        # its helpers, per call, holding the interpreter's lock).
        self.assertEqual([name for name in called if name.startswith("threading.py:")], [])
        self.assertIn("_threads.py:run", called)
