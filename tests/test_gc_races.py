"""
Online garbage collection against the requests running beside it: each race
docs/storage.md names, played out step by step on the in-memory driver with
a Clock and storage operations held at chosen points.
"""

import hashlib
import json

from twisted.internet import defer, task
from twisted.trial import unittest

from spectroreg.config.settings import GarbageCollectSettings, StorageSettings
from spectroreg.registry import Registry, paths
from spectroreg.registry import manifests as mf
from spectroreg.registry.collector import OnlineCollector
from spectroreg.registry.digests import parse_digest
from spectroreg.registry.errors import RegistryError
from spectroreg.registry.gcguard import DELETING, INUSE, IBlobGuard, NoGuard, StorageGuard, tombstone_dir
from spectroreg.storage.errors import PathNotFound
from spectroreg.storage.inmemory import InMemoryDriver
from tests.support.asynctest import async_test
from tests.support.stores import put_blob
from zope.interface.verify import verifyObject

GRACE = 60.0
# With the blob descriptor cache, as most configurations have it.
SETTINGS = StorageSettings(driver="inmemory", delete_enabled=True, blobdescriptor_cache="inmemory")


def sha(data):
    return parse_digest("sha256:" + hashlib.sha256(data).hexdigest())


def manifest(config, layers):
    return json.dumps({
        "schemaVersion": 2, "mediaType": mf.OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": str(sha(config)),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": str(sha(layer)),
                    "size": len(layer)} for layer in layers],
    }).encode()


class Gate:
    """Holds the first call of C{method} whose first argument C{match}es until released."""

    def __init__(self, method, match):
        self.method = method
        self.match = match
        self.used = False
        self.reached = defer.Deferred()
        self._proceed = defer.Deferred()

    def release(self):
        self._proceed.callback(None)


class GateDriver:
    """A driver whose operations can be held at chosen points (see L{Gate})."""

    def __init__(self, driver):
        self._driver = driver
        self._gates = []

    def gate(self, method, match):
        gate = Gate(method, match)
        self._gates.append(gate)
        return gate

    def __getattr__(self, name):
        target = getattr(self._driver, name)
        if not callable(target):
            return target

        def call(*args, **kwargs):
            for gate in self._gates:
                if gate.method == name and not gate.used and gate.match(args[0]):
                    gate.used = True
                    gate.reached.callback(args[0])
                    return gate._proceed.addCallback(lambda _: target(*args, **kwargs))
            return target(*args, **kwargs)

        return call


class Instance:
    """One daemon: a registry with its guard and collector on shared storage."""

    def __init__(self, driver, clock, guarded=True, delete_untagged=False):
        self.registry = Registry(driver, SETTINGS, reactor=clock)
        self.guard = StorageGuard(driver, GRACE, clock)
        if guarded:
            self.registry.guard = self.guard
        settings = GarbageCollectSettings(enabled=True, interval=1.0, graceperiod=GRACE,
                                          deleteuntagged=delete_untagged)
        self.collector = OnlineCollector(self.registry, self.guard, settings, clock)


class RaceTests(unittest.TestCase):
    guarded = True

    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(1700000000)
        self.memory = InMemoryDriver(reactor=self.clock)
        self.driver = GateDriver(self.memory)
        self.one = Instance(self.driver, self.clock, self.guarded)
        self.registry = self.one.registry
        self.layer = b"old layer" * 100
        self.config = b'{"old": true}'

    async def old_garbage(self):
        """An image pushed, tagged, then deleted, long enough ago: its blobs are garbage."""
        await put_blob(self.registry, "r", sha(self.layer), self.layer)
        await put_blob(self.registry, "r", sha(self.config), self.config)
        body = manifest(self.config, [self.layer])
        await self.registry.manifests.put("r", "t", body)
        await self.registry.manifests.delete("r", sha(body))
        self.clock.advance(2 * GRACE)

    async def exists(self, digest):
        try:
            await self.memory.stat(paths.blob_data(digest))
        except PathNotFound:
            return False
        return True

    async def new_manifest(self, registry=None):
        """A manifest with a new config and the old layer, its config pushed."""
        registry = registry or self.registry
        config = b'{"new": true}'
        await put_blob(registry, "r", sha(config), config)
        return manifest(config, [self.layer])

    async def revision_exists(self, body):
        try:
            await self.memory.stat(paths.revision_link("r", sha(body)))
        except PathNotFound:
            return False
        return True

    async def consistent(self, body):
        """A revision is stored only when everything it references is there."""
        if not await self.revision_exists(body):
            return True
        for digest in (sha(self.layer),):
            if not await self.exists(digest):
                return False
        return True

    def advance(self, seconds, step=0.1):
        for _ in range(int(seconds / step) + 1):
            self.clock.advance(step)

    def test_interfaces(self):
        verifyObject(IBlobGuard, NoGuard())
        verifyObject(IBlobGuard, StorageGuard(self.memory, GRACE, self.clock))

    @async_test
    async def test_refused_requests_leave_no_claim(self):
        """A manifest PUT refused, a mount that finds nothing: no marker stays in storage."""
        missing = b"never pushed"
        body = manifest(b"{}", [missing])
        with self.assertRaises(RegistryError):
            await self.registry.manifests.put("r", "t", body)
        self.assertIsNone(await self.registry.blobs.mount("r", sha(missing), "elsewhere"))
        with self.assertRaises(PathNotFound):
            await self.memory.list(INUSE)

    @async_test
    async def test_each_collection_counted(self):
        runs = []

        class Metrics:
            def gc_run(self, blobs_deleted=0, bytes_freed=0):
                runs.append((blobs_deleted, bytes_freed))

        self.one.collector.metrics = Metrics()
        await self.one.collector.collect()
        await self.old_garbage()
        await self.one.collector.collect()
        body = manifest(self.config, [self.layer])
        self.assertEqual(runs, [(0, 0), (3, len(self.layer) + len(self.config) + len(body))])

    @async_test
    async def test_young_blob_waits_for_its_manifest(self):
        """A blob pushed moments ago, its manifest not yet: the grace period keeps it."""
        data = b"just pushed"
        await put_blob(self.registry, "r", sha(data), data)
        self.clock.advance(GRACE / 2)
        outcome = await self.one.collector.collect()
        self.assertTrue(await self.exists(sha(data)))
        self.assertEqual(outcome.blobs_deleted, [])
        self.clock.advance(GRACE)
        await self.one.collector.collect()
        self.assertFalse(await self.exists(sha(data)))
        self.assertFalse(await self.registry.blobs.is_linked("r", sha(data)))

    @async_test
    async def test_manifest_put_after_the_mark(self):
        """The revision is written after the mark: the claim keeps the blob."""
        await self.old_garbage()
        body = await self.new_manifest()
        listing = self.driver.gate("walk", lambda path: path == paths.BLOBS)
        collecting = defer.ensureDeferred(self.one.collector.collect())
        await listing.reached
        await self.registry.manifests.put("r", "new", body)
        listing.release()
        await collecting
        self.assertTrue(await self.exists(sha(self.layer)))
        self.assertTrue(await self.consistent(body))
        self.assertFalse(await self.exists(sha(self.config)))

    @async_test
    async def test_manifest_put_during_the_delete(self):
        """
        The collection announced the delete and found no claim; the PUT
        claims now: it waits for the collection, then finds the blob gone
        and refuses the manifest (nothing stored).
        """
        await self.old_garbage()
        body = await self.new_manifest()
        layer = sha(self.layer)
        unlinking = self.driver.gate("delete", lambda path: path == paths.layer_dir("r", layer))
        collecting = defer.ensureDeferred(self.one.collector.collect())
        await unlinking.reached
        putting = defer.ensureDeferred(self.registry.manifests.put("r", "new", body))
        putting.addErrback(lambda f: f.trap(RegistryError) and f.value)
        self.advance(1.0)
        self.assertFalse(putting.called)
        unlinking.release()
        await collecting
        self.advance(1.0)
        error = await putting
        self.assertIsInstance(error, RegistryError)
        self.assertEqual(error.code, "MANIFEST_BLOB_UNKNOWN")
        self.assertFalse(await self.revision_exists(body))

    @async_test
    async def test_mount_during_the_delete(self):
        await self.old_garbage()
        await self.registry.manifests.put("r", "keep", await self.new_manifest())
        await self.registry.manifests.delete("r", "keep")
        layer = sha(self.layer)
        # The layer is still linked in r (an untagged revision keeps it), but
        # make it garbage: delete the revision.
        for revision in list(await self.memory.list(paths.revisions("r") + "/sha256")):
            await self.memory.delete(revision)
        self.clock.advance(2 * GRACE)
        unlinking = self.driver.gate("delete", lambda path: path == paths.layer_dir("r", layer))
        collecting = defer.ensureDeferred(self.one.collector.collect())
        await unlinking.reached
        mounting = defer.ensureDeferred(self.registry.blobs.mount("other", layer, "r"))
        self.advance(1.0)
        self.assertFalse(mounting.called)
        unlinking.release()
        await collecting
        self.advance(1.0)
        self.assertIsNone(await mounting)
        self.assertFalse(await self.registry.blobs.is_linked("other", layer))

    @async_test
    async def test_upload_finishing_during_the_delete(self):
        """The pushed copy is published once the collection is done: the blob exists."""
        await self.old_garbage()
        layer = sha(self.layer)
        unlinking = self.driver.gate("delete", lambda path: path == paths.layer_dir("r", layer))
        collecting = defer.ensureDeferred(self.one.collector.collect())
        await unlinking.reached
        pushing = defer.ensureDeferred(put_blob(self.registry, "r2", layer, self.layer))
        self.advance(1.0)
        self.assertFalse(pushing.called)
        unlinking.release()
        await collecting
        self.advance(1.0)
        await pushing
        self.assertEqual(await self.memory.get_content(paths.blob_data(layer)), self.layer)
        self.assertTrue(await self.registry.blobs.is_linked("r2", layer))
        # And the claim keeps it for the manifest that follows.
        await self.one.collector.collect()
        self.assertTrue(await self.exists(layer))

    @async_test
    async def test_claim_before_the_tombstone(self):
        """The PUT claimed before the collection announced the delete: it is seen."""
        await self.old_garbage()
        body = await self.new_manifest()
        layer = sha(self.layer)
        announcing = self.driver.gate("put_content", lambda path: path.startswith(tombstone_dir(layer)))
        collecting = defer.ensureDeferred(self.one.collector.collect())
        await announcing.reached
        await self.registry.manifests.put("r", "new", body)
        announcing.release()
        outcome = await collecting
        self.assertTrue(await self.exists(layer))
        self.assertTrue(await self.registry.blobs.is_linked("r", layer))
        self.assertGreaterEqual(outcome.skipped, 1)

    @async_test
    async def test_slow_manifest_put_claims_again(self):
        await self.old_garbage()
        body = await self.new_manifest()
        markers = INUSE + "/sha256/" + sha(self.layer).hex
        before = len(await self.memory.list(markers))
        writing = self.driver.gate("put_content", lambda path: path == paths.blob_data(sha(body)))
        putting = defer.ensureDeferred(self.registry.manifests.put("r", "new", body))
        await writing.reached
        self.clock.advance(GRACE * 0.75)
        writing.release()
        await putting
        # Claimed once, found stale before the revision, claimed again.
        self.assertEqual(len(await self.memory.list(markers)) - before, 2)
        self.assertTrue(await self.consistent(body))

    @async_test
    async def test_slow_collection_stops_in_time(self):
        await self.old_garbage()
        listing = self.driver.gate("walk", lambda path: path == paths.BLOBS)
        collecting = defer.ensureDeferred(self.one.collector.collect())
        await listing.reached
        self.clock.advance(GRACE * 0.6)
        listing.release()
        outcome = await collecting
        self.assertTrue(outcome.stopped_early)
        self.assertTrue(await self.exists(sha(self.layer)))

    @async_test
    async def test_daemon_stopping_during_a_collection(self):
        """The daemon stops while a collection marks: it deletes nothing more, so stopping is quick."""
        await self.old_garbage()
        listing = self.driver.gate("walk", lambda path: path == paths.BLOBS)
        collecting = defer.ensureDeferred(self.one.collector.collect())
        await listing.reached
        self.one.collector.stop()
        listing.release()
        outcome = await collecting
        self.assertTrue(outcome.stopped_early)
        self.assertEqual(outcome.blobs_deleted, [])
        self.assertTrue(await self.exists(sha(self.layer)))

    @async_test
    async def test_tombstone_of_a_dead_collection(self):
        """Requests stop waiting for a tombstone nobody lifts; the next collection removes it."""
        await self.old_garbage()
        body = await self.new_manifest()
        await self.memory.put_content(tombstone_dir(sha(self.layer)) + "/dead", b"")
        putting = defer.ensureDeferred(self.registry.manifests.put("r", "new", body))
        self.advance(30.0)
        self.assertFalse(putting.called)
        self.advance(35.0)
        await putting
        self.assertTrue(await self.consistent(body))
        await self.one.collector.collect()
        with self.assertRaises(PathNotFound):
            await self.memory.list(DELETING + "/sha256/" + sha(self.layer).hex)

    @async_test
    async def test_another_instance_with_a_stale_cache(self):
        """A second daemon's cache says the layer is linked; its PUT looks at storage."""
        two = Instance(self.driver, self.clock, self.guarded)
        await put_blob(two.registry, "r", sha(self.layer), self.layer)
        self.assertTrue(await two.registry.blobs.is_linked("r", sha(self.layer)))
        await self.old_garbage()
        await self.one.collector.collect()
        self.assertFalse(await self.exists(sha(self.layer)))
        body = await self.new_manifest(two.registry)
        with self.assertRaises(RegistryError) as caught:
            await two.registry.manifests.put("r", "new", body)
        self.assertEqual(caught.exception.code, "MANIFEST_BLOB_UNKNOWN")
        self.assertFalse(await self.revision_exists(body))


class OnlineCollectorTests(unittest.TestCase):
    @async_test
    async def test_dry_run_deletes_nothing(self):
        clock = task.Clock()
        clock.advance(1700000000)
        memory = InMemoryDriver(reactor=clock)
        registry = Registry(memory, SETTINGS, reactor=clock)
        guard = registry.guard = StorageGuard(memory, GRACE, clock)
        settings = GarbageCollectSettings(enabled=True, graceperiod=GRACE, deleteuntagged=True, dryrun=True)
        collector = OnlineCollector(registry, guard, settings, clock)
        data = b"orphan"
        await put_blob(registry, "r", sha(data), data)
        body = manifest(b"{}", [])
        await put_blob(registry, "r", sha(b"{}"), b"{}")
        await registry.manifests.put("r", sha(body), body)
        clock.advance(2 * GRACE)
        before = sorted(info.path for info in await _all_files(memory) if not info.path.startswith(INUSE))
        outcome = await collector.collect()
        self.assertEqual(sorted(outcome.eligible, key=str), sorted([sha(data), sha(b"{}"), sha(body)], key=str))
        self.assertEqual(outcome.manifests_deleted, [("r", sha(body))])
        self.assertEqual(sorted(info.path for info in await _all_files(memory)), before)

    @async_test
    async def test_link_to_a_missing_blob(self):
        """A layer link left pointing at nothing (Distribution 2.8's collector) is removed."""
        clock = task.Clock()
        clock.advance(1700000000)
        one = Instance(InMemoryDriver(reactor=clock), clock)
        data = b"gone"
        await put_blob(one.registry, "r", sha(data), data)
        await one.registry.driver.delete(paths.blob_dir(sha(data)))
        clock.advance(2 * GRACE)
        outcome = await one.collector.collect()
        self.assertEqual(outcome.links_deleted, 1)
        with self.assertRaises(PathNotFound):
            await one.registry.driver.stat(paths.layer_link("r", sha(data)))


async def _all_files(driver):
    found = []
    await driver.walk("/", lambda info: None if info.is_dir else found.append(info))
    return found


class UntaggedRaceTests(unittest.TestCase):
    guarded = True

    @async_test
    async def test_retag_during_collection(self):
        """An untagged manifest tagged again while the collection deletes untagged ones stays whole."""
        clock = task.Clock()
        clock.advance(1700000000)
        memory = InMemoryDriver(reactor=clock)
        driver = GateDriver(memory)
        one = Instance(driver, clock, self.guarded, delete_untagged=True)
        layer, config = b"layer" * 10, b"{}"
        await put_blob(one.registry, "r", sha(layer), layer)
        await put_blob(one.registry, "r", sha(config), config)
        body = manifest(config, [layer])
        await one.registry.manifests.put("r", sha(body), body)
        clock.advance(2 * GRACE)
        announcing = driver.gate("put_content", lambda path: path.startswith(tombstone_dir(sha(body))))
        collecting = defer.ensureDeferred(one.collector.collect())
        await announcing.reached
        await one.registry.manifests.put("r", "again", body)
        announcing.release()
        outcome = await collecting
        self.assertEqual(outcome.manifests_deleted, [])
        record = await one.registry.manifests.get("r", "again")
        self.assertEqual(record.body, body)
        for digest in (sha(layer), sha(config)):
            self.assertEqual((await one.registry.blobs.stat("r", digest)).digest, digest)
        # Untagged and old again: now it goes, with its blobs.
        await one.registry.manifests.delete("r", "again")
        clock.advance(2 * GRACE)
        outcome = await one.collector.collect()
        self.assertEqual(outcome.manifests_deleted, [("r", sha(body))])
        self.assertEqual(sorted(outcome.blobs_deleted, key=str), sorted([sha(layer), sha(config), sha(body)], key=str))
