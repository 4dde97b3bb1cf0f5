"""
Fair sharing of a few worker slots between client addresses.

bcrypt is slow on purpose, and a few checks at a time keep every core busy.
With one first-come-first-served queue, an address that sends hundreds of
guesses at once fills the queue, and every other client's first login waits
behind all of them (or is refused when the queue is full). Here each key (a
client address) has its own queue, and each slot that frees up takes the
next job of the key served least recently (round-robin, with a key that
has just come counted as never served): a job waits behind at most one job
of every other key that has work queued, however much work those keys
have. How much work one key may queue is for the caller to bound.
"""

from collections import deque

from twisted.internet import defer
from twisted.python.failure import Failure

from spectroreg.auth.interfaces import TooManyRequests


class FairScheduler:
    """
    @param run: C{callable(function, *args) -> Deferred} that runs one job
        (e.g. in a thread pool).
    @param limit: how many jobs run at once.
    @param max_waiting: how many jobs may wait, over all keys; beyond it
        L{submit} fails with L{TooManyRequests}.
    """

    def __init__(self, run, limit, max_waiting=256):
        if limit < 1:
            raise ValueError("limit must be at least 1, not {!r}".format(limit))
        self._run = run
        self.limit = limit
        self.max_waiting = max_waiting
        self.running = 0
        self.waiting = 0
        # key -> deque of [Deferred, function, args]; keys in order of
        # arrival (a dict keeps its insertion order).
        self._queues = {}
        # key -> (number of the last job started for it, jobs running), for
        # every key with work queued or running.
        self._served = {}
        self._started = 0

    def full(self):
        """True when a job submitted now would be refused."""
        return self.running >= self.limit and self.waiting >= self.max_waiting

    def submit(self, key, function, *args):
        """
        Run C{function(*args)} when a slot is free and C{key}'s turn comes.

        @return: a Deferred of its result; cancelling it before the job has
            started takes the job out of the queue.
        """
        if self.full():
            return defer.fail(TooManyRequests(1))
        job = [None, function, args]

        def cancel(d):
            queue = self._queues.get(key)
            if queue is not None and job in queue:
                queue.remove(job)
                self.waiting -= 1
                if not queue:
                    del self._queues[key]
                    if self._served.get(key, (0, 0))[1] == 0:
                        self._served.pop(key, None)

        job[0] = defer.Deferred(cancel)
        result = job[0]
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
        queue.append(job)
        self.waiting += 1
        self._start()
        return result

    def _next_key(self):
        # The least recently served; among equals (keys never served), the
        # first to arrive.
        return min(self._queues, key=lambda key: self._served.get(key, (0, 0))[0])

    def _start(self):
        while self.running < self.limit and self._queues:
            key = self._next_key()
            queue = self._queues[key]
            d, function, args = queue.popleft()
            self.waiting -= 1
            if not queue:
                del self._queues[key]
            self._started += 1
            self._served[key] = (self._started, self._served.get(key, (0, 0))[1] + 1)
            self.running += 1
            try:
                work = self._run(function, *args)
            except Exception:
                work = defer.fail()
            work.addBoth(self._finished, key, d)

    def _finished(self, result, key, d):
        self.running -= 1
        last, running = self._served[key]
        if running == 1 and key not in self._queues:
            # Nothing left of this key: forget it.
            del self._served[key]
        else:
            self._served[key] = (last, running - 1)
        self._start()
        if d.called:
            # Cancelled while it ran; its result has nobody to go to.
            return None
        if isinstance(result, Failure):
            d.errback(result)
        else:
            d.callback(result)
        return None
