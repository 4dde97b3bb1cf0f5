"""
What a power loss leaves of the filesystem driver's writes and of a push
through the registry on it: the driver's disk calls recorded in order and
replayed against POSIX's model (tests/support/powerloss.py), with the
promises of docs/storage.md ("Crash safety") checked after every call.
A test here fails when a flush the promises need is dropped or moved.
"""

import os
import threading

from twisted.trial import unittest

from spectroreg.config.settings import StorageSettings
from spectroreg.registry import Registry
from spectroreg.registry import manifests as mf
from spectroreg.registry import paths
from spectroreg.storage.base import ValidatingDriver
from spectroreg.storage.filesystem import FilesystemDriver
from tests.support.asynctest import async_test
from tests.support.powerloss import DiskJournal
from tests.support.stores import manifest_body, put_blob, sha



class FilesystemRegistry:
    """A filesystem driver in a temporary root, and a registry over it."""

    maxthreads = 8

    def setUp(self):
        self.root = os.path.abspath(self.mktemp())
        self.driver = FilesystemDriver(self.root, maxthreads=self.maxthreads)
        self.addCleanup(self.driver.close)
        self.registry = Registry(ValidatingDriver(self.driver), SETTINGS)

    async def journal(self):
        """Record the disk calls from now on (the root exists first: only what the calls make is judged)."""
        await self.driver.put_content("/ready", b"")
        return DiskJournal(self, self.root)


class DriverDurabilityTests(FilesystemRegistry, unittest.TestCase):
    """The driver's own calls: what each one has made durable when it returns."""

    maxthreads = 4

    @async_test
    async def test_put_content(self):
        journal = await self.journal()
        await self.driver.put_content("/a/b/c/link", b"sha256:" + b"0" * 64)
        self.assertFalse(journal.after(0).holds("/a/b/c/link"))
        self.assertTrue(journal.after(len(journal.events)).holds("/a/b/c/link"))
        # The new directories are flushed into their parents last, after
        # the file and its directory (by then a journaling filesystem has
        # committed them: those flushes cost next to nothing), and before
        # put_content returns.
        self.assertEqual([event[:2] for event in journal.events if event[0] != "create"], [
            ("mkdir", self.root + "/a"), ("mkdir", self.root + "/a/b"), ("mkdir", self.root + "/a/b/c"),
            ("fsync", journal.events[3][1]), ("rename", journal.events[3][1]),
            ("fsync_dir", self.root + "/a/b/c"),
            ("fsync_dir", self.root), ("fsync_dir", self.root + "/a"), ("fsync_dir", self.root + "/a/b"),
        ])

    @async_test
    async def test_put_content_replacing(self):
        await self.driver.put_content("/a/link", b"old")
        journal = await self.journal()
        await self.driver.put_content("/a/link", b"new")
        # The rename comes after the temporary file's bytes are flushed.
        renamed = [index for index, event in enumerate(journal.events) if event[0] == "rename"]
        self.assertEqual(len(renamed), 1)
        temp = journal.events[renamed[0]][1]
        self.assertIn(("fsync", temp), journal.events[:renamed[0]])
        self.assertEqual(journal.events[-1], ("fsync_dir", self.root + "/a"))

    @async_test
    async def test_put_content_not_durable(self):
        """durable=False: nothing flushed for the file and its directory; the directories above are."""
        journal = await self.journal()
        await self.driver.put_content("/r/_uploads/u1/startedat", b"2026", durable=False)
        disk = journal.after(len(journal.events))
        self.assertTrue(disk.holds("/r/_uploads"))
        self.assertFalse(disk.holds("/r/_uploads/u1"))
        self.assertNotIn("fsync", [event[0] for event in journal.events])
        self.assertNotIn(("fsync_dir", self.root + "/r/_uploads"), journal.events)
        self.assertNotIn(("fsync_dir", self.root + "/r/_uploads/u1"), journal.events)
        with open(self.root + "/r/_uploads/u1/startedat", "rb") as f:
            self.assertEqual(f.read(), b"2026")

    @async_test
    async def test_writer_not_durable(self):
        journal = await self.journal()
        writer = await self.driver.writer("/r/_uploads/u1/data", durable=False)
        await writer.write(b"x")
        await writer.close()
        self.assertEqual(journal.count("fsync") + journal.count("fsync_dir"),
                         2, "only r and _uploads, the new directories above")
        self.assertTrue(journal.after(len(journal.events)).holds("/r/_uploads"))

    @async_test
    async def test_writer_commit(self):
        journal = await self.journal()
        writer = await self.driver.writer("/r/u/data")
        await writer.write(b"bytes")
        await writer.commit()
        self.assertTrue(journal.after(len(journal.events)).holds("/r/u/data"))

    @async_test
    async def test_move(self):
        journal = await self.journal()
        writer = await self.driver.writer("/up/data")
        await writer.write(b"blob")
        await writer.commit()
        moving = journal.mark()
        await self.driver.move("/up/data", "/blobs/ab/abcd/data")
        self.assertFalse(journal.after(moving).holds("/blobs/ab/abcd/data"))
        self.assertTrue(journal.after(len(journal.events)).holds("/blobs/ab/abcd/data"))
        # Only the destination is flushed: the source's removal may be undone.
        self.assertNotIn(("fsync_dir", self.root + "/up"), journal.events[moving:])

    def hold_flush(self, directory):
        """
        Hold the first flush of C{directory} (after it began) until the test
        releases it: (held, release) events, and the first thread to set
        as C{self.holder}.
        """
        from spectroreg.storage import _diskio

        flush = _diskio.fsync_dir
        held, release = threading.Event(), threading.Event()
        self.addCleanup(release.set)

        def fsync_dir(path):
            if path == directory and not held.is_set():
                held.set()
                release.wait(30)
            flush(path)

        self.patch(_diskio, "fsync_dir", fsync_dir)
        return held, release

    def in_thread(self, function, *args):
        """Run C{function(*args)} in a thread: (thread, returned) with C{returned} set on return."""
        returned = threading.Event()

        def run():
            function(*args)
            returned.set()

        thread = threading.Thread(target=run)
        thread.start()
        self.addCleanup(thread.join)
        return thread, returned

    @async_test
    async def test_writer_that_finds_a_new_directory_waits_for_its_flush(self):
        """
        Two writes into the same new directory at once: the one that finds
        it made by the other, whose flush of it began after it was made but
        has not returned, waits for that flush rather than making its own,
        and does not return before the path to its own file is on disk.
        """
        journal = await self.journal()
        held, release = self.hold_flush(self.root)
        first, first_returned = self.in_thread(self.driver._put_content, "/a/x/one", b"1")
        self.assertTrue(held.wait(30))
        at_return = []

        def second_write():
            self.driver._put_content("/a/x/two", b"2")
            at_return.append(len(journal.events))

        second, second_returned = self.in_thread(second_write)
        # It relies on the flush the first writer holds.
        self.assertFalse(second_returned.wait(0.5))
        release.set()
        first.join()
        second.join()
        self.assertTrue(journal.after(at_return[0]).holds("/a/x/two"))
        self.assertTrue(journal.after(len(journal.events)).holds("/a/x/one"))
        # The new directories' entries were flushed once for both writes;
        # /a/x once per file renamed into it.
        for directory, count in (("", 1), ("/a", 1), ("/a/x", 2)):
            self.assertEqual(journal.events.count(("fsync_dir", self.root + directory)), count, journal.events)

    @async_test
    async def test_writer_whose_name_came_after_a_flush_began_flushes_itself(self):
        """
        A flush of a directory that began before a writer's name was made
        there does not cover it: that writer flushes the directory itself,
        without waiting for the flush in progress.
        """
        await self.driver.put_content("/a/x/zero", b"0")
        journal = await self.journal()
        held, release = self.hold_flush(self.root + "/a/x")
        first, _ = self.in_thread(self.driver._put_content, "/a/x/one", b"1")
        self.assertTrue(held.wait(30))
        second, second_returned = self.in_thread(self.driver._put_content, "/a/x/two", b"2")
        # It returns while the first writer's flush is still held, its own
        # name on disk (and the first's, made before this flush began).
        self.assertTrue(second_returned.wait(10))
        self.assertTrue(journal.after(len(journal.events)).holds("/a/x/two"))
        self.assertEqual(journal.events.count(("fsync_dir", self.root + "/a/x")), 1)
        release.set()
        first.join()
        self.assertTrue(journal.after(len(journal.events)).holds("/a/x/one"))


SETTINGS = StorageSettings(driver="filesystem", delete_enabled=True)


class PushDurabilityTests(FilesystemRegistry, unittest.TestCase):
    """
    A push through the registry on the filesystem driver, with a power loss
    after each disk call: what docs/storage.md promises holds at every point.
    """

    @async_test
    async def test_upload_start_flushes_nothing_of_its_own(self):
        journal = await self.journal()
        upload_id = await self.registry.uploads.start("new/repository")
        uploads = paths.upload_dir("new/repository", upload_id).rsplit("/", 1)[0]
        disk = journal.after(len(journal.events))
        # The repository's directories are durable (a later link below them
        # must not hang from an unflushed one); the upload itself is not.
        self.assertTrue(disk.holds(uploads))
        self.assertFalse(disk.holds(paths.upload_startedat("new/repository", upload_id)))
        self.assertNotIn("fsync", [event[0] for event in journal.events])
        self.assertNotIn(("fsync_dir", self.root + uploads), journal.events)

    async def push_checked(self, name, data, before_commit=None):
        """Push C{data}; check every point of the upload's commit. @return: the journal."""
        digest = sha(data)
        upload_id = await self.registry.uploads.start(name)
        writer = await self.registry.uploads.open(name, upload_id)
        await writer.write(data)
        journal = DiskJournal(self, self.root)
        await writer.commit(digest)
        blob = paths.blob_data(digest)
        link = paths.layer_link(name, digest)
        startedat = paths.upload_startedat(name, upload_id)
        upload_data = paths.upload_data(name, upload_id)
        marker = paths.upload_verified(name, upload_id)
        for index, disk in journal.each_point():
            where = "power loss after {}".format(journal.events[:index][-1:])
            # A link never names a blob that is not whole on disk.
            if disk.may_hold(link):
                self.assertTrue(disk.holds(blob), where)
            # An upload a retry may find, whose bytes may have gone to the
            # blob, has the marker that lets the retry link it.
            if disk.may_hold(startedat) and disk.may_hold(blob) and not disk.holds(upload_data):
                self.assertTrue(disk.holds(marker), where)
        # Before the 201: the blob and its link are durable.
        disk = journal.after(len(journal.events))
        self.assertTrue(disk.holds(blob))
        self.assertTrue(disk.holds(link))
        return journal

    @async_test
    async def test_blob_push(self):
        await self.journal()
        journal = await self.push_checked("r", b"layer one")
        # The upload's data is flushed before it becomes the blob.
        self.assertEqual(journal.events[0][0], "fsync")

    @async_test
    async def test_blob_push_into_new_prefixes(self):
        await self.journal()
        for index in range(4):
            await self.push_checked("r{}".format(index), b"layer %d" % index)

    @async_test
    async def test_manifest_put(self):
        await self.journal()
        config, layer = b"{}", b"layer"
        await put_blob(self.registry, "r", sha(config), config)
        await put_blob(self.registry, "r", sha(layer), layer)
        body = manifest_body(config, [layer])
        digest = sha(body)
        journal = DiskJournal(self, self.root)
        await self.registry.manifests.put("r", "v1", body, mf.OCI_MANIFEST)
        blob = paths.blob_data(digest)
        revision = paths.revision_link("r", digest)
        current = paths.tag_current_link("r", "v1")
        index_link = paths.tag_index_link("r", "v1", digest)
        for index, disk in journal.each_point():
            where = "power loss after {}".format(journal.events[:index][-1:])
            if disk.may_hold(revision):
                self.assertTrue(disk.holds(blob), where)
            if disk.may_hold(current):
                self.assertTrue(disk.holds(revision), where)
            if disk.may_hold(index_link):
                self.assertTrue(disk.holds(revision), where)
        disk = journal.after(len(journal.events))
        for path in (blob, revision, current, index_link):
            self.assertTrue(disk.holds(path), path)


class PushCostTests(FilesystemRegistry, unittest.TestCase):
    """
    What a small push costs on the filesystem driver: trips to its thread
    pool and flushes to disk (the list in docs/storage.md).
    """

    def setUp(self):
        FilesystemRegistry.setUp(self)
        self.trips = []
        pool = self.driver._pool
        run, run_shared = pool.run, pool.run_shared

        def counting_run(function, *args, **kwargs):
            self.trips.append(function.__name__)
            return run(function, *args, **kwargs)

        def counting_run_shared(key, function, *args):
            self.trips.append(function.__name__)
            return run_shared(key, function, *args)

        self.patch(pool, "run", counting_run)
        self.patch(pool, "run_shared", counting_run_shared)

    async def warm(self, name):
        """A repository that has had a push (its directories exist)."""
        await put_blob(self.registry, name, sha(b"first"), b"first")
        await self.registry.blobs.stat(name, sha(b"first"))

    @async_test
    async def test_blob_push(self):
        await self.warm("r")
        journal = DiskJournal(self, self.root)
        del self.trips[:]
        upload_id = await self.registry.uploads.start("r")
        # startedat and the empty data at once, neither flushed.
        self.assertEqual(sorted(self.trips), ["_put_content", "_sync_and_close"])
        self.assertEqual(journal.count("fsync") + journal.count("fsync_dir"), 0)
        del self.trips[:]
        writer = await self.registry.uploads.open("r", upload_id)
        await writer.write(b"layer")
        # The upload's size came from the kernel's cache: no trip to open it.
        self.assertEqual(self.trips, [] if self.driver._nowait.enabled else ["_stat", "_open_for_write"])
        del self.trips[:]
        mark = journal.mark()
        await writer.commit(sha(b"layer"))
        # Written and flushed in one trip; then the marker while the blob's
        # existence is asked, the move, the link and the upload's removal.
        self.assertEqual(self.trips[0], "_sync_and_close")
        self.assertEqual(len(self.trips), 6, self.trips)
        flushes = [event[0] for event in journal.events[mark:] if event[0].startswith("fsync")]
        # data; marker: its bytes, its name (in the upload's directory);
        # blob: its directory (and the prefix's when new), its name; link:
        # its directory, its bytes, its name.
        self.assertIn(len(flushes), (8, 9), journal.events[mark:])

    @async_test
    async def test_manifest_put(self):
        await self.warm("r")
        await put_blob(self.registry, "r", sha(b"{}"), b"{}")
        await put_blob(self.registry, "r", sha(b"layer"), b"layer")
        # The repository's first manifest builds its referrers index.
        await self.registry.manifests.put("r", "v0", manifest_body(b"{}", []), mf.OCI_MANIFEST)
        body = manifest_body(b"{}", [b"layer"])
        journal = DiskJournal(self, self.root)
        del self.trips[:]
        await self.registry.manifests.put("r", "v1", body, mf.OCI_MANIFEST)
        trips = self.trips
        if not self.driver._nowait.enabled:
            # Without the no-wait reader (e.g. overlayfs), the layer's stat
            # and the two links read for the references also go to the pool.
            self.assertEqual(sorted(trips[:3]), ["_get_content", "_get_content", "_stat"], trips)
            trips = trips[3:]
        # Whether its blob exists, its blob, its revision, then the tag's
        # two links at once.
        self.assertEqual(len(trips), 5, self.trips)
        self.assertEqual(trips[-2:], ["_put_content", "_put_content"])
        # Its blob (a new prefix directory, its own, its bytes, its name),
        # its revision (directory, bytes, name), the tag's index (four new
        # directories, bytes, name) and current link (directory, bytes, name),
        # the tag's new directory flushed once for both links unless the
        # current link's directory was made after that flush began.
        self.assertIn(journal.count("fsync") + journal.count("fsync_dir"), (15, 16), journal.events)
