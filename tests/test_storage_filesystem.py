"""The filesystem driver: the shared driver test suite, then what only a real disk has."""

import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time

from twisted.internet import defer, task
from twisted.internet.error import ConnectionClosed
from twisted.trial import unittest

from spectroreg.storage import _diskio, filesystem, filewriter
from spectroreg.storage.base import ValidatingDriver
from spectroreg.storage.errors import PathNotFound, StorageError
from spectroreg.storage.filesystem import FilesystemDriver
from spectroreg.storage.testing import HashingConsumer, StorageDriverTestsMixin
from tests.support.asynctest import async_test

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class FilesystemDriverTests(StorageDriverTestsMixin, unittest.TestCase):
    def make_driver(self):
        self.rootdirectory = self.mktemp()
        driver = FilesystemDriver(self.rootdirectory, maxthreads=8)
        self.addCleanup(driver.close)
        return driver

    async def assert_nothing_left(self, driver):
        await super().assert_nothing_left(driver)
        # Below the driver too: no file (temporary or not) may remain.
        left = []
        for directory, _, files in os.walk(self.rootdirectory):
            left.extend(os.path.join(directory, name) for name in files)
        self.assertEqual(left, [])
        self.assertEqual(open_below(self.rootdirectory), [])


def open_below(rootdirectory):
    """Descriptors this process holds on files in C{rootdirectory}'s tree."""
    root = os.path.abspath(rootdirectory) + "/"
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink("/proc/self/fd/" + fd)
        except OSError:
            continue
        if target.startswith(root):
            found.append(target)
    return found


class FilesystemSpecificTests(unittest.TestCase):
    """What the shared suite cannot see: the tree on disk, threads, crashes."""

    def driver(self, **kwargs):
        self.rootdirectory = os.path.abspath(self.mktemp())
        raw = FilesystemDriver(self.rootdirectory, **kwargs)
        self.addCleanup(raw.close)
        return ValidatingDriver(raw)

    def on_disk(self, path):
        return self.rootdirectory + path

    def open_below_root(self):
        return open_below(self.rootdirectory)

    @async_test
    async def test_layout(self):
        """Storage paths map onto the tree unchanged, both ways."""
        driver = self.driver()
        path = "/docker/registry/v2/blobs/sha256/ab/abcdef/data"
        await driver.put_content(path, b"blob")
        with open(self.on_disk(path), "rb") as f:
            self.assertEqual(f.read(), b"blob")
        # A file written by another program (Distribution) is served as is.
        link = "/docker/registry/v2/repositories/a/b/_layers/sha256/abcdef/link"
        os.makedirs(os.path.dirname(self.on_disk(link)))
        with open(self.on_disk(link), "wb") as f:
            f.write(b"sha256:abcdef")
        self.assertEqual(await driver.get_content(link), b"sha256:abcdef")
        self.assertEqual(
            await driver.list("/docker/registry/v2/repositories/a"),
            ["/docker/registry/v2/repositories/a/b"])

    @async_test
    async def test_root_created_lazily(self):
        """A missing root is an empty store until the first write creates it."""
        driver = self.driver()
        self.assertFalse(os.path.exists(self.rootdirectory))
        self.assertEqual(await driver.list("/"), [])
        self.assertTrue((await driver.stat("/")).is_dir)
        await driver.put_content("/x", b"1")
        self.assertTrue(os.path.isdir(self.rootdirectory))

    @async_test
    async def test_permissions_follow_umask(self):
        """Files 0666 and directories 0777 less the umask, as Distribution writes them."""
        old = os.umask(0o022)
        self.addCleanup(os.umask, old)
        driver = self.driver()
        await driver.put_content("/d/put", b"x")
        writer = await driver.writer("/d/sub/written")
        await writer.write(b"y")
        await writer.commit()
        await driver.move("/d/sub/written", "/e/moved")
        for path, mode in (("/d/put", 0o644), ("/e/moved", 0o644), ("/d", 0o755),
                           ("/d/sub", 0o755), ("/e", 0o755)):
            self.assertEqual(stat.S_IMODE(os.stat(self.on_disk(path)).st_mode), mode, path)

    @async_test
    async def test_file_in_the_way(self):
        """A file where a directory should be is a StorageError, not a crash."""
        driver = self.driver()
        await driver.put_content("/a", b"file")
        await self.assertFailure(driver.put_content("/a/b", b"x"), StorageError)
        # A new file is created by the writer's first trip to the disk (as
        # on S3, where nothing exists before the end): the error comes then.
        writer = await driver.writer("/a/b")
        await self.assertFailure(writer.close(), StorageError)
        writer = await driver.writer("/a/b")
        await writer.write(b"x" * 10)
        await self.assertFailure(writer.commit(), StorageError)
        await self.assertFailure(driver.list("/a"), PathNotFound)
        self.assertEqual(await driver.get_content("/a"), b"file")

    @async_test
    async def test_delete_never_follows_symlinks(self):
        """Deleting a tree removes a symlink in it, not what the link points to."""
        driver = self.driver()
        await driver.put_content("/up/u1/startedat", b"t")
        await driver.put_content("/up/u1/spectroreg/verified", b"sha256:" + b"0" * 64)
        outside = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(outside, "keep"))
        with open(os.path.join(outside, "keep", "file"), "wb") as f:
            f.write(b"precious")
        os.symlink(outside, self.on_disk("/up/u1/link-to-dir"))
        os.symlink(os.path.join(outside, "keep", "file"), self.on_disk("/up/u1/spectroreg/link-to-file"))
        await driver.delete("/up/u1")
        self.assertFalse(os.path.lexists(self.on_disk("/up/u1")))
        self.assertEqual(os.listdir(self.on_disk("/up")), [])
        with open(os.path.join(outside, "keep", "file"), "rb") as f:
            self.assertEqual(f.read(), b"precious")
        # A symlink given as the path itself is removed as a file.
        os.symlink(outside, self.on_disk("/up/alias"))
        await driver.delete("/up/alias")
        self.assertTrue(os.path.isdir(os.path.join(outside, "keep")))
        self.assertFalse(os.path.lexists(self.on_disk("/up/alias")))
        await self.assertFailure(driver.delete("/up/u1"), PathNotFound)

    @async_test
    async def test_new_directory_in_one_call(self):
        """A put into a new directory under an existing one: one mkdir, no look first."""
        driver = self.driver()
        await driver.put_content("/r/_layers/sha256/aa/link", b"x")
        calls = []
        for name in ("stat", "lstat", "mkdir"):
            real = getattr(os, name)

            def counting(*args, real=real, name=name, **kwargs):
                calls.append(name)
                return real(*args, **kwargs)

            self.patch(os, name, counting)
        await driver.put_content("/r/_layers/sha256/bb/link", b"y")
        self.assertEqual(calls, ["mkdir"])
        # An existing directory: the mkdir fails, one look says it is one.
        del calls[:]
        await driver.put_content("/r/_layers/sha256/bb/link", b"z")
        self.assertEqual(calls[:2], ["mkdir", "stat"])
        with open(self.on_disk("/r/_layers/sha256/bb/link"), "rb") as f:
            self.assertEqual(f.read(), b"z")

    @async_test
    async def test_delete_in_few_calls(self):
        """An upload's directory goes in one listing per directory and one call per entry."""
        driver = self.driver()
        await driver.put_content("/up/u1/startedat", b"t")
        await driver.put_content("/up/u1/spectroreg/verified", b"sha256:" + b"0" * 64)
        calls = []
        for name in ("lstat", "stat", "open", "unlink", "rmdir", "scandir"):
            real = getattr(os, name)

            def counting(*args, real=real, name=name, **kwargs):
                calls.append(name)
                return real(*args, **kwargs)

            self.patch(os, name, counting)
        await driver.delete("/up/u1")
        # lstat of the path; per directory: open, scandir, rmdir; per file: unlink.
        self.assertEqual(sorted(calls), sorted(["lstat"] + ["open", "scandir", "rmdir"] * 2 + ["unlink"] * 2))

    @async_test
    async def test_temp_files_invisible_and_left_by_reads(self):
        """Crash leftovers never show; a listing or walk removes nothing (reads never write)."""
        driver = self.driver()
        await driver.put_content("/dir/real", b"x")
        stale = self.on_disk("/dir/" + filesystem.TEMP_PREFIX + "0123456789abcdef")
        fresh = self.on_disk("/dir/" + filesystem.TEMP_PREFIX + "fedcba9876543210")
        for name in (stale, fresh):
            with open(name, "wb") as f:
                f.write(b"partial")
        old = time.time() - 2 * filesystem.STALE_TEMP_AGE
        os.utime(stale, (old, old))
        self.assertEqual(await driver.list("/dir"), ["/dir/real"])
        seen = []
        await driver.walk("/", lambda info: seen.append(info.path))
        self.assertEqual(seen, ["/dir", "/dir/real"])
        self.assertTrue(os.path.exists(stale))
        self.assertTrue(os.path.exists(fresh))
        await driver.put_content("/dir/real", b"y")
        self.assertFalse(os.path.exists(stale))
        await driver.delete("/dir")
        self.assertFalse(os.path.exists(fresh))

    @async_test
    async def test_stale_temp_files_swept(self):
        """A put removes stale leftovers beside it; remove_stale_temp_files sweeps the tree."""
        driver = self.driver()
        await driver.put_content("/a/x/link", b"1")
        await driver.put_content("/b/y/link", b"2")
        old = time.time() - 2 * filesystem.STALE_TEMP_AGE
        leftovers = []
        for directory in ("/a/x", "/b/y", "/b"):
            for age in ("stale", "fresh"):
                name = self.on_disk(directory + "/" + filesystem.TEMP_PREFIX + age)
                with open(name, "wb") as f:
                    f.write(b"partial")
                if age == "stale":
                    os.utime(name, (old, old))
                leftovers.append(name)
        await driver.put_content("/a/x/link", b"3")
        self.assertEqual(
            [os.path.exists(name) for name in leftovers], [False, True] + [True] * 4)
        self.assertEqual(await driver.driver.remove_stale_temp_files(), 2)
        self.assertEqual([os.path.exists(name) for name in leftovers], [False, True] * 3)
        self.assertEqual(await driver.get_content("/a/x/link"), b"3")

    @async_test
    async def test_blocking_work_runs_in_the_pool(self):
        """Writes and fsyncs never happen on the reactor thread."""
        driver = self.driver()
        threads = []
        real_write, real_fsync = _diskio.write_all, _diskio.fsync_dir

        def write_all(fd, data):
            threads.append(threading.current_thread())
            return real_write(fd, data)

        def fsync_dir(directory):
            threads.append(threading.current_thread())
            return real_fsync(directory)

        self.patch(_diskio, "write_all", write_all)
        self.patch(_diskio, "fsync_dir", fsync_dir)
        await driver.put_content("/a/b", b"x" * 1000)
        writer = await driver.writer("/u/data")
        for _ in range(8):
            await writer.write(b"y" * 100000)
        await writer.commit()
        await driver.move("/u/data", "/blob/data")
        self.assertGreater(len(threads), 4)
        self.assertNotIn(threading.main_thread(), threads)

    @async_test
    async def test_pool_is_bounded(self):
        """At most maxthreads disk operations run at once, and they do run in parallel."""
        driver = self.driver(maxthreads=3)
        lock = threading.Lock()
        running = [0]
        peak = [0]
        real_write = _diskio.write_all

        def slow_write(fd, data):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            try:
                time.sleep(0.05)
                return real_write(fd, data)
            finally:
                with lock:
                    running[0] -= 1

        self.patch(_diskio, "write_all", slow_write)
        await defer.gatherResults(
            [driver.put_content("/p/{}".format(n), b"z" * 100) for n in range(20)],
            consumeErrors=True)
        self.assertEqual(peak[0], 3)
        self.assertLessEqual(driver.driver._pool.threads, 3)
        self.assertEqual(len(await driver.list("/p")), 20)

    @async_test
    async def test_pool_starts_lazily_and_stops_at_shutdown(self):
        """No thread before the first operation; the reactor's shutdown stops the pool."""
        from twisted.internet import reactor

        class Reactor:
            """The real reactor, with shutdown triggers recorded instead of installed."""

            def __init__(self):
                self.triggers = {}

            def callFromThread(self, function, *args, **kwargs):
                reactor.callFromThread(function, *args, **kwargs)

            def addSystemEventTrigger(self, phase, event, function, *args):
                handle = object()
                self.triggers[handle] = (phase, event, function)
                return handle

            def removeSystemEventTrigger(self, handle):
                del self.triggers[handle]

        fake = Reactor()
        raw = FilesystemDriver(os.path.abspath(self.mktemp()), maxthreads=2, reactor=fake)
        self.addCleanup(raw.close)
        self.assertEqual((raw._pool.threads, fake.triggers), (0, {}))
        await raw.put_content("/a", b"x")
        self.assertGreaterEqual(raw._pool.threads, 1)
        [handle] = fake.triggers
        phase, event, shutdown = fake.triggers.pop(handle)  # as the reactor does when firing
        self.assertEqual((phase, event), ("during", "shutdown"))
        shutdown()
        self.assertEqual(raw._pool.threads, 0)
        # Usable again afterwards (a new pool), and stop() removes its trigger.
        await raw.put_content("/b", b"y")
        self.assertEqual(await raw.get_content("/b"), b"y")
        self.assertEqual(len(fake.triggers), 1)
        raw.close()
        self.assertEqual((raw._pool.threads, fake.triggers), (0, {}))

    @async_test
    async def test_reactor_keeps_ticking_during_a_big_write(self):
        """A slow disk slows the writer down, not the reactor."""
        driver = self.driver()
        real_write = _diskio.write_all

        def slow_write(fd, data):
            time.sleep(0.3)
            return real_write(fd, data)

        self.patch(_diskio, "write_all", slow_write)
        ticks = []
        loop = task.LoopingCall(lambda: ticks.append(time.monotonic()))
        started = time.monotonic()
        loop.start(0.01)
        try:
            writer = await driver.writer("/big/data")
            chunk = b"q" * (64 * 1024)
            for _ in range(128):  # 8 MiB: at least 8 slow flushes
                await writer.write(chunk)
            await writer.commit()
        finally:
            loop.stop()
        elapsed = time.monotonic() - started
        self.assertGreater(elapsed, 8 * 0.3)
        gaps = [later - earlier for earlier, later in zip(ticks, ticks[1:])]
        # Blocking writes would leave one gap of at least 0.3 s per flush;
        # one such gap is allowed for a loaded machine.
        self.assertLessEqual(len([gap for gap in gaps if gap >= 0.3]), 1, max(gaps))
        self.assertGreater(len(ticks), 0.3 * elapsed / 0.01)
        self.assertEqual((await driver.stat("/big/data")).size, 8 * 1024 * 1024)

    @async_test
    async def test_writer_hashes_in_its_thread(self):
        """A hasher given to the writer sees every byte, in order, in the pool's threads."""
        import hashlib

        driver = self.driver()
        threads = set()

        class Hasher:
            def __init__(self):
                self.inner = hashlib.sha256()

            def update(self, data):
                threads.add(threading.current_thread())
                self.inner.update(data)

        writer = await driver.writer("/h/data")
        hasher = Hasher()
        self.assertTrue(writer.hash_with(hasher))
        data = bytes(range(256)) * (3 * 1024 * 1024 // 256 + 7)
        for start in range(0, len(data), 100000):
            await writer.write(data[start:start + 100000])
        await writer.commit()
        self.assertEqual(hasher.inner.hexdigest(), hashlib.sha256(data).hexdigest())
        self.assertTrue(threads)
        self.assertNotIn(threading.main_thread(), threads)
        with open(self.on_disk("/h/data"), "rb") as f:
            self.assertEqual(f.read(), data)

    @async_test
    async def test_writer_refuses_a_hasher_after_bytes(self):
        """Bytes taken before hash_with() would be missing from the hash: refused."""
        driver = self.driver()
        writer = await driver.writer("/h2/data")
        await writer.write(b"early")
        self.assertFalse(writer.hash_with(object()))
        await writer.commit()
        ended = await driver.writer("/h3/data")
        await ended.close()
        self.assertFalse(ended.hash_with(object()))

    @async_test
    async def test_small_write_and_fsync_in_one_trip(self):
        """What is left in the buffer is written by the same pool call that syncs the file."""
        driver = self.driver()
        writer = await driver.writer("/one/data")
        calls = []
        pool = driver.driver._pool
        real_run = pool.run

        def counting_run(function, *args, **kwargs):
            calls.append(getattr(function, "__name__", function))
            return real_run(function, *args, **kwargs)

        self.patch(pool, "run", counting_run)
        await writer.write(b"s" * 4096)
        await writer.commit()
        self.assertEqual(calls, ["_sync_and_close"])
        with open(self.on_disk("/one/data"), "rb") as f:
            self.assertEqual(f.read(), b"s" * 4096)

    @async_test
    async def test_failed_final_write_releases_the_descriptor(self):
        """A write failing in the last trip (with the fsync) fails the end and closes the file."""
        driver = self.driver()

        def full_disk(fd, data):
            raise OSError(28, "No space left on device")

        real_write = _diskio.write_all
        for end in ("commit", "close"):
            writer = await driver.writer("/last/" + end)
            await writer.write(b"x" * 100)
            self.patch(_diskio, "write_all", full_disk)
            with self.assertRaises(StorageError):
                await getattr(writer, end)()
            self.patch(_diskio, "write_all", real_write)
        self.assertEqual(self.open_below_root(), [])

    def test_short_writev_is_finished(self):
        """A writev that writes part of the pieces is completed, bytes in order."""
        path = self.mktemp()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        real_writev = os.writev
        calls = []

        def short_writev(fd, pieces):
            calls.append(len(pieces))
            if len(calls) == 1:
                # Five bytes, into the middle of the first piece.
                return real_writev(fd, [bytes(pieces[0][:5])])
            return real_writev(fd, pieces)

        self.patch(os, "writev", short_writev)
        try:
            _diskio.write_all(fd, [b"0123456789", b"abc", b"", b"defg"])
        finally:
            os.close(fd)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"0123456789abcdefg")

    @async_test
    async def test_writeback_started_after_each_write(self):
        """Each write in the pool starts the kernel's writeback, so the final fsync waits less."""
        if _diskio._sync_file_range is None:
            raise unittest.SkipTest("no sync_file_range on this system")
        driver = self.driver()
        started = []
        real = _diskio._sync_file_range

        def recording(fd, offset, length, flags):
            started.append((threading.current_thread(), flags))
            return real(fd, offset, length, flags)

        self.patch(_diskio, "_sync_file_range", recording)
        writer = await driver.writer("/wb/data")
        for _ in range(4):
            await writer.write(b"w" * (1024 * 1024))
        await writer.commit()
        self.assertGreaterEqual(len(started), 4)
        self.assertNotIn(threading.main_thread(), {thread for thread, _ in started})
        self.assertEqual({flags for _, flags in started}, {_diskio._SYNC_FILE_RANGE_WRITE})

    @async_test
    async def test_writer_back_pressure(self):
        """write() stops firing at once when the disk is behind by the buffer limit."""
        driver = self.driver()
        gate = threading.Event()
        real_write = _diskio.write_all

        def gated_write(fd, data):
            gate.wait(10)
            return real_write(fd, data)

        self.patch(_diskio, "write_all", gated_write)
        writer = await driver.writer("/bp/data")
        chunk = b"w" * (128 * 1024)
        accepted = 0
        pending = None
        for _ in range(64):
            d = writer.write(chunk)
            if not d.called:
                pending = d
                break
            accepted += len(chunk)
        self.assertIsNotNone(pending, "the writer buffered 8 MiB with a stuck disk")
        # What waits (buffer_limit) plus what is being written (flush_size).
        bound = filewriter.FileWriter.buffer_limit + filewriter.FileWriter.flush_size + len(chunk)
        self.assertLessEqual(accepted, bound)
        gate.set()
        await pending
        await writer.commit()
        self.assertEqual((await driver.stat("/bp/data")).size, accepted + len(chunk))

    @async_test
    async def test_failed_write(self):
        """A disk error surfaces as StorageError; the descriptor is released either way."""
        driver = self.driver()

        def full_disk(fd, data):
            raise OSError(28, "No space left on device")

        self.patch(_diskio, "write_all", full_disk)
        for end in ("commit", "close", "cancel"):
            writer = await driver.writer("/full/" + end)
            failed = None
            for _ in range(16):
                try:
                    await writer.write(b"f" * (512 * 1024))
                except StorageError as error:
                    failed = error
                    break
            self.assertIsNotNone(failed)
            self.assertIn("ENOSPC", str(failed))
            self.assertEqual(failed.path, "/full/" + end)
            if end == "cancel":
                await writer.cancel()
                await self.assertFailure(driver.stat("/full/cancel"), PathNotFound)
            else:
                await self.assertFailure(getattr(writer, end)(), StorageError)
            await self.assertFailure(writer.write(b"x"), StorageError)
        self.assertEqual(self.open_below_root(), [])
        await self.assertFailure(driver.put_content("/full/put", b"x"), StorageError)
        await self.assertFailure(driver.stat("/full/put"), PathNotFound)
        self.assertEqual(await driver.list("/full"), ["/full/close", "/full/commit"])

    @async_test
    async def test_read_releases_file_when_stopped(self):
        """A stopped read closes its file (no descriptor leak)."""
        driver = self.driver()
        await driver.put_content("/f", b"r" * (2 * 1024 * 1024))
        for _ in range(5):
            consumer = HashingConsumer(stop_after=1)
            await self.assertFailure(driver.read("/f", consumer), ConnectionClosed)
        self.assertEqual(self.open_below_root(), [])


CHILD = textwrap.dedent("""
    import sys
    from twisted.internet import defer, task
    from spectroreg.storage.filesystem import FilesystemDriver

    SIZE = 2 * 1024 * 1024

    async def main(reactor, root, mode):
        driver = FilesystemDriver(root, maxthreads=4)
        n = int(sys.argv[3])
        while True:
            n += 1
            content = bytes([n % 256]) * (SIZE + n)
            if mode == "put":
                await driver.put_content("/tags/t/current/link", content)
            else:
                upload = "/uploads/{}/data".format(n)
                writer = await driver.writer(upload)
                for start in range(0, len(content), 300000):
                    await writer.write(content[start:start + 300000])
                await writer.commit()
                await driver.move(upload, "/blobs/ab/data")
            print(n, flush=True)

    task.react(lambda reactor: defer.ensureDeferred(main(reactor, sys.argv[1], sys.argv[2])))
""")


class CrashSafetyTests(unittest.TestCase):
    """kill -9 in the middle of writes: final paths hold a whole version, never a part."""

    def run_and_kill(self, root, mode, start, rounds_before_kill):
        script = os.path.join(self.mktemp() + ".py")
        with open(script, "w") as f:
            f.write(CHILD)
        env = dict(os.environ, PYTHONPATH=PROJECT)
        child = subprocess.Popen(
            [sys.executable, script, root, mode, str(start)],
            stdout=subprocess.PIPE, env=env)
        try:
            last = start
            for _ in range(rounds_before_kill):
                line = child.stdout.readline()
                self.assertTrue(line, "the writing process died")
                last = int(line)
            # Land anywhere in the next operation.
            time.sleep(random.uniform(0, 0.05))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        # Whatever it printed before dying completed too.
        for line in child.stdout.read().split():
            last = int(line)
        child.stdout.close()
        return last

    def check_whole(self, path, completed):
        with open(path, "rb") as f:
            data = f.read()
        version = len(data) - 2 * 1024 * 1024
        self.assertGreaterEqual(version, completed, "a completed write is lost")
        self.assertLessEqual(version, completed + 1)
        self.assertEqual(data.count(bytes([version % 256])), len(data), "mixed content")

    def test_put_content_survives_kill(self):
        root = os.path.abspath(self.mktemp())
        completed = 0
        for round_ in range(4):
            completed = self.run_and_kill(root, "put", completed, 2 + round_)
            self.check_whole(root + "/tags/t/current/link", completed)
            names = os.listdir(root + "/tags/t/current")
            visible = [n for n in names if filesystem._is_visible(n)]
            self.assertEqual(visible, ["link"])
            self.assertTrue(all(n.startswith(filesystem.TEMP_PREFIX) for n in names if n != "link"))
            completed = int(os.path.getsize(root + "/tags/t/current/link") - 2 * 1024 * 1024)

    def test_published_blob_survives_kill(self):
        root = os.path.abspath(self.mktemp())
        completed = 0
        for round_ in range(3):
            completed = self.run_and_kill(root, "move", completed, 2 + round_)
            self.check_whole(root + "/blobs/ab/data", completed)
            completed = int(os.path.getsize(root + "/blobs/ab/data") - 2 * 1024 * 1024)
