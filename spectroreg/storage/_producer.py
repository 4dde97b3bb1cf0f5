"""
The push producer behind every driver's ``read``.

A driver supplies two callables: ``read_chunk(n)`` returning up to ``n``
bytes (``b""`` at the end), either directly or as a Deferred (a thread-pool
read, an HTTP body chunk), and ``close()`` releasing the source. The producer
writes chunks into the consumer only while it is not paused, so memory stays
at one chunk plus the consumer's own buffer whatever the file size.

A source that answers synchronously is pumped in a loop: a real transport
pauses the producer from inside ``write()`` once its buffer is full, and a
consumer that never pauses (an in-memory test transport) simply gets
everything at once, which keeps ``treq.testing.StubTreq`` tests synchronous.
"""

from twisted.internet import defer
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IPushProducer
from twisted.python.failure import Failure
from zope.interface import implementer

from spectroreg.storage.errors import StorageError

DEFAULT_CHUNK_SIZE = 256 * 1024


def settle(deferred, written, failure, path):
    """
    Fire a download producer's C{deferred}: with the bytes C{written}, or
    with C{failure} as the producer's callers expect it (L{ConnectionDone}
    when the client went away, L{StorageError} for anything else).
    """
    if failure is None:
        deferred.callback(written)
        return
    if not failure.check(StorageError, ConnectionDone):
        failure = Failure(StorageError("read failed: {}".format(failure.getErrorMessage()), path))
    deferred.errback(failure)


@implementer(IPushProducer)
class ChunkProducer:
    """
    Streams a source into an C{IConsumer}; see the module docstring.

    @ivar deferred: fires with the number of bytes written once the source
        is exhausted (or C{length} bytes were written); fails with
        L{ConnectionDone} after C{stopProducing}, or with the source's error.
    """

    def __init__(self, consumer, read_chunk, close, length=None,
                 chunk_size=DEFAULT_CHUNK_SIZE, path=None):
        self._consumer = consumer
        self._read_chunk = read_chunk
        self._close = close
        self._remaining = length
        self._chunk_size = chunk_size
        self._path = path
        self.written = 0
        self._paused = False
        self._stopped = False
        self._done = False
        self._reading = False
        self._pumping = False
        # A chunk that arrived while the consumer was paused.
        self._held = None
        self.deferred = defer.Deferred()

    def start(self):
        """Register on the consumer and start pushing. @return: L{deferred}."""
        try:
            self._consumer.registerProducer(self, True)
        except Exception:
            # E.g. a request whose connection is already gone.
            self._end(Failure(), unregister=False)
            return self.deferred
        self._pump()
        return self.deferred

    # IPushProducer

    def pauseProducing(self):
        self._paused = True

    def resumeProducing(self):
        if self._done or self._stopped:
            return
        self._paused = False
        self._pump()

    def stopProducing(self):
        if self._done:
            return
        self._stopped = True
        # A read in flight still owns the source (a thread may be inside
        # file.read); the end is reached when it comes back.
        if not self._reading:
            self._finish_stopped()

    # internals

    def _pump(self):
        if self._pumping:
            return
        self._pumping = True
        try:
            while not (self._paused or self._stopped or self._done or self._reading):
                if self._held is not None:
                    data, self._held = self._held, None
                    self._deliver(data)
                    continue
                wanted = self._chunk_size
                if self._remaining is not None:
                    wanted = min(wanted, self._remaining)
                if wanted == 0:
                    self._end(None)
                    break
                try:
                    result = self._read_chunk(wanted)
                except Exception:
                    self._end(Failure())
                    break
                if isinstance(result, defer.Deferred):
                    self._reading = True
                    result.addCallbacks(self._arrived, self._read_failed)
                else:
                    self._deliver(result)
        finally:
            self._pumping = False

    def _arrived(self, data):
        self._reading = False
        if self._stopped:
            self._finish_stopped()
            return
        # Delivered by the pump, which waits while the consumer is paused.
        self._held = data
        self._pump()

    def _read_failed(self, failure):
        self._reading = False
        if self._stopped:
            self._finish_stopped()
            return
        self._end(failure)

    def _deliver(self, data):
        if not data:
            self._end(None)
            return
        self.written += len(data)
        if self._remaining is not None:
            self._remaining -= len(data)
        try:
            self._consumer.write(data)
        except Exception:
            self._end(Failure())

    def _finish_stopped(self):
        # The consumer stopped us (the client went away): it must not be
        # touched again, so no unregisterProducer (as twisted.web.static does).
        self._end(Failure(ConnectionDone("consumer stopped the read")), unregister=False)

    def _end(self, failure, unregister=True):
        if self._done:
            return
        self._done = True
        try:
            self._close()
        except Exception:
            pass
        if unregister:
            try:
                self._consumer.unregisterProducer()
            except Exception:
                pass
        settle(self.deferred, self.written, failure, self._path)
