"""
The filesystem driver's writer: appends to an open file from the driver's
thread pool, gathering writes, hashing beside the reactor, starting
writeback early and syncing on close.
"""

import collections
import os

from twisted.internet import defer
from zope.interface import implementer

from spectroreg.bounded import Waiters
from spectroreg.storage import _diskio
from spectroreg.storage.errors import StorageError
from spectroreg.storage.interfaces import IHashingWriter


@implementer(IHashingWriter)
class FileWriter:
    """
    Appends to a file from the pool, one write at a time.

    The file is opened by the first trip to the pool that needs it (the
    first write, or the end), by C{opener} run there: a small upload costs
    one trip, not one to open it and one to write it. C{fd} is an already
    open descriptor instead, if any.

    Writes are gathered up to C{flush_size} bytes before going to a thread;
    C{write()}'s Deferred fires at once while less than C{buffer_limit}
    bytes wait, and otherwise when the disk has caught up. A hasher given
    to L{hash_with} is updated in the same thread, just before each write:
    the reactor thread only moves bytes, and hashing runs beside it.
    """

    # A trip to the pool per MiB; up to 4 MiB wait meanwhile, so that the
    # reactor rarely has to stop reading the client while the disk catches up.
    flush_size = 1024 * 1024
    buffer_limit = 4 * 1024 * 1024

    def __init__(self, driver, path, fd, size, created, durable=True, opener=None):
        self._driver = driver
        self._durable = durable
        self._opener = opener
        self._path = path
        self._fd = fd
        self.size = size
        self._created = created
        self._buffer = collections.deque()
        self._buffered = 0
        self._inflight = False
        self._failure = None
        self._waiters = Waiters()
        self._idle_waiters = Waiters()
        self._ended = None
        self._hasher = None
        self._accepted = False

    def _run(self, function, *args):
        return self._driver._run(self._path, function, *args)

    def hash_with(self, hasher):
        if self._accepted or self._ended is not None:
            # Bytes already taken were not hashed here.
            return False
        self._hasher = hasher
        return True

    def _write_out(self, pieces):
        if self._hasher is not None:
            for piece in pieces:
                self._hasher.update(piece)
        fd = self._descriptor()
        _diskio.write_all(fd, pieces)
        _diskio.start_writeback(fd)

    def _descriptor(self):
        """The file's descriptor, opened now if need be (in the pool: one trip at a time)."""
        if self._fd is None:
            self._fd = self._opener()
        return self._fd

    def _check(self):
        if self._ended is not None:
            raise StorageError("writer already {}".format(self._ended), self._path)
        if self._failure is not None:
            self._failure.raiseException()

    def write(self, data):
        try:
            self._check()
        except Exception:
            return defer.fail()
        if not data:
            return defer.succeed(None)
        self._accepted = True
        self._buffer.append(data)
        self._buffered += len(data)
        self.size += len(data)
        self._flush()
        if self._buffered < self.buffer_limit:
            return defer.succeed(None)
        return self._waiters.wait()

    def _flush(self, force=False):
        if self._inflight or not self._buffer or self._failure is not None:
            return
        if not force and self._buffered < self.flush_size:
            return
        # At most flush_size bytes per trip to the pool (at least one piece),
        # handed over as they came: writev needs no joined copy.
        pieces = []
        taken = 0
        while self._buffer and (not pieces or taken + len(self._buffer[0]) <= self.flush_size):
            piece = self._buffer.popleft()
            pieces.append(piece)
            taken += len(piece)
        self._buffered -= taken
        self._inflight = True
        d = self._run(self._write_out, pieces)
        d.addCallbacks(self._flushed, self._flush_failed)

    def _flushed(self, _):
        self._inflight = False
        self._flush()
        if self._buffered < self.buffer_limit:
            self._waiters.fire(None)
        self._wake_idle()

    def _flush_failed(self, failure):
        self._inflight = False
        self._failure = failure
        self._waiters.fail(failure)
        self._wake_idle()

    def _wake_idle(self):
        if not self._inflight:
            self._idle_waiters.fire(None)

    async def _drain(self):
        """Wait until everything buffered is written (or a write failed)."""
        while self._failure is None and (self._inflight or self._buffer):
            if not self._inflight:
                self._flush(force=True)
            if self._inflight:
                await self._idle_waiters.wait()
        if self._failure is not None:
            self._failure.raiseException()

    def _finish(self, how):
        if self._ended is not None:
            return defer.fail(StorageError("writer already {}".format(self._ended), self._path))
        self._ended = how
        # After a failed write this still releases the descriptor, then fails.
        return defer.ensureDeferred(self._persist())

    async def _persist(self):
        # What is still buffered (less than a flush) goes out in the same
        # trip to the pool as the fsync: a small upload costs one trip.
        try:
            while self._inflight:
                await self._idle_waiters.wait()
            if self._failure is not None:
                self._failure.raiseException()
        except BaseException:
            if self._fd is not None:
                await self._run(os.close, self._fd)
            raise
        pieces = list(self._buffer)
        self._buffer.clear()
        self._buffered = 0
        if self._fd is None and not pieces and not self._created:
            # Appending nothing to a file never opened: nothing to persist.
            return
        await self._run(self._sync_and_close, self._created, pieces)

    def _sync_and_close(self, created, pieces=()):
        fd = self._descriptor()
        try:
            if pieces:
                if self._hasher is not None:
                    for piece in pieces:
                        self._hasher.update(piece)
                _diskio.write_all(fd, pieces)
            if self._durable:
                _diskio.fsync(fd)
        finally:
            os.close(fd)
        if created and self._durable:
            self._driver._flush_dir(os.path.dirname(self._driver._full(self._path)))

    def close(self):
        return self._finish("closed")

    def commit(self):
        return self._finish("committed")

    def cancel(self):
        # A failed write does not prevent cancelling: it is the way out.
        if self._ended is not None:
            return defer.fail(StorageError("writer already {}".format(self._ended), self._path))
        self._ended = "cancelled"
        return defer.ensureDeferred(self._cancel())

    async def _cancel(self):
        try:
            await self._drain()
        except Exception:
            pass
        await self._run(self._close_and_unlink, self._fd)

    def _close_and_unlink(self, fd):
        if fd is not None:
            os.close(fd)
        try:
            os.unlink(self._driver._full(self._path))
        except FileNotFoundError:
            pass
