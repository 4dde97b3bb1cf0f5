"""
A bounded, lazily started thread pool for blocking disk work.

Nothing blocking may run on the reactor thread; drivers hand each blocking
step (often several syscalls batched in one function) to a pool of at most
``maxthreads`` threads. The pool starts on first use and stops when the
reactor shuts down, or when its owner calls ``stop()`` (tests).

Most calls are tiny (open and read a 71-byte link file), so the hand-off
itself is what costs: the pool keeps it to one lock, one put on a queue
implemented in C (an idle worker blocked on it wakes without running any
Python code to do so, unlike a ``threading.Condition``), and one
``callFromThread`` for every batch of finished calls rather than one per
call. Results reach their Deferreds on the reactor thread in the order the
calls finished.

``run_shared`` lets callers that ask for the same thing at once share one
call: a request joins a queued call with the same key as long as no worker
has started it yet, so its result still reflects every write that finished
before the request was made. Many clients pulling one tag then cost one
read of its link file, not one each.
"""

import queue
import threading

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure


class LazyThreadPool:
    """
    Runs blocking callables in at most C{maxthreads} threads.

    @param reactor: the reactor results are delivered on.
    """

    def __init__(self, maxthreads, reactor, name="spectroreg-storage"):
        if maxthreads < 1:
            raise ValueError("maxthreads must be at least 1, not {!r}".format(maxthreads))
        self.maxthreads = maxthreads
        self._reactor = reactor
        self._name = name
        self._lock = threading.Lock()
        # Jobs, and one None per worker to stop.
        self._jobs = queue.SimpleQueue()
        self._queued = {}  # key -> job not started yet, for run_shared
        self._finished = []
        self._delivery_pending = False
        self._workers = []
        self._idle = 0  # workers waiting on the queue that no queued job is meant for yet
        self._trigger = None

    @property
    def threads(self):
        """The number of worker threads alive now."""
        return len(self._workers)

    def run(self, function, *args, **kwargs):
        """Call C{function(*args, **kwargs)} in the pool. @return: a Deferred of its result."""
        d = Deferred()
        with self._lock:
            self._submit([[d], function, args, kwargs, None])
        return d

    def run_shared(self, key, function, *args):
        """
        Like L{run}, but a call made while another call with the same
        (hashable) C{key} is queued and not yet started gets that call's
        result instead of running again. C{key} must fully determine the
        call.
        """
        d = Deferred()
        with self._lock:
            queued = self._queued.get(key)
            if queued is not None:
                queued[0].append(d)
            else:
                self._queued[key] = job = [[d], function, args, {}, key]
                self._submit(job)
        return d

    def _submit(self, job):
        """Queue C{job} and wake or start a worker for it; the lock is held."""
        if self._trigger is None:
            self._trigger = self._reactor.addSystemEventTrigger("during", "shutdown", self._shutdown)
        self._jobs.put(job)
        if self._idle:
            self._idle -= 1
        elif len(self._workers) < self.maxthreads:
            worker = threading.Thread(
                target=self._worker, name="{}-{}".format(self._name, len(self._workers)), daemon=True)
            self._workers.append(worker)
            worker.start()

    def _worker(self):
        lock, jobs, finished = self._lock, self._jobs, self._finished
        while True:
            job = jobs.get()
            if job is None:
                return
            waiters, function, args, kwargs, key = job
            del job
            if key is not None:
                with lock:
                    # From now on a shared call with this key runs anew.
                    del self._queued[key]
            try:
                outcome = (waiters, True, function(*args, **kwargs))
            except BaseException:
                outcome = (waiters, False, Failure())
            del waiters, function, args, kwargs
            with lock:
                finished.append(outcome)
                wake = not self._delivery_pending
                self._delivery_pending = True
                self._idle += 1
            del outcome
            if wake:
                self._reactor.callFromThread(self._deliver)

    def _deliver(self):
        with self._lock:
            batch = self._finished[:]
            del self._finished[:]
            self._delivery_pending = False
        for waiters, succeeded, value in batch:
            for d in waiters:
                if succeeded:
                    d.callback(value)
                else:
                    d.errback(value)

    def _shutdown(self):
        self._trigger = None
        self.stop()

    def stop(self):
        """Stop the workers once the queued calls have run; a later run() starts afresh."""
        if self._trigger is not None:
            self._reactor.removeSystemEventTrigger(self._trigger)
            self._trigger = None
        with self._lock:
            workers, self._workers = self._workers, []
            self._idle = 0
            for _ in workers:
                # After every job queued so far: those run first.
                self._jobs.put(None)
        for worker in workers:
            worker.join()
        with self._lock:
            # The stopped workers counted themselves idle after their last job.
            self._idle = 0
