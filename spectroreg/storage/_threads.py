"""
A bounded, lazily started thread pool for blocking disk work.

Nothing blocking may run on the reactor thread; drivers hand each blocking
step (often several syscalls batched in one function) to a pool of at most
``maxthreads`` threads. The pool starts on first use and stops when the
reactor shuts down, or when its owner calls ``stop()`` (tests).
"""

from twisted.internet import threads
from twisted.python.threadpool import ThreadPool


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
        self._pool = None
        self._trigger = None

    @property
    def threads(self):
        """The number of worker threads alive now."""
        return 0 if self._pool is None else len(self._pool.threads)

    def run(self, function, *args, **kwargs):
        """Call C{function(*args, **kwargs)} in the pool. @return: a Deferred of its result."""
        if self._pool is None:
            self._pool = ThreadPool(minthreads=0, maxthreads=self.maxthreads, name=self._name)
            self._pool.start()
            self._trigger = self._reactor.addSystemEventTrigger(
                "during", "shutdown", self._shutdown)
        return threads.deferToThreadPool(self._reactor, self._pool, function, *args, **kwargs)

    def _shutdown(self):
        self._trigger = None
        self.stop()

    def stop(self):
        """Stop the workers (waiting for running calls); a later run() starts afresh."""
        pool, self._pool = self._pool, None
        if self._trigger is not None:
            self._reactor.removeSystemEventTrigger(self._trigger)
            self._trigger = None
        if pool is not None:
            pool.stop()
