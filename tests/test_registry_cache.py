"""
The registry's caches can never bring back what storage no longer holds:
generations and tickets (spectroreg.registry.cache), lookups interleaved
with deletes step by step on a driver whose answers the test holds back,
and concurrent HEADs and DELETEs against the real daemon.
"""

import hashlib
import os
import threading

from twisted.internet import defer, task
from twisted.trial import unittest

from spectroreg.config.settings import StorageSettings
from spectroreg.registry import Registry
from spectroreg.registry import manifests as mf
from spectroreg.registry.cache import BlobDescriptorCache, Generations, ManifestCache
from spectroreg.registry.digests import parse_digest
from spectroreg.registry.errors import RegistryError
from spectroreg.registry import ManifestRecord
from spectroreg.storage.base import ValidatingDriver
from spectroreg.storage.inmemory import InMemoryDriver
from tests.support import rawhttp
from tests.support.asynctest import async_test
from tests.support.stores import manifest_body, put_blob

CACHED = StorageSettings(driver="inmemory", delete_enabled=True, blobdescriptor_cache="inmemory")


def sha(data):
    return parse_digest("sha256:" + hashlib.sha256(data).hexdigest())


class GenerationTests(unittest.SynchronousTestCase):
    def test_ticket_void_after_invalidation(self):
        cache = BlobDescriptorCache()
        before = cache.descriptor("d")
        cache.forget("d")
        self.assertFalse(before.fill((1, "t")))
        self.assertIsNone(cache.get("d"))
        after = cache.descriptor("d")
        self.assertTrue(after.fill((1, "t")))
        self.assertEqual(cache.descriptor("d").value, (1, "t"))

    def test_unlink_voids_every_lookup_of_the_digest(self):
        cache = BlobDescriptorCache()
        here, there, size = cache.link("r", "d"), cache.link("s", "d"), cache.descriptor("d")
        cache.unlink("r", "d")
        self.assertEqual((here.fill(True), there.fill(True), size.fill((1, "t"))), (False, False, False))
        self.assertEqual((cache.is_linked("r", "d"), cache.is_linked("s", "d")), (False, False))

    def test_other_keys_unaffected(self):
        generations = Generations(stripes=1 << 16)
        cache = BlobDescriptorCache(generations=generations)
        keys = ["d{}".format(n) for n in range(50)]
        tickets = {key: cache.link("r", key) for key in keys}
        cache.unlink("r", "d0")
        kept = [key for key in keys if tickets[key].fill(True)]
        # A shared stripe may void another key's ticket (a skipped fill), never more.
        self.assertNotIn("d0", kept)
        self.assertGreater(len(kept), 40)

    def test_bounded_lru(self):
        cache = BlobDescriptorCache(capacity=2)
        for key, size in (("a", 1), ("b", 2)):
            cache.descriptor(key).fill((size, "t"))
        cache.get("a")
        cache.descriptor("c").fill((3, "t"))
        self.assertEqual((cache.get("a"), cache.get("b"), cache.get("c")), ((1, "t"), None, (3, "t")))
        self.assertEqual(len(cache), 2)

    def test_forget_everywhere(self):
        cache = BlobDescriptorCache()
        cache.descriptor("a").fill((1, "t"))
        cache.link("r", "a").fill(True)
        cache.link("s", "a").fill(True)
        cache.unlink("r", "a")
        self.assertEqual((cache.is_linked("r", "a"), cache.is_linked("s", "a")), (False, True))
        cache.forget("a")
        self.assertEqual((cache.get("a"), cache.is_linked("s", "a")), (None, False))

    def test_manifest_cache_ticket(self):
        cache = ManifestCache()
        record = ManifestRecord(b"{}", sha(b"{}"), mf.OCI_MANIFEST)
        ticket = cache.lookup(record.digest)
        cache.forget(record.digest)
        self.assertFalse(ticket.fill(record))
        self.assertIsNone(cache.get(record.digest))
        self.assertTrue(cache.lookup(record.digest).fill(record))
        self.assertIs(cache.lookup(record.digest).value, record)


class HoldingDriver:
    """
    Wraps a driver; a call matching a hold runs at once (storage is read
    or written then) but its answer reaches the caller only when the test
    releases the hold: a request in flight while another one completes.
    """

    def __init__(self, driver):
        self.driver = driver
        self._holds = []

    def hold(self, operation, path):
        """Hold the answer to the next C{operation} on C{path}; a Deferred to fire to release it."""
        release = defer.Deferred()
        self._holds.append((operation, path, release))
        return release

    def __getattr__(self, name):
        attribute = getattr(self.driver, name)
        if not callable(attribute) or name.startswith("_"):
            return attribute

        def call(path, *args, **kwargs):
            for hold in self._holds:
                if hold[:2] == (name, path):
                    self._holds.remove(hold)
                    outcome = defer.maybeDeferred(attribute, path, *args, **kwargs)
                    release = hold[2]
                    release.addCallback(lambda _: outcome)
                    return release
            return attribute(path, *args, **kwargs)

        return call


def blob_data(digest):
    return "/docker/registry/v2/blobs/sha256/{}/{}/data".format(digest.hex[:2], digest.hex)


def layer_link(name, digest):
    return "/docker/registry/v2/repositories/{}/_layers/sha256/{}/link".format(name, digest.hex)


def revision_link(name, digest):
    return "/docker/registry/v2/repositories/{}/_manifests/revisions/sha256/{}/link".format(name, digest.hex)


class InterleavingTests(unittest.TestCase):
    """A lookup that started before an invalidation never fills the cache after it."""

    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(1700000000)
        self.shared = ValidatingDriver(InMemoryDriver(reactor=self.clock))
        self.driver = HoldingDriver(self.shared)
        self.registry = Registry(self.driver, CACHED, reactor=self.clock)
        # Another daemon on the same storage, without a cache.
        self.other = Registry(self.shared, StorageSettings(driver="inmemory", delete_enabled=True),
                              reactor=self.clock)

    async def assert_unknown(self, attempt, code="BLOB_UNKNOWN"):
        with self.assertRaises(RegistryError) as caught:
            await attempt
        self.assertEqual(caught.exception.code, code)

    @async_test
    async def test_head_in_flight_during_delete(self):
        digest = (await put_blob(self.other, "r", sha(b"blob"), b"blob")).digest
        release = self.driver.hold("get_content", layer_link("r", digest))
        head = defer.ensureDeferred(self.registry.blobs.stat("r", digest))
        self.assertNoResult(head)
        # The HEAD has read the link; the DELETE now runs to its end.
        await self.registry.blobs.delete("r", digest)
        release.callback(None)
        self.assertEqual((await head).size, 4)
        await self.assert_unknown(self.registry.blobs.stat("r", digest))
        self.assertIsNone(await self.registry.blobs.mount("s", digest, "r"))

    @async_test
    async def test_head_during_delete_of_cached_blob(self):
        digest = (await put_blob(self.registry, "r", sha(b"blob"), b"blob")).digest
        await self.registry.blobs.stat("r", digest)
        # The DELETE has evicted the entry and is reading the link.
        release = self.driver.hold("get_content", layer_link("r", digest))
        deleting = defer.ensureDeferred(self.registry.blobs.delete("r", digest))
        self.assertNoResult(deleting)
        # A HEAD meanwhile reads storage, where the link still is.
        self.assertEqual((await self.registry.blobs.stat("r", digest)).size, 4)
        release.callback(None)
        await deleting
        await self.assert_unknown(self.registry.blobs.stat("r", digest))

    @async_test
    async def test_link_written_during_delete(self):
        digest = (await put_blob(self.other, "r", sha(b"blob"), b"blob")).digest
        # A mount into "s" writes its link; before it hears back, the link is deleted.
        release = self.driver.hold("put_content", layer_link("s", digest))
        mount = defer.ensureDeferred(self.registry.blobs.mount("s", digest, "r"))
        await self.registry.blobs.delete("s", digest)
        release.callback(None)
        await mount
        await self.assert_unknown(self.registry.blobs.stat("s", digest))

    @async_test
    async def test_manifest_revision_in_flight_during_delete(self):
        for blob in (b"config", b"layer"):
            await put_blob(self.other, "r", sha(blob), blob)
        body = manifest_body(b"config", [b"layer"])
        digest, _ = await self.other.manifests.put("r", "v1", body, mf.OCI_MANIFEST)
        release = self.driver.hold("get_content", revision_link("r", digest))
        # A blob HEAD of the manifest's digest (a revision link) is in flight.
        head = defer.ensureDeferred(self.registry.blobs.stat("r", digest))
        await self.registry.manifests.delete("r", digest)
        release.callback(None)
        await head
        await self.assert_unknown(self.registry.blobs.stat("r", digest))

    @async_test
    async def test_stat_in_flight_when_data_is_found_gone(self):
        digest = (await put_blob(self.other, "r", sha(b"blob"), b"blob")).digest
        release = self.driver.hold("stat", blob_data(digest))
        head = defer.ensureDeferred(self.registry.blobs.stat_data(digest))
        await self.shared.delete(blob_data(digest))
        self.registry.blobs.forget(digest)  # what a GET finding the data gone does
        release.callback(None)
        await head
        self.assertIsNone(self.registry.cache.get(digest))
        await self.assert_unknown(self.registry.blobs.stat_data(digest))

    @async_test
    async def test_manifest_read_in_flight_when_forgotten(self):
        for blob in (b"config", b"layer"):
            await put_blob(self.other, "r", sha(blob), blob)
        digest, _ = await self.other.manifests.put("r", "v1", manifest_body(b"config", [b"layer"]), mf.OCI_MANIFEST)
        release = self.driver.hold("get_content", blob_data(digest))
        get = defer.ensureDeferred(self.registry.manifests.get("r", "v1"))
        self.registry.blobs.forget(digest)
        release.callback(None)
        await get
        self.assertIsNone(self.registry.manifests.cache.get(digest))


class DaemonRaceTests(unittest.TestCase):
    """
    The reproduction: HEADs and a DELETE of one blob at once, then a HEAD
    and a GET; with the descriptor cache on, each round must end in 404.
    """

    ROUNDS = 40
    HEADS = 4

    def setUp(self):
        from tests.support.daemon import start_daemon
        from tests.support.requirements import require_external

        require_external("the spectroreg daemon running as a server on 127.0.0.1")
        config = {
            "version": "0.1",
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": os.path.abspath(self.mktemp())},
                "cache": {"blobdescriptor": "inmemory"},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
        }
        self.server = start_daemon(self, config, timeout=30.0)

    def test_no_deleted_blob_served(self):
        stale = []
        for n in range(self.ROUNDS):
            data = "round-{}-{}".format(n, id(self)).encode("ascii")
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            path = "/v2/race/app/blobs/" + digest
            response = rawhttp.request(self.server, "POST", "/v2/race/app/blobs/uploads/?digest=" + digest, data)
            self.assertEqual(response.status, 201, response.describe())
            start = threading.Barrier(self.HEADS + 1)
            answers = []

            def send(method):
                start.wait(10)
                answers.append((method, rawhttp.request(self.server, method, path).status))

            threads = [threading.Thread(target=send, args=("HEAD",)) for _ in range(self.HEADS)]
            threads.append(threading.Thread(target=send, args=("DELETE",)))
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            self.assertIn(("DELETE", 202), answers)
            after = (rawhttp.request(self.server, "HEAD", path).status,
                     rawhttp.request(self.server, "GET", path).status)
            if after != (404, 404):
                stale.append((n, after))
        self.assertEqual(stale, [])


class FleetTests(unittest.TestCase):
    """
    Two daemons with in-process caches on one storage: what one deletes,
    the other stops answering for on its very next lookup.
    """

    def setUp(self):
        self.clock = task.Clock()
        shared = ValidatingDriver(InMemoryDriver(reactor=self.clock))
        self.here = Registry(shared, CACHED, reactor=self.clock)
        self.there = Registry(shared, CACHED, reactor=self.clock)

    @async_test
    async def test_blob_deleted_through_another_daemon(self):
        digest = (await put_blob(self.here, "r", sha(b"blob"), b"blob")).digest
        self.assertEqual((await self.here.blobs.stat("r", digest)).size, 4)
        await self.there.blobs.delete("r", digest)
        with self.assertRaises(RegistryError) as caught:
            await self.here.blobs.stat("r", digest)
        self.assertEqual(caught.exception.code, "BLOB_UNKNOWN")
        self.assertIsNone(await self.here.blobs.mount("s", digest, "r"))

    @async_test
    async def test_manifest_deleted_through_another_daemon(self):
        for blob in (b"config", b"layer"):
            await put_blob(self.here, "r", sha(blob), blob)
        digest, _ = await self.here.manifests.put("r", "v1", manifest_body(b"config", [b"layer"]), mf.OCI_MANIFEST)
        await self.here.manifests.get("r", "v1")
        await self.here.blobs.stat("r", digest)
        await self.there.manifests.delete("r", digest)
        for attempt in (self.here.manifests.get("r", "v1"), self.here.manifests.get("r", digest),
                        self.here.blobs.stat("r", digest)):
            with self.assertRaises(RegistryError):
                await attempt

    @async_test
    async def test_retag_through_another_daemon(self):
        for blob in (b"config", b"layer", b"other"):
            await put_blob(self.here, "r", sha(blob), blob)
        first, _ = await self.here.manifests.put("r", "v1", manifest_body(b"config", [b"layer"]), mf.OCI_MANIFEST)
        self.assertEqual((await self.here.manifests.get("r", "v1")).digest, first)
        second, _ = await self.there.manifests.put("r", "v1", manifest_body(b"config", [b"other"]), mf.OCI_MANIFEST)
        self.assertEqual((await self.here.manifests.get("r", "v1")).digest, second)
