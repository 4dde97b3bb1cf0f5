"""
Streamed reads (the TLS download path) from the page cache on the calling
thread, from the disk in the pool (spectroreg.storage._cachedread), and the
filesystem driver using them.
"""

import hashlib
import os
import threading

from twisted.internet import defer, reactor
from twisted.internet.testing import StringTransport
from twisted.trial import unittest

from spectroreg.storage import _cachedread, _sendfile
from spectroreg.storage.filesystem import FilesystemDriver
from tests.support.asynctest import async_test

MIB = 1024 * 1024


def _evict(path):
    """Drop C{path} from the page cache; skip the test when the kernel keeps it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        if _sendfile.resident(fd, 0, os.fstat(fd).st_size):
            raise unittest.SkipTest("the kernel kept the file cached")
    finally:
        os.close(fd)


class _Consumer:
    """An IConsumer over StringTransport that records the thread of every write."""

    def __init__(self):
        self.transport = StringTransport()
        self.threads = []

    def registerProducer(self, producer, streaming):
        self.transport.registerProducer(producer, streaming)

    def unregisterProducer(self):
        self.transport.unregisterProducer()

    def write(self, data):
        self.threads.append(threading.current_thread() is threading.main_thread())
        self.transport.write(data)


class CachedReadsTests(unittest.TestCase):
    def setUp(self):
        self.path = os.path.abspath(self.mktemp())
        self.data = os.urandom(5 * MIB + 77)
        with open(self.path, "wb") as handle:
            handle.write(self.data)
        self.fd = os.open(self.path, os.O_RDONLY)
        self.addCleanup(os.close, self.fd)
        self.threaded = []

    def _in_thread(self, function, *args):
        self.threaded.append(args)
        return defer.succeed(function(*args))

    def test_cached_bytes_read_directly(self):
        """A file in the page cache: every chunk is bytes at once, no thread."""
        os.pread(self.fd, len(self.data), 0)  # cached
        reads = _cachedread.CachedReads(self.fd, 100, len(self.data), self._in_thread)
        chunks = []
        while True:
            chunk = reads(256 * 1024)
            self.assertIsInstance(chunk, bytes)
            if not chunk:
                break
            chunks.append(chunk)
        self.assertEqual(b"".join(chunks), self.data[100:])
        self.assertEqual(self.threaded, [])
        self.assertEqual(reads.direct, len(self.data) - 100)

    def test_missing_bytes_read_in_the_pool(self):
        """A file not in the page cache: the pool reads it, in order."""
        _evict(self.path)
        reads = _cachedread.CachedReads(self.fd, 0, len(self.data), self._in_thread)
        first = reads(64 * 1024)
        self.assertIsInstance(first, defer.Deferred)
        self.assertEqual(self.successResultOf(first), self.data[:64 * 1024])
        self.assertEqual(len(self.threaded), 1)
        second = reads(64 * 1024)
        if isinstance(second, defer.Deferred):
            second = self.successResultOf(second)
        self.assertEqual(second, self.data[64 * 1024:128 * 1024])


class DriverStreamingTests(unittest.TestCase):
    """FilesystemDriver.read into a consumer that is not a plain TCP response."""

    def setUp(self):
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(self.root)
        self.driver = FilesystemDriver(self.root, reactor=reactor)
        self.addCleanup(self.driver.close)
        self.data = os.urandom(3 * MIB + 5)
        with open(os.path.join(self.root, "blob"), "wb") as handle:
            handle.write(self.data)

    @async_test
    async def test_cached_blob_streams_without_the_pool(self):
        consumer = _Consumer()
        await self.driver.read("/blob", consumer)  # warms the cache
        pool = self.driver._pool
        calls = []
        real = pool.run

        def counting(function, *args):
            calls.append(function)
            return real(function, *args)

        self.patch(pool, "run", counting)
        consumer = _Consumer()
        written = await self.driver.read("/blob", consumer, 1000, 2 * MIB)
        self.assertEqual(written, 2 * MIB)
        self.assertEqual(consumer.transport.value(), self.data[1000:1000 + 2 * MIB])
        # The open only; every chunk read on the reactor thread.
        self.assertEqual(len(calls), 1)
        self.assertTrue(all(consumer.threads))

    @async_test
    async def test_cold_blob_streams_through_the_pool(self):
        _evict(os.path.join(self.root, "blob"))
        consumer = _Consumer()
        written = await self.driver.read("/blob", consumer)
        self.assertEqual(written, len(self.data))
        self.assertEqual(hashlib.sha256(consumer.transport.value()).digest(),
                         hashlib.sha256(self.data).digest())
