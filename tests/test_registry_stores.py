"""
The registry's stores through their own public API (spectroreg.registry):
uploads (open, close, commit, cancel, locks, hash states), tags, referrers,
catalog, the blob store's absent-blob memory, the shared StoreIO, and the
facade's public surface.
"""

import json

from twisted.internet import defer, task
from twisted.trial import unittest

from spectroreg.config.settings import StorageSettings
from spectroreg.registry import Registry
from spectroreg.registry import manifests as mf
from spectroreg.registry import paths
from spectroreg.registry.errors import ManifestTooLarge, RegistryError, UploadOffsetMismatch
from spectroreg.registry.storeio import StoreIO
from spectroreg.registry.uploads import HashStates, UploadLocks, digest_hasher
from spectroreg.storage.errors import PathNotFound
from spectroreg.storage.inmemory import InMemoryDriver
from tests.support.asynctest import async_test
from tests.support.stores import finish_upload, manifest_body, put_blob, sha

SETTINGS = StorageSettings(driver="inmemory", delete_enabled=True)


class StoreTestCase(unittest.TestCase):
    settings = SETTINGS

    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(1700000000)
        self.driver = InMemoryDriver(reactor=self.clock)
        self.registry = Registry(self.driver, self.settings, reactor=self.clock)

    async def uploads_left(self, name):
        try:
            return await self.driver.list(paths.uploads(name))
        except PathNotFound:
            return []


class UploadWriterTests(StoreTestCase):
    @async_test
    async def test_commit_publishes_links_and_removes_the_upload(self):
        uploads = self.registry.uploads
        upload_id = await uploads.start("r")
        writer = await uploads.open("r", upload_id)
        await writer.write(b"hello")
        descriptor = await writer.commit(sha(b"hello"))
        self.assertEqual((descriptor.digest, descriptor.size), (sha(b"hello"), 5))
        self.assertFalse(writer.open)
        self.assertEqual(await self.driver.get_content(paths.blob_data(sha(b"hello"))), b"hello")
        self.assertTrue(await self.registry.blobs.is_linked("r", sha(b"hello")))
        self.assertFalse(await uploads.exists("r", upload_id))
        self.assertNotIn(("r", upload_id), uploads.hashes)
        self.assertEqual(len(uploads.locks), 0)

    @async_test
    async def test_commit_under_the_wrong_digest_stores_nothing(self):
        uploads = self.registry.uploads
        upload_id = await uploads.start("r")
        writer = await uploads.open("r", upload_id)
        await writer.write(b"hello")
        with self.assertRaises(RegistryError) as caught:
            await writer.commit(sha(b"other"))
        self.assertEqual(caught.exception.code, "DIGEST_INVALID")
        self.assertEqual(await self.uploads_left("r"), [])
        for digest in (sha(b"hello"), sha(b"other")):
            with self.assertRaises(PathNotFound):
                await self.driver.stat(paths.blob_data(digest))
        self.assertEqual(len(uploads.locks), 0)

    @async_test
    async def test_cancel_removes_the_upload_and_releases_it(self):
        uploads = self.registry.uploads
        upload_id = await uploads.start("r")
        writer = await uploads.open("r", upload_id)
        waiting = defer.ensureDeferred(uploads.open("r", upload_id))
        await writer.write(b"partial")
        await writer.cancel()
        self.assertFalse(writer.open)
        self.assertFalse(await uploads.exists("r", upload_id))
        self.assertEqual(await self.uploads_left("r"), [])
        self.assertNotIn(("r", upload_id), uploads.hashes)
        # The writer waiting for the lock got it, and found the upload gone.
        with self.assertRaises(RegistryError) as caught:
            await waiting
        self.assertEqual(caught.exception.code, "BLOB_UPLOAD_UNKNOWN")
        self.assertEqual(len(uploads.locks), 0)

    @async_test
    async def test_close_keeps_the_upload_resumable(self):
        uploads = self.registry.uploads
        upload_id = await uploads.start("r")
        writer = await uploads.open("r", upload_id)
        await writer.write(b"abc")
        await writer.close()
        await writer.close()  # a second close does nothing
        self.assertEqual(len(uploads.locks), 0)
        self.assertIn(("r", upload_id), uploads.hashes)
        self.assertEqual(await uploads.size("r", upload_id), 3)
        with self.assertRaises(UploadOffsetMismatch) as caught:
            await uploads.open("r", upload_id, 2)
        self.assertEqual((caught.exception.offset, caught.exception.size), (2, 3))
        writer = await uploads.open("r", upload_id, 3)
        await writer.write(b"def")
        descriptor = await writer.commit(sha(b"abcdef"))
        self.assertEqual(descriptor.size, 6)

    @async_test
    async def test_commit_of_what_the_upload_holds(self):
        uploads = self.registry.uploads
        upload_id = await uploads.start("r")
        writer = await uploads.open("r", upload_id)
        await writer.write(b"stored")
        await writer.close()
        descriptor = await finish_upload(self.registry, "r", upload_id, sha(b"stored"))
        self.assertEqual((descriptor.digest, descriptor.size), (sha(b"stored"), 6))
        self.assertFalse(await uploads.exists("r", upload_id))

    @async_test
    async def test_cancel_of_an_unknown_upload(self):
        with self.assertRaises(RegistryError) as caught:
            await self.registry.uploads.cancel("r", "not-an-upload")
        self.assertEqual(caught.exception.code, "BLOB_UPLOAD_UNKNOWN")

    @async_test
    async def test_purge_forgets_hash_states(self):
        uploads = self.registry.uploads
        upload_id = await uploads.start("r")
        self.assertIn(("r", upload_id), uploads.hashes)
        self.clock.advance(3600)
        self.assertEqual(await uploads.purge(60, dry_run=True), 1)
        self.assertIn(("r", upload_id), uploads.hashes)
        self.assertEqual(await uploads.purge(60), 1)
        self.assertNotIn(("r", upload_id), uploads.hashes)
        self.assertFalse(await uploads.exists("r", upload_id))


class PublishOrderTests(StoreTestCase):
    @async_test
    async def test_marker_written_while_the_blob_is_looked_up(self):
        """The marker and the look at the blob go to storage at once; the move waits for both."""
        data = b"layer"
        upload_id = await self.registry.uploads.start("r")
        writer = await self.registry.uploads.open("r", upload_id)
        await writer.write(data)
        marking = defer.Deferred()
        calls = []
        put_content, stat, move = self.driver.put_content, self.driver.stat, self.driver.move

        def holding(path, content, durable=True):
            if path == paths.upload_verified("r", upload_id):
                calls.append("marker")
                return marking.addCallback(lambda _: put_content(path, content, durable))
            return put_content(path, content, durable)

        def looking(path):
            calls.append(("stat", path))
            return stat(path)

        def moving(source, destination):
            calls.append("move")
            return move(source, destination)

        self.patch(self.driver, "put_content", holding)
        self.patch(self.driver, "stat", looking)
        self.patch(self.driver, "move", moving)
        committing = defer.ensureDeferred(writer.commit(sha(data)))
        self.assertEqual(calls, ["marker", ("stat", paths.blob_data(sha(data)))])
        self.assertNoResult(committing)
        marking.callback(None)
        await committing
        self.assertEqual(calls[2:], ["move"])
        self.assertEqual((await self.registry.blobs.stat("r", sha(data))).size, len(data))


class UploadLocksTests(unittest.TestCase):
    @async_test
    async def test_one_holder_per_upload_and_nothing_kept(self):
        locks = UploadLocks()
        release = await locks.acquire(("r", "u"))
        other = await locks.acquire(("r", "v"))
        second = defer.ensureDeferred(locks.acquire(("r", "u")))
        self.assertFalse(second.called)
        self.assertEqual(len(locks), 2)
        release()
        release()  # once only: the second holder keeps its lock
        release_second = await second
        third = defer.ensureDeferred(locks.acquire(("r", "u")))
        self.assertFalse(third.called)
        release_second()
        (await third)()
        other()
        self.assertEqual(len(locks), 0)


class HashStatesTests(unittest.SynchronousTestCase):
    def test_resume_only_at_the_remembered_offset(self):
        states = HashStates()
        hasher = digest_hasher()
        hasher.update(b"abc")
        states.remember(("r", "u"), 3, hasher)
        hasher.update(b"more")  # a copy was kept
        self.assertIsNone(states.resume(("r", "u"), 2))
        resumed = states.resume(("r", "u"), 3)
        self.assertEqual(resumed.hexdigest(), sha(b"abc").hex)
        resumed.update(b"x")
        self.assertEqual(states.resume(("r", "u"), 3).hexdigest(), sha(b"abc").hex)
        states.remember(("r", "u"), 3, None)
        self.assertNotIn(("r", "u"), states)
        self.assertIsNone(states.resume(("r", "u"), 3))

    def test_bounded(self):
        """Abandoned uploads cannot make it grow: the least recently written go first."""
        states = HashStates(capacity=3)
        for n in range(5):
            states.remember(("r", str(n)), 0, digest_hasher())
        self.assertEqual(len(states), 3)
        self.assertNotIn(("r", "0"), states)
        self.assertNotIn(("r", "1"), states)
        self.assertIsNotNone(states.resume(("r", "2"), 0))  # now the most recent
        states.remember(("r", "5"), 0, digest_hasher())
        self.assertIn(("r", "2"), states)
        self.assertNotIn(("r", "3"), states)
        self.assertEqual(HashStates().CAPACITY, 10000)


class DroppedHashStateTests(StoreTestCase):
    @async_test
    async def test_upload_whose_state_was_dropped_is_hashed_from_storage(self):
        uploads = self.registry.uploads
        uploads.hashes = HashStates(capacity=1)
        first = await uploads.start("r")
        writer = await uploads.open("r", first)
        await writer.write(b"hello ")
        await writer.close()
        # Another upload pushes the first one's state out.
        second = await uploads.start("r")
        self.assertNotIn(("r", first), uploads.hashes)
        writer = await uploads.open("r", first)
        await writer.write(b"world")
        descriptor = await writer.commit(sha(b"hello world"))
        self.assertEqual((descriptor.digest, descriptor.size), (sha(b"hello world"), 11))
        writer = await uploads.open("r", second)
        await writer.write(b"x")
        with self.assertRaises(RegistryError) as caught:
            await writer.commit(sha(b"y"))
        self.assertEqual(caught.exception.code, "DIGEST_INVALID")


class TagStoreTests(StoreTestCase):
    async def push(self, name, tag, config):
        await put_blob(self.registry, name, sha(config), config)
        digest, _ = await self.registry.manifests.put(name, tag, manifest_body(config, []), mf.OCI_MANIFEST)
        return digest

    @async_test
    async def test_get_tag_untag_all(self):
        tags = self.registry.tags
        with self.assertRaises(RegistryError) as caught:
            await tags.all("r")
        self.assertEqual(caught.exception.code, "NAME_UNKNOWN")
        self.assertEqual(await tags.all("r", must_exist=False), [])
        first = await self.push("r", "v1", b"one")
        second = await self.push("r", "v2", b"two")
        self.assertEqual(await tags.get("r", "v1"), first)
        await tags.tag("r", "latest", second)
        self.assertEqual(await tags.all("r"), ["latest", "v1", "v2"])
        self.assertEqual(await self.registry.manifests.resolve("r", "latest"), second)
        await tags.untag("r", "v1")
        with self.assertRaises(RegistryError) as caught:
            await tags.get("r", "v1")
        self.assertEqual(caught.exception.code, "MANIFEST_UNKNOWN")
        with self.assertRaises(RegistryError) as caught:
            await tags.untag("r", "v1")
        self.assertEqual(caught.exception.code, "MANIFEST_UNKNOWN")
        await tags.untag_digest("r", second)
        self.assertEqual(await tags.all("r", must_exist=False), [])


    @async_test
    async def test_index_and_current_written_at_once(self):
        """Neither of a tag's two links waits for the other: both need only the revision."""
        digest = await self.push("r", "v1", b"one")
        held = {}
        put_content = self.driver.put_content

        def holding(path, content, durable=True):
            if path.endswith("/link") and "/_manifests/tags/" in path:
                held[path] = defer.Deferred()
                return held[path].addCallback(lambda _: put_content(path, content, durable))
            return put_content(path, content, durable)

        self.patch(self.driver, "put_content", holding)
        tagging = defer.ensureDeferred(self.registry.tags.tag("r", "latest", digest))
        self.assertEqual(sorted(held), sorted([paths.tag_index_link("r", "latest", digest),
                                               paths.tag_current_link("r", "latest")]))
        self.assertNoResult(tagging)
        for d in held.values():
            d.callback(None)
        await tagging
        self.assertEqual(await self.registry.tags.get("r", "latest"), digest)


class ReferrerIndexTests(StoreTestCase):
    @async_test
    async def test_add_get_remove(self):
        await put_blob(self.registry, "r", sha(b"c"), b"c")
        subject = manifest_body(b"c", [])
        subject_digest, _ = await self.registry.manifests.put("r", "s", subject, mf.OCI_MANIFEST)
        referrer = manifest_body(b"c", [], subject={"mediaType": mf.OCI_MANIFEST, "digest": str(subject_digest),
                                                    "size": len(subject)}, artifactType="application/x-sig")
        referrer_digest, _ = await self.registry.manifests.put("r", sha(referrer), referrer, mf.OCI_MANIFEST)
        index = self.registry.referrers
        found = await index.get("r", subject_digest)
        self.assertEqual([d["digest"] for d in found], [str(referrer_digest)])
        self.assertEqual(await index.get("r", subject_digest, "application/other"), [])
        await index.remove("r", subject_digest, referrer_digest)
        self.assertEqual(await index.get("r", subject_digest), [])
        # Rebuilt from the revisions, the entry is back.
        self.assertEqual(await index.rebuild("r"), 1)
        self.assertEqual(len(await index.get("r", subject_digest)), 1)


class ManifestStoreTests(StoreTestCase):
    @async_test
    async def test_the_size_limit(self):
        await put_blob(self.registry, "r", sha(b"c"), b"c")
        document = json.loads(manifest_body(b"c", []))
        document["annotations"] = {"pad": ""}
        document["annotations"]["pad"] = "x" * (mf.MAX_MANIFEST_SIZE - len(json.dumps(document)) + 1)
        body = json.dumps(document).encode("utf-8")
        self.assertEqual(len(body), mf.MAX_MANIFEST_SIZE + 1)
        with self.assertRaises(ManifestTooLarge):
            await self.registry.manifests.put("r", "big", body, mf.OCI_MANIFEST)
        with self.assertRaises(PathNotFound):
            await self.driver.stat(paths.blob_data(sha(body)))
        self.assertEqual(await self.registry.tags.all("r", must_exist=False), [])
        document["annotations"]["pad"] = document["annotations"]["pad"][1:]
        await self.registry.manifests.put("r", "big", json.dumps(document).encode("utf-8"), mf.OCI_MANIFEST)
        self.assertEqual((await self.registry.manifests.get("r", "big")).size, mf.MAX_MANIFEST_SIZE)


class ManifestPutOrderTests(StoreTestCase):
    @async_test
    async def test_blob_looked_up_while_references_are_checked(self):
        config = b"config"
        await put_blob(self.registry, "r", sha(config), config)
        body = manifest_body(config, [])
        calls = []
        stat, get_content = self.driver.stat, self.driver.get_content

        def looking(path):
            calls.append(("stat", path))
            return stat(path)

        def reading(path):
            calls.append(("get_content", path))
            return get_content(path)

        self.patch(self.driver, "stat", looking)
        self.patch(self.driver, "get_content", reading)
        await self.registry.manifests.put("r", "v1", body, mf.OCI_MANIFEST)
        # The manifest's own blob is asked about first, then its config's link read.
        self.assertEqual(calls[:2], [("stat", paths.blob_data(sha(body))),
                                     ("get_content", paths.layer_link("r", sha(config)))])


class CatalogTests(StoreTestCase):
    @async_test
    async def test_names_and_exists(self):
        catalog = self.registry.catalog
        self.assertEqual(await catalog.names(), [])
        self.assertFalse(await catalog.exists("a/b"))
        await self.registry.uploads.start("only/upload")
        await put_blob(self.registry, "a/b", sha(b"x"), b"x")
        self.assertEqual(await catalog.names(), ["a/b"])
        self.assertTrue(await catalog.exists("a/b"))
        self.assertTrue(await catalog.exists("only/upload"))


class BlobStoreTests(StoreTestCase):
    @async_test
    async def test_absent_blobs_are_remembered_until_found(self):
        blobs = self.registry.blobs
        with self.assertRaises(RegistryError):
            await blobs.stat_data(sha(b"later"))
        self.assertTrue(blobs.forget_absent(sha(b"later")))
        self.assertFalse(blobs.forget_absent(sha(b"later")))
        with self.assertRaises(RegistryError):
            await blobs.stat_data(sha(b"later"))
        await put_blob(self.registry, "r", sha(b"later"), b"later")
        # Publishing it forgot it; a stat finding it would have too.
        self.assertFalse(blobs.forget_absent(sha(b"later")))

    @async_test
    async def test_delete_and_mount(self):
        blobs = self.registry.blobs
        await put_blob(self.registry, "a", sha(b"x"), b"x")
        self.assertIsNone(await blobs.mount("b", sha(b"x"), source="c"))
        self.assertEqual((await blobs.mount("b", sha(b"x"), source="a")).size, 1)
        self.assertEqual((await blobs.mount("c", sha(b"x"))).size, 1)
        await blobs.delete("a", sha(b"x"))
        self.assertFalse(await blobs.is_linked("a", sha(b"x")))
        with self.assertRaises(RegistryError) as caught:
            await blobs.delete("a", sha(b"x"))
        self.assertEqual(caught.exception.code, "BLOB_UNKNOWN")
        self.assertEqual((await blobs.stat("b", sha(b"x"))).size, 1)


class StoreIOTests(unittest.TestCase):
    def setUp(self):
        self.driver = InMemoryDriver()
        self.io = StoreIO(self.driver, SETTINGS)

    @async_test
    async def test_missing_paths_are_empty(self):
        self.assertFalse(await self.io.exists("/nothing"))
        self.assertEqual(await self.io.list("/nothing"), [])
        self.assertFalse(await self.io.delete("/nothing"))
        self.assertIsNone(await self.io.read_link("/nothing"))
        self.assertFalse(await self.io.each_repository_dir("_layers", lambda path: defer.succeed(False)))

    @async_test
    async def test_links(self):
        await self.io.write_link("/link", sha(b"x"))
        self.assertEqual(await self.io.read_link("/link"), sha(b"x"))
        await self.driver.put_content("/bad", b"not a digest")
        self.assertIsNone(await self.io.read_link("/bad"))
        self.assertTrue(await self.io.delete("/link"))

    def test_policy(self):
        StoreIO(self.driver, StorageSettings(driver="inmemory", delete_enabled=True)).check_delete()
        for settings, detail in [
            (StorageSettings(driver="inmemory", readonly=True), "registry is in read-only mode"),
            (StorageSettings(driver="inmemory", delete_enabled=False), "deletes are disabled (storage.delete.enabled)"),
        ]:
            with self.assertRaises(RegistryError) as caught:
                StoreIO(self.driver, settings).check_delete()
            self.assertEqual((caught.exception.code, caught.exception.detail), ("UNSUPPORTED", detail))


class FacadeTests(unittest.SynchronousTestCase):
    def test_public_surface(self):
        # A thin facade over the stores: what callers may use, pinned.
        public = sorted(name for name in dir(Registry(InMemoryDriver(), SETTINGS)) if not name.startswith("_"))
        self.assertEqual(public, [
            "blobs", "cache", "catalog", "check_delete", "check_writable", "delete_enabled", "driver",
            "guard", "manifests", "readonly", "referrers", "settings", "shared_cache", "tags", "uploads",
        ])


class InterfaceTests(unittest.TestCase):
    def test_stores_provide_their_interfaces(self):
        from zope.interface.verify import verifyObject

        from spectroreg.registry import interfaces

        registry = Registry(InMemoryDriver(), SETTINGS)
        for interface, store in [
            (interfaces.IBlobStore, registry.blobs),
            (interfaces.IUploadStore, registry.uploads),
            (interfaces.IManifestStore, registry.manifests),
            (interfaces.ITagStore, registry.tags),
            (interfaces.IReferrerIndex, registry.referrers),
            (interfaces.ICatalog, registry.catalog),
        ]:
            self.assertTrue(verifyObject(interface, store), interface)

    @async_test
    async def test_upload_writer_provides_its_interface(self):
        from zope.interface.verify import verifyObject

        from spectroreg.registry.interfaces import IUploadWriter

        registry = Registry(InMemoryDriver(), SETTINGS)
        upload_id = await registry.uploads.start("r")
        writer = await registry.uploads.open("r", upload_id)
        self.assertTrue(verifyObject(IUploadWriter, writer))
        await writer.cancel()
