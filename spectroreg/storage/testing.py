"""
The shared storage driver test suite, and test doubles for drivers' readers.

Every driver passes ``StorageDriverTestsMixin``; a driver's own test module
is a few lines::

    class InMemoryDriverTests(StorageDriverTestsMixin, unittest.TestCase):
        def make_driver(self):
            return InMemoryDriver()

``make_driver`` returns a driver (or a Deferred or coroutine of one) over an
empty store and registers its own cleanup. The suite wraps it in
``ValidatingDriver`` (as the factory does) unless it already is one. Each
test works below its own top-level directory, removes it at the end and
checks that the store's root is back to what it was, so a driver that leaves
temporary files visible fails. Drivers with a real tree underneath override
``assert_nothing_left`` to look there as well.

The big-stream test writes ``SPECTROREG_STORAGE_STREAM_MIB`` MiB (default
128, what CI runs); set it lower for quick local runs.
"""

import hashlib
import inspect
import os
import random
import time
import uuid

from twisted.internet import defer, task
from twisted.internet.error import ConnectionClosed
from twisted.internet.interfaces import IConsumer
from zope.interface import implementer
from zope.interface.verify import verifyObject

from spectroreg.storage.base import ValidatingDriver
from spectroreg.testing import async_test
from spectroreg.storage.errors import InvalidOffset, InvalidPath, PathNotFound, StorageError
from spectroreg.storage.interfaces import SKIP_DIR, FileInfo, IFileWriter, IStorageDriver

MiB = 1024 * 1024




def stream_size():
    """Bytes the big-stream test writes (env SPECTROREG_STORAGE_STREAM_MIB, default 128 MiB)."""
    return int(float(os.environ.get("SPECTROREG_STORAGE_STREAM_MIB", "128")) * MiB)


def deterministic_chunks(total, seed=0, sizes=(MiB, 65537, 3 * MiB + 1, 4096, 777)):
    """
    Yield chunks summing to C{total} bytes, the same for the same C{seed}.

    Each chunk starts with its index, so a lost, repeated or reordered chunk
    changes the stream's digest; irregular sizes cross every driver's
    internal buffer boundaries. Memory: one 4 MiB pattern block.
    """
    pattern = random.Random(seed).randbytes(4 * MiB + 8)
    index = 0
    remaining = total
    while remaining > 0:
        size = min(sizes[index % len(sizes)], remaining)
        start = (index * 7919) % (len(pattern) - size) if size < len(pattern) else 0
        chunk = (index.to_bytes(8, "big") + pattern[start:start + size])[:size]
        yield chunk
        remaining -= size
        index += 1


def deterministic_digest(total, seed=0):
    """sha256 hex digest of C{deterministic_chunks(total, seed)}."""
    digest = hashlib.sha256()
    for chunk in deterministic_chunks(total, seed):
        digest.update(chunk)
    return digest.hexdigest()


@implementer(IConsumer)
class HashingConsumer:
    """
    An C{IConsumer} that hashes what it gets (keeping it only if asked) and
    checks the producer's manners: streaming, nothing written while paused.

    @param pause_every: pause the producer after this many writes and resume
        it C{resume_delay} seconds later (a slow client).
    @param stop_after: call C{stopProducing} after this many bytes.
    """

    def __init__(self, keep=False, pause_every=None, resume_delay=0.0, reactor=None,
                 stop_after=None):
        self.hash = hashlib.sha256()
        self.size = 0
        self.chunks = [] if keep else None
        self.producer = None
        self.streaming = None
        self.registered = 0
        self.unregistered = 0
        self.paused = False
        self.pauses = 0
        self.writes = 0
        self.writes_while_paused = 0
        self.writes_after_stop = 0
        self.stopped = False
        self._pause_every = pause_every
        self._resume_delay = resume_delay
        self._stop_after = stop_after
        if reactor is None and pause_every is not None:
            from twisted.internet import reactor
        self._reactor = reactor

    @property
    def data(self):
        return b"".join(self.chunks)

    def registerProducer(self, producer, streaming):
        self.producer = producer
        self.streaming = streaming
        self.registered += 1

    def unregisterProducer(self):
        self.producer = None
        self.unregistered += 1

    def write(self, data):
        if self.paused:
            self.writes_while_paused += 1
        if self.stopped:
            self.writes_after_stop += 1
        self.writes += 1
        self.size += len(data)
        self.hash.update(data)
        if self.chunks is not None:
            self.chunks.append(bytes(data))
        if self._stop_after is not None and self.size >= self._stop_after and not self.stopped:
            self.stopped = True
            self.producer.stopProducing()
            return
        if self._pause_every and self.writes % self._pause_every == 0:
            self.paused = True
            self.pauses += 1
            self.producer.pauseProducing()
            self._reactor.callLater(self._resume_delay, self._resume)

    def _resume(self):
        if self.producer is not None and not self.stopped:
            self.paused = False
            self.producer.resumeProducing()


def _pattern(size, seed):
    return random.Random(seed).randbytes(size)


class StorageDriverTestsMixin:
    """
    The driver test suite; mix into a C{twisted.trial.unittest.TestCase}
    that defines C{make_driver}.
    """

    timeout = 600
    # Whether stat() answers for a file closed but not committed, with its
    # bytes so far, when it is alone in its directory. On S3 an unfinished
    # file is a multipart upload, no object, and stat looks for one only in
    # a directory that holds something else (an upload's ``startedat``).
    stat_sees_unfinished = True

    def make_driver(self):
        raise NotImplementedError("make_driver() returns the driver under test")

    # harness

    async def driver(self):
        """The driver under test, wrapped in L{ValidatingDriver}; also sets C{self.root}."""
        made = self.make_driver()
        if isinstance(made, defer.Deferred) or inspect.isawaitable(made):
            made = await made
        if not isinstance(made, ValidatingDriver):
            made = ValidatingDriver(made)
        self.root = "/spectroreg-test-" + uuid.uuid4().hex[:12]
        self._listed_before = await made.list("/")
        return made

    def path(self, *parts):
        return "/".join((self.root,) + parts)

    async def finish(self, driver):
        """Delete this test's directory and check nothing is left behind."""
        try:
            await driver.delete(self.root)
        except PathNotFound:
            pass
        await self.assert_nothing_left(driver)

    async def assert_nothing_left(self, driver):
        """Override to look below the driver too (temporary files, parts)."""
        self.assertEqual(await driver.list("/"), self._listed_before)
        await self.assertFailure(driver.stat(self.root), PathNotFound)

    async def get_failure(self, d, *errors):
        """Await C{d}, which must fail with one of C{errors}; return the exception."""
        try:
            result = await d
        except errors as error:
            return error
        self.fail("expected {}, got {!r}".format(errors, result))

    async def write_file(self, driver, path, chunks):
        writer = await driver.writer(path)
        for chunk in chunks:
            await writer.write(chunk)
        await writer.commit()
        return writer

    async def read_all(self, driver, path, offset=0, length=None):
        consumer = HashingConsumer(keep=True)
        written = await driver.read(path, consumer, offset, length)
        self.assertEqual(written, consumer.size)
        self.assertTrue(consumer.streaming, "read() must register a push (streaming) producer")
        self.assertEqual((consumer.registered, consumer.unregistered), (1, 1))
        return consumer.data

    # interface

    @async_test
    async def test_provides_interfaces(self):
        """The driver and its writers provide the interfaces."""
        driver = await self.driver()
        verifyObject(IStorageDriver, driver)
        verifyObject(IStorageDriver, driver.driver)
        self.assertIsInstance(driver.name, str)
        writer = await driver.writer(self.path("w"))
        verifyObject(IFileWriter, writer)
        await writer.cancel()
        await self.finish(driver)

    # paths

    invalid_paths = (
        "", "a", "a/b", "/a/", "//a", "/a//b", "/a/./b", "/a/../b", "/..", "/.", "/a/..",
        "/a b", "/a\tb", "/a\nb", "/\u00e4", "/a\x00b", "/a\\b", "/a*", "/a:b", "/a?",
        "/a/b/", "/~a",
    )
    invalid_file_paths = invalid_paths + ("/",)

    @async_test
    async def test_invalid_paths(self):
        """Every operation rejects invalid paths with InvalidPath before touching the store."""
        driver = await self.driver()
        consumer = HashingConsumer()
        good = self.path("good")
        for bad in self.invalid_file_paths + (None, b"/a"):
            for d in (
                driver.get_content(bad),
                driver.put_content(bad, b"x"),
                driver.read(bad, consumer),
                driver.writer(bad),
                driver.writer(bad, append=True),
                driver.move(bad, good),
                driver.move(good, bad),
                driver.redirect_url(bad),
            ):
                await self.get_failure(d, InvalidPath)
        for bad in self.invalid_paths + (None,):
            for d in (
                driver.stat(bad),
                driver.list(bad),
                driver.delete(bad),
                driver.walk(bad, lambda info: None),
            ):
                await self.get_failure(d, InvalidPath)
        self.assertEqual(consumer.size, 0)
        await self.finish(driver)

    valid_names = (
        "a", "A", "0", "a.b", "a-b_c", "..a", "a..", "...", ".hidden", "_uploads",
        "x" * 200, "sha256", "a.b.c-d_e",
    )

    @async_test
    async def test_valid_paths(self):
        """Paths made of [A-Za-z0-9._-] segments (other than . and ..) work."""
        driver = await self.driver()
        for index, name in enumerate(self.valid_names):
            path = self.path("v", name, "leaf")
            await driver.put_content(path, name.encode("ascii"))
            self.assertEqual(await driver.get_content(path), name.encode("ascii"))
        self.assertEqual(
            await driver.list(self.path("v")),
            sorted(self.path("v", name) for name in self.valid_names),
        )
        await self.finish(driver)

    # small content

    @async_test
    async def test_put_get(self):
        driver = await self.driver()
        content = _pattern(10000, 1)
        result = await driver.put_content(self.path("a", "b", "c"), content)
        self.assertIsNone(result)
        self.assertEqual(await driver.get_content(self.path("a", "b", "c")), content)
        await self.finish(driver)

    @async_test
    async def test_overwrite(self):
        """put_content replaces the whole file, also with shorter content."""
        driver = await self.driver()
        path = self.path("f")
        await driver.put_content(path, b"long content " * 100)
        await driver.put_content(path, b"short")
        self.assertEqual(await driver.get_content(path), b"short")
        self.assertEqual((await driver.stat(path)).size, 5)
        await self.finish(driver)

    @async_test
    async def test_get_missing(self):
        driver = await self.driver()
        error = await self.get_failure(driver.get_content(self.path("missing")), PathNotFound)
        self.assertEqual(error.path, self.path("missing"))
        await driver.put_content(self.path("dir", "file"), b"x")
        # A directory has no content either.
        await self.get_failure(driver.get_content(self.path("dir")), PathNotFound, StorageError)
        await self.finish(driver)

    @async_test
    async def test_empty_files(self):
        """Empty files exist, are empty, and read as nothing."""
        driver = await self.driver()
        await driver.put_content(self.path("empty"), b"")
        self.assertEqual(await driver.get_content(self.path("empty")), b"")
        info = await driver.stat(self.path("empty"))
        self.assertEqual((info.size, info.is_dir), (0, False))
        self.assertEqual(await self.read_all(driver, self.path("empty")), b"")
        writer = await driver.writer(self.path("written-empty"))
        self.assertEqual(writer.size, 0)
        await writer.commit()
        self.assertEqual(await driver.get_content(self.path("written-empty")), b"")
        self.assertEqual(
            await driver.list(self.root), [self.path("empty"), self.path("written-empty")])
        await self.finish(driver)

    # streams

    @async_test
    async def test_big_stream(self):
        """A big stream written in chunks reads back identical (sha256)."""
        driver = await self.driver()
        total = stream_size()
        path = self.path("big", "data")
        writer = await driver.writer(path)
        for chunk in deterministic_chunks(total, seed=7):
            await writer.write(chunk)
        self.assertEqual(writer.size, total)
        await writer.commit()
        self.assertEqual((await driver.stat(path)).size, total)
        consumer = HashingConsumer()
        written = await driver.read(path, consumer)
        self.assertEqual((written, consumer.size), (total, total))
        self.assertEqual(consumer.hash.hexdigest(), deterministic_digest(total, seed=7))
        self.assertEqual(consumer.writes_while_paused, 0)
        # The tail from an offset deep inside.
        tail = HashingConsumer()
        offset = total - 5 * MiB - 3 if total > 6 * MiB else total // 2
        self.assertEqual(await driver.read(path, tail, offset), total - offset)
        await self.finish(driver)

    @async_test
    async def test_read_offsets(self):
        """Reads start at any offset and stop after length bytes."""
        driver = await self.driver()
        content = _pattern(MiB + 12345, 2)
        size = len(content)
        path = self.path("blob")
        await driver.put_content(path, content)
        cases = [
            (0, None), (1, None), (65535, None), (256 * 1024, None), (size - 1, None),
            (size, None), (0, 0), (0, 1), (10, 100), (1000, 300000), (size - 10, 1000),
            (size, 5), (MiB, MiB),
        ]
        for offset, length in cases:
            expected = content[offset:] if length is None else content[offset:offset + length]
            got = await self.read_all(driver, path, offset, length)
            self.assertEqual(
                (len(got), got == expected), (len(expected), True), (offset, length))
        error = await self.get_failure(
            driver.read(path, HashingConsumer(), size + 1), InvalidOffset)
        self.assertEqual(error.offset, size + 1)
        await self.get_failure(driver.read(path, HashingConsumer(), -1), InvalidOffset)
        await self.get_failure(
            driver.read(self.path("missing"), HashingConsumer(), 0), PathNotFound)
        await self.finish(driver)

    @async_test
    async def test_read_slow_consumer(self):
        """A paused read writes nothing until resumed, then carries on intact."""
        driver = await self.driver()
        content = _pattern(3 * MiB + 17, 3)
        path = self.path("slow")
        await driver.put_content(path, content)
        from twisted.internet import reactor

        consumer = HashingConsumer(keep=True, pause_every=1, resume_delay=0.02, reactor=reactor)
        written = await driver.read(path, consumer)
        self.assertEqual(written, len(content))
        self.assertEqual(consumer.data, content)
        self.assertGreater(consumer.pauses, 1)
        self.assertEqual(consumer.writes_while_paused, 0)
        self.assertEqual(consumer.unregistered, 1)
        await self.finish(driver)

    @async_test
    async def test_read_paused_at_any_time(self):
        """A pause that comes between writes (another stream, a full socket) is honoured too."""
        driver = await self.driver()
        content = _pattern(4 * MiB + 1, 6)
        path = self.path("toggled")
        await driver.put_content(path, content)
        from twisted.internet import reactor

        consumer = HashingConsumer(keep=True)
        toggles = []

        def toggle():
            if consumer.producer is None:
                return
            toggles.append(consumer.paused)
            if consumer.paused:
                consumer.paused = False
                consumer.producer.resumeProducing()
            else:
                consumer.paused = True
                consumer.producer.pauseProducing()

        loop = task.LoopingCall(toggle)
        loop.clock = reactor
        loop.start(0.001, now=False)
        try:
            written = await driver.read(path, consumer)
        finally:
            loop.stop()
        self.assertEqual(written, len(content))
        self.assertEqual(consumer.data, content)
        self.assertEqual(consumer.writes_while_paused, 0)
        await self.finish(driver)

    @async_test
    async def test_read_stop_producing(self):
        """stopProducing mid-stream ends the read with a connection error, quietly."""
        driver = await self.driver()
        content = _pattern(4 * MiB, 4)
        path = self.path("stopped")
        await driver.put_content(path, content)
        consumer = HashingConsumer(stop_after=1)
        await self.get_failure(driver.read(path, consumer), ConnectionClosed)
        self.assertEqual(consumer.writes, 1)
        self.assertEqual(consumer.writes_after_stop, 0)
        self.assertLess(consumer.size, len(content))
        # Give a misbehaving producer the chance to write again.
        from twisted.internet import reactor

        await task.deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(consumer.writes, 1)
        # The file was released: it can be replaced and deleted.
        await driver.put_content(path, b"new")
        self.assertEqual(await driver.get_content(path), b"new")
        await self.finish(driver)

    # writers

    @async_test
    async def test_writer_resume(self):
        """close() then writer(append=True), several times, then commit()."""
        driver = await self.driver()
        path = self.path("uploads", "u1", "data")
        parts = [_pattern(size, seed) for seed, size in enumerate((100, 300000, 1, 70000, 5))]
        writer = await driver.writer(path)
        await writer.write(parts[0])
        await writer.close()
        expected = parts[0]
        for part in parts[1:]:
            writer = await driver.writer(path, append=True)
            self.assertEqual(writer.size, len(expected))
            for piece in (part[: len(part) // 2], part[len(part) // 2:]):
                await writer.write(piece)
            expected += part
            self.assertEqual(writer.size, len(expected))
            await writer.close()
            if self.stat_sees_unfinished:
                self.assertEqual((await driver.stat(path)).size, len(expected))
            else:
                await self.get_failure(driver.stat(path), PathNotFound)
        writer = await driver.writer(path, append=True)
        self.assertEqual(writer.size, len(expected))
        await writer.commit()
        self.assertEqual(await driver.get_content(path), expected)
        self.assertEqual(await self.read_all(driver, path), expected)
        # A finished writer refuses everything.
        for d in (writer.write(b"x"), writer.close(), writer.commit(), writer.cancel()):
            await self.get_failure(d, StorageError)
        self.assertEqual(await driver.get_content(path), expected)
        await self.finish(driver)

    @async_test
    async def test_writer_truncates(self):
        """writer(path) without append starts the file afresh."""
        driver = await self.driver()
        path = self.path("t")
        await driver.put_content(path, b"old content that is long")
        writer = await driver.writer(path)
        self.assertEqual(writer.size, 0)
        await writer.write(b"new")
        await writer.commit()
        self.assertEqual(await driver.get_content(path), b"new")
        await self.finish(driver)

    @async_test
    async def test_writer_cancel(self):
        """cancel() removes everything written, also by earlier writers."""
        driver = await self.driver()
        path = self.path("up", "data")
        writer = await driver.writer(path)
        await writer.write(b"abc" * 1000)
        await writer.cancel()
        await self.get_failure(driver.stat(path), PathNotFound)
        await self.get_failure(driver.get_content(path), PathNotFound)

        writer = await driver.writer(path)
        await writer.write(b"first")
        await writer.close()
        writer = await driver.writer(path, append=True)
        await writer.write(b"second")
        await writer.cancel()
        await self.get_failure(driver.stat(path), PathNotFound)
        await self.get_failure(driver.writer(path, append=True), PathNotFound)
        await self.get_failure(writer.write(b"x"), StorageError)
        await self.finish(driver)

    @async_test
    async def test_append_missing(self):
        driver = await self.driver()
        error = await self.get_failure(
            driver.writer(self.path("nothing", "here"), append=True), PathNotFound)
        self.assertEqual(error.path, self.path("nothing", "here"))
        await self.finish(driver)

    @async_test
    async def test_writer_back_pressure(self):
        """write() Deferreds fire, in order, for many small and large writes."""
        driver = await self.driver()
        path = self.path("bp")
        writer = await driver.writer(path)
        digest = hashlib.sha256()
        for chunk in deterministic_chunks(8 * MiB + 5, seed=3, sizes=(1, 10, 100000, 2 * MiB)):
            result = await writer.write(chunk)
            self.assertIsNone(result)
            digest.update(chunk)
        await writer.commit()
        consumer = HashingConsumer()
        await driver.read(path, consumer)
        self.assertEqual(consumer.hash.hexdigest(), digest.hexdigest())
        await self.finish(driver)

    # stat, list

    @async_test
    async def test_stat(self):
        driver = await self.driver()
        before = time.time()
        await driver.put_content(self.path("d", "f"), b"12345")
        info = await driver.stat(self.path("d", "f"))
        self.assertIsInstance(info, FileInfo)
        self.assertEqual((info.path, info.size, info.is_dir), (self.path("d", "f"), 5, False))
        self.assertIsInstance(info.modified, float)
        # Generous: remote stores have their own clocks.
        self.assertLess(abs(info.modified - before), 3600)
        info = await driver.stat(self.path("d"))
        self.assertEqual((info.path, info.size, info.is_dir), (self.path("d"), 0, True))
        info = await driver.stat(self.root)
        self.assertTrue(info.is_dir)
        await self.get_failure(driver.stat(self.path("d", "missing")), PathNotFound)
        await self.get_failure(driver.stat(self.path("d", "f", "below")), PathNotFound)
        await self.finish(driver)

    @async_test
    async def test_list(self):
        """Direct children, full paths, sorted; prefixes are not children."""
        driver = await self.driver()
        for parts in (("a",), ("b", "c"), ("b-c", "d"), ("b", "e", "f"), ("bb",), ("B",)):
            await driver.put_content(self.path(*parts), b"x")
        self.assertEqual(
            await driver.list(self.root),
            [self.path(n) for n in ("B", "a", "b", "b-c", "bb")],
        )
        self.assertEqual(await driver.list(self.path("b")), [self.path("b", "c"), self.path("b", "e")])
        self.assertEqual(await driver.list(self.path("b", "e")), [self.path("b", "e", "f")])
        self.assertIn(self.root, await driver.list("/"))
        await self.get_failure(driver.list(self.path("missing")), PathNotFound)
        await self.get_failure(driver.list(self.path("a")), PathNotFound)
        await self.finish(driver)

    # move, delete

    @async_test
    async def test_move(self):
        driver = await self.driver()
        content = _pattern(100000, 5)
        await driver.put_content(self.path("src"), content)
        await driver.move(self.path("src"), self.path("deep", "er", "dst"))
        self.assertEqual(await driver.get_content(self.path("deep", "er", "dst")), content)
        await self.get_failure(driver.get_content(self.path("src")), PathNotFound)
        # Replaces an existing destination.
        await driver.put_content(self.path("src2"), b"replacement")
        await driver.move(self.path("src2"), self.path("deep", "er", "dst"))
        self.assertEqual(await driver.get_content(self.path("deep", "er", "dst")), b"replacement")
        self.assertEqual((await driver.stat(self.path("deep", "er", "dst"))).size, 11)
        await self.get_failure(driver.stat(self.path("src2")), PathNotFound)
        error = await self.get_failure(
            driver.move(self.path("nope"), self.path("dst3")), PathNotFound)
        self.assertEqual(error.path, self.path("nope"))
        await self.get_failure(driver.stat(self.path("dst3")), PathNotFound)
        self.assertEqual(await driver.list(self.root), [self.path("deep")])
        await self.finish(driver)

    @async_test
    async def test_move_committed_upload(self):
        """The registry's publish: writer, commit, move to the final path."""
        driver = await self.driver()
        upload = self.path("_uploads", "u", "data")
        await self.write_file(driver, upload, deterministic_chunks(3 * MiB, seed=9))
        await driver.move(upload, self.path("blobs", "ab", "data"))
        consumer = HashingConsumer()
        await driver.read(self.path("blobs", "ab", "data"), consumer)
        self.assertEqual(consumer.hash.hexdigest(), deterministic_digest(3 * MiB, seed=9))
        await self.finish(driver)

    @async_test
    async def test_delete(self):
        driver = await self.driver()
        for parts in (("f",), ("d", "a"), ("d", "sub", "b"), ("d-x", "c"), ("dd",)):
            await driver.put_content(self.path(*parts), b"x")
        await driver.delete(self.path("f"))
        await self.get_failure(driver.get_content(self.path("f")), PathNotFound)
        await driver.delete(self.path("d"))
        for parts in (("d", "a"), ("d", "sub", "b"), ("d", "sub"), ("d",)):
            await self.get_failure(driver.stat(self.path(*parts)), PathNotFound)
        # Siblings sharing the name as a prefix stay.
        self.assertEqual(await driver.get_content(self.path("d-x", "c")), b"x")
        self.assertEqual(await driver.get_content(self.path("dd")), b"x")
        error = await self.get_failure(driver.delete(self.path("d")), PathNotFound)
        self.assertEqual(error.path, self.path("d"))
        await self.get_failure(driver.delete(self.path("missing", "deeper")), PathNotFound)
        await self.finish(driver)

    # walk

    WALK_TREE = (("a", "x"), ("a", "y", "z"), ("b",), ("c", "d", "e"), ("c", "f"), ("a-b",))

    async def walk_tree(self):
        """A driver holding the files of L{WALK_TREE} (4 bytes each) under C{self.root}."""
        driver = await self.driver()
        for parts in self.WALK_TREE:
            await driver.put_content(self.path(*parts), b"data")
        return driver

    @async_test
    async def test_walk(self):
        """Depth first, parents first, children sorted."""
        driver = await self.walk_tree()
        seen = []

        def visit(info):
            seen.append((info.path, info.is_dir, info.size))

        await driver.walk(self.root, visit)
        self.assertEqual(seen, [
            (self.path("a"), True, 0),
            (self.path("a", "x"), False, 4),
            (self.path("a", "y"), True, 0),
            (self.path("a", "y", "z"), False, 4),
            (self.path("a-b"), False, 4),
            (self.path("b"), False, 4),
            (self.path("c"), True, 0),
            (self.path("c", "d"), True, 0),
            (self.path("c", "d", "e"), False, 4),
            (self.path("c", "f"), False, 4),
        ])
        await self.finish(driver)

    @async_test
    async def test_walk_skip_dir(self):
        """SKIP_DIR, returned or as a Deferred's result, skips a directory."""
        driver = await self.walk_tree()
        visited = []

        def skip(info):
            visited.append(info.path)
            if info.path in (self.path("a"), self.path("c", "d")):
                # A Deferred firing with SKIP_DIR counts as well.
                return defer.succeed(SKIP_DIR) if info.path == self.path("a") else SKIP_DIR
            return None

        await driver.walk(self.root, skip)
        self.assertEqual(visited, [
            self.path("a"), self.path("a-b"), self.path("b"), self.path("c"),
            self.path("c", "d"), self.path("c", "f"),
        ])
        await self.finish(driver)

    @async_test
    async def test_walk_waits_for_the_visitor(self):
        """A visitor's Deferred is waited for; a walk can start below the root or at /."""
        from twisted.internet import reactor

        driver = await self.walk_tree()
        slow = []

        def slow_visit(info):
            return task.deferLater(reactor, 0, slow.append, info.path)

        await driver.walk(self.path("c"), slow_visit)
        self.assertEqual(
            slow, [self.path("c", "d"), self.path("c", "d", "e"), self.path("c", "f")])

        on_root = []
        await driver.walk("/", lambda info: on_root.append(info.path))
        self.assertIn(self.path("c", "f"), on_root)
        await self.finish(driver)

    @async_test
    async def test_walk_failures(self):
        """The visitor's exception, or PathNotFound for a missing start, fails the walk."""
        driver = await self.walk_tree()

        class Boom(Exception):
            pass

        def boom(info):
            raise Boom()

        await self.get_failure(driver.walk(self.root, boom), Boom)
        await self.get_failure(driver.walk(self.path("missing"), lambda info: None), PathNotFound)
        await self.finish(driver)

    # concurrency

    @async_test
    async def test_concurrent_writers(self):
        """Writers on different paths, interleaved, do not mix."""
        driver = await self.driver()
        count = 8
        writers = []
        for n in range(count):
            writers.append(await driver.writer(self.path("c", str(n), "data")))
        expected = [hashlib.sha256() for _ in range(count)]

        async def write(n):
            for chunk in deterministic_chunks(MiB + n * 1000, seed=100 + n, sizes=(65536, 4097)):
                await writers[n].write(chunk)
                expected[n].update(chunk)
            await writers[n].commit()

        await defer.gatherResults(
            [defer.ensureDeferred(write(n)) for n in range(count)], consumeErrors=True)
        for n in range(count):
            consumer = HashingConsumer()
            await driver.read(self.path("c", str(n), "data"), consumer)
            self.assertEqual(consumer.hash.hexdigest(), expected[n].hexdigest(), n)
        await self.finish(driver)

    @async_test
    async def test_concurrent_put_content(self):
        """Concurrent puts on one path: readers see one whole version, never a mix."""
        driver = await self.driver()
        path = self.path("tag", "current", "link")
        versions = [bytes([65 + n]) * (256 * 1024 + n) for n in range(10)]
        await driver.put_content(path, versions[0])
        results = []

        async def get():
            results.append(await driver.get_content(path))

        work = []
        for version in versions:
            work.append(driver.put_content(path, version))
            work.append(defer.ensureDeferred(get()))
        await defer.gatherResults(work, consumeErrors=True)
        for result in results + [await driver.get_content(path)]:
            self.assertIn(result, versions)
        # Sequential puts: the last one wins.
        for version in versions[3:6]:
            await driver.put_content(path, version)
        self.assertEqual(await driver.get_content(path), versions[5])
        self.assertEqual(await driver.list(self.path("tag", "current")), [path])
        await self.finish(driver)

    @async_test
    async def test_redirect_url(self):
        driver = await self.driver()
        await driver.put_content(self.path("r"), b"x")
        url = await driver.redirect_url(self.path("r"))
        self.assertTrue(url is None or isinstance(url, str))
        await self.finish(driver)
