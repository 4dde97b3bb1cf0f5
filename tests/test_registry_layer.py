"""
The registry layer (no HTTP) on the in-memory and filesystem drivers: one
mixin, run against both; plus the exact on-disk layout Distribution reads.
"""

import hashlib
import json
import os

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from spectroreg.config.settings import StorageSettings
from spectroreg.registry import Registry
from spectroreg.registry import manifests as mf
from spectroreg.registry import paths
from spectroreg.registry.digests import parse_digest
from spectroreg.api.errors import from_registry_error
from spectroreg.registry.errors import RegistryError, UploadOffsetMismatch
from spectroreg.registry.uploads import format_rfc3339, parse_rfc3339
from spectroreg.storage.base import ValidatingDriver
from spectroreg.storage.errors import PathNotFound, StorageError
from spectroreg.storage.inmemory import InMemoryDriver
from tests.support.asynctest import async_test
from tests.support.stores import finish_upload, manifest_body, sha

SETTINGS = StorageSettings(driver="inmemory", delete_enabled=True)


class RegistryLayerMixin:
    settings = SETTINGS

    def make_driver(self):
        raise NotImplementedError

    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(1700000000)
        self.driver = self.make_driver()
        self.registry = Registry(self.driver, self.settings, reactor=self.clock)

    async def upload(self, name, data, chunks=1):
        upload_id = await self.registry.uploads.start(name)
        step = max(1, len(data) // chunks)
        offset = 0
        while offset < len(data) or offset == 0:
            writer = await self.registry.uploads.open(name, upload_id, offset)
            await writer.write(data[offset:offset + step])
            offset += step
            if offset >= len(data):
                return await writer.commit(sha(data))
            await writer.close()
        return None

    @async_test
    async def test_blob_round_trip(self):
        data = os.urandom(300000)
        descriptor = await self.upload("a/b", data, chunks=3)
        self.assertEqual((descriptor.digest, descriptor.size), (sha(data), len(data)))
        stat = await self.registry.blobs.stat("a/b", sha(data))
        self.assertEqual(stat.size, len(data))
        self.assertEqual(await self.driver.get_content("/docker/registry/v2/blobs/sha256/{}/{}/data".format(
            sha(data).hex[:2], sha(data).hex)), data)
        with self.assertRaises(RegistryError):
            await self.registry.blobs.stat("other", sha(data))

    @async_test
    async def test_hash_recomputed_without_state(self):
        data = b"resumed " * 1000
        upload_id = await self.registry.uploads.start("r")
        writer = await self.registry.uploads.open("r", upload_id, 0)
        await writer.write(data[:100])
        await writer.close()
        fresh = Registry(self.driver, self.settings, reactor=self.clock)
        writer = await fresh.uploads.open("r", upload_id, 100)
        await writer.write(data[100:])
        descriptor = await writer.commit(sha(data))
        self.assertEqual(descriptor.size, len(data))

    @async_test
    async def test_sha512_upload(self):
        data = b"five twelve"
        digest = parse_digest("sha512:" + hashlib.sha512(data).hexdigest())
        upload_id = await self.registry.uploads.start("r")
        writer = await self.registry.uploads.open("r", upload_id)
        await writer.write(data)
        descriptor = await writer.commit(digest)
        self.assertEqual(descriptor.size, len(data))

    @async_test
    async def test_digest_mismatch_cancels(self):
        upload_id = await self.registry.uploads.start("r")
        writer = await self.registry.uploads.open("r", upload_id)
        await writer.write(b"real")
        with self.assertRaises(RegistryError) as caught:
            await writer.commit(sha(b"fake"))
        self.assertEqual(caught.exception.code, "DIGEST_INVALID")
        self.assertFalse(await self.registry.uploads.exists("r", upload_id))
        with self.assertRaises(RegistryError):
            await self.registry.blobs.stat_data(sha(b"real"))

    @async_test
    async def test_wrong_offset(self):
        upload_id = await self.registry.uploads.start("r")
        with self.assertRaises(RegistryError) as caught:
            await self.registry.uploads.open("r", upload_id, 5)
        self.assertIsInstance(caught.exception, UploadOffsetMismatch)
        self.assertEqual((caught.exception.offset, caught.exception.size), (5, 0))
        answer = from_registry_error(caught.exception)
        self.assertEqual((answer.status, answer.headers), (416, (("Range", "0-0"),)))
        # The lock was released: the upload can be opened again.
        writer = await self.registry.uploads.open("r", upload_id, 0)
        await writer.close()

    @async_test
    async def test_concurrent_writers_serialised(self):
        upload_id = await self.registry.uploads.start("r")
        first = await self.registry.uploads.open("r", upload_id, 0)
        second = defer.ensureDeferred(self.registry.uploads.open("r", upload_id, 0))
        self.assertFalse(second.called)
        await first.write(b"abc")
        await first.close()
        with self.assertRaises(RegistryError) as caught:
            await second
        self.assertIsInstance(caught.exception, UploadOffsetMismatch)
        answer = from_registry_error(caught.exception)
        self.assertEqual((answer.status, answer.headers), (416, (("Range", "0-2"),)))

    @async_test
    async def test_manifests_tags_and_deletes(self):
        await self.upload("r", b"config")
        await self.upload("r", b"layer")
        body = manifest_body(b"config", [b"layer"])
        digest, manifest = await self.registry.manifests.put("r", "v1", body, mf.OCI_MANIFEST)
        self.assertEqual(digest, sha(body))
        record = await self.registry.manifests.get("r", "v1")
        self.assertEqual((record.body, record.digest, record.media_type), (body, digest, mf.OCI_MANIFEST))
        await self.registry.manifests.put("r", "v2", body, mf.OCI_MANIFEST)
        self.assertEqual(await self.registry.tags.all("r"), ["v1", "v2"])
        await self.registry.manifests.delete("r", "v1")
        self.assertEqual(await self.registry.tags.all("r"), ["v2"])
        await self.registry.manifests.delete("r", digest)
        # Unknown where directories are implied (in memory, S3), as in Distribution.
        self.assertEqual(await self.registry.tags.all("r", must_exist=False), [])
        with self.assertRaises(RegistryError):
            await self.registry.manifests.get("r", digest)

    @async_test
    async def test_catalog(self):
        await self.upload("x/only-blob", b"b")
        await self.registry.uploads.start("y/only-upload")
        for name in ("z", "a/b", "a"):
            await self.upload(name, b"c")
            await self.registry.manifests.put(name, "t", manifest_body(b"c", []), mf.OCI_MANIFEST)
        # As Distribution: every repository with blobs, none with only an upload.
        self.assertEqual(await self.registry.catalog.names(), ["a", "a/b", "x/only-blob", "z"])

    @async_test
    async def test_referrers_rebuilt(self):
        await self.upload("r", b"c")
        subject = manifest_body(b"c", [])
        await self.registry.manifests.put("r", "s", subject, mf.OCI_MANIFEST)
        referrer = manifest_body(b"c", [], subject={"mediaType": mf.OCI_MANIFEST, "digest": str(sha(subject)),
                                                      "size": len(subject)}, artifactType="x/sig")
        await self.registry.manifests.put("r", sha(referrer), referrer, mf.OCI_MANIFEST)
        await self.driver.delete("/docker/registry/v2/repositories/r/_referrers")
        found = await self.registry.referrers.get("r", sha(subject))
        self.assertEqual([d["digest"] for d in found], [str(sha(referrer))])
        self.assertEqual(found[0]["artifactType"], "x/sig")
        self.assertEqual(await self.registry.referrers.get("r", sha(subject), "other/type"), [])

    @async_test
    async def test_referrers_skip_what_go_cannot_read(self):
        """Entries and manifests stored before strict parsing never reach the referrers list."""
        await self.upload("r", b"c")
        subject = manifest_body(b"c", [])
        await self.registry.manifests.put("r", "s", subject, mf.OCI_MANIFEST)
        about = {"mediaType": mf.OCI_MANIFEST, "digest": str(sha(subject)), "size": len(subject)}
        good = manifest_body(b"c", [], subject=about, annotations={"x": "1"})
        await self.registry.manifests.put("r", sha(good), good, mf.OCI_MANIFEST)
        # As an older version stored them: the manifest and its entry.
        bad = manifest_body(b"c", [], subject=about).replace(b'"subject"', b'"annotations": {"x": Infinity}, "subject"')
        root = "/docker/registry/v2"
        await self.driver.put_content(root + "/blobs/sha256/{0}/{1}/data".format(sha(bad).hex[:2], sha(bad).hex), bad)
        await self.driver.put_content(root + "/repositories/r/_manifests/revisions/sha256/{}/link".format(
            sha(bad).hex), str(sha(bad)).encode())
        entry = b'{"annotations": {"x": Infinity}, "digest": "' + str(sha(bad)).encode() + \
            b'", "mediaType": "' + mf.OCI_MANIFEST.encode() + b'", "size": ' + str(len(bad)).encode() + b"}"
        await self.driver.put_content(root + "/repositories/r/_referrers/subjects/sha256/{}/sha256/{}/descriptor".format(
            sha(subject).hex, sha(bad).hex), entry)
        found = await self.registry.referrers.get("r", sha(subject))
        self.assertEqual([d["digest"] for d in found], [str(sha(good))])
        json.dumps(found, allow_nan=False)
        await self.driver.delete(root + "/repositories/r/_referrers")
        found = await self.registry.referrers.get("r", sha(subject))
        self.assertEqual([d["digest"] for d in found], [str(sha(good))])

    @async_test
    async def test_purge_uploads(self):
        old = await self.registry.uploads.start("a/b")
        self.clock.advance(3600)
        new = await self.registry.uploads.start("c")
        self.clock.advance(10)
        self.assertEqual(await self.registry.uploads.purge(1800, dry_run=True), 1)
        self.assertTrue(await self.registry.uploads.exists("a/b", old))
        self.assertIn(("a/b", old), self.registry.uploads.hashes)
        self.assertEqual(await self.registry.uploads.purge(1800), 1)
        self.assertFalse(await self.registry.uploads.exists("a/b", old))
        self.assertNotIn(("a/b", old), self.registry.uploads.hashes)
        self.assertTrue(await self.registry.uploads.exists("c", new))
        self.assertEqual(await self.registry.uploads.purge(1800), 0)

    @async_test
    async def test_purge_reads_go_timestamps(self):
        upload = "/docker/registry/v2/repositories/go/_uploads/0b2c5e8e-aaaa-bbbb-cccc-000000000000"
        await self.driver.put_content(upload + "/startedat", b"2023-01-02T03:04:05.123456789Z")
        await self.driver.put_content(upload + "/data", b"")
        self.assertEqual(await self.registry.uploads.purge(60), 1)

    @async_test
    async def test_mount(self):
        await self.upload("src", b"shared")
        self.assertIsNone(await self.registry.blobs.mount("dst", sha(b"shared"), "elsewhere"))
        self.assertIsNotNone(await self.registry.blobs.mount("dst", sha(b"shared"), "src"))
        self.assertEqual((await self.registry.blobs.stat("dst", sha(b"shared"))).size, 6)
        self.assertIsNotNone(await self.registry.blobs.mount("auto", sha(b"shared")))
        self.assertIsNone(await self.registry.blobs.mount("auto", sha(b"absent")))

    @async_test
    async def test_no_mount_of_a_blob_no_repository_links(self):
        """The data stays until garbage collection; a mount must not bring it back."""
        await self.upload("a/src", b"deleted")
        await self.upload("b", b"kept")
        await self.upload("c", b"manifest-only")
        await self.registry.blobs.delete("a/src", sha(b"deleted"))
        await self.driver.put_content(
            "/docker/registry/v2/repositories/c/_manifests/revisions/sha256/{}/link".format(sha(b"manifest-only").hex),
            str(sha(b"manifest-only")).encode("ascii"))
        await self.registry.blobs.delete("c", sha(b"manifest-only"))
        self.assertIsNone(await self.registry.blobs.mount("x", sha(b"deleted")))
        self.assertIsNone(await self.registry.blobs.mount("x", sha(b"deleted"), "a/src"))
        with self.assertRaises(RegistryError):
            await self.registry.blobs.stat("x", sha(b"deleted"))
        self.assertIsNotNone(await self.registry.blobs.mount("x", sha(b"kept")))
        # Linked as a manifest revision only: still held by a repository.
        self.assertIsNotNone(await self.registry.blobs.mount("x", sha(b"manifest-only")))


    @async_test
    async def test_finish_safe_to_retry_at_every_step(self):
        """
        Storage fails after each operation of a finish in turn (the k-th,
        k = 0, 1, ... until a finish needs no more). The client retries as
        clients do: it asks how much the upload holds, sends what is missing
        (nothing, once the content is in: a PUT without a body) and PUTs
        again. The retry always publishes the exact content, links it and
        removes the upload.
        """
        faulty = FaultyDriver(self.driver)
        registry = Registry(faulty, self.settings, reactor=self.clock)
        bodiless = 0
        for k in range(100):
            data = os.urandom(70000) + str(k).encode("ascii")
            upload_id = await registry.uploads.start("retry/me")
            writer = await registry.uploads.open("retry/me", upload_id, 0)
            await writer.write(data[:50000])
            await writer.close()
            writer = await registry.uploads.open("retry/me", upload_id, 50000)
            await writer.write(data[50000:])
            faulty.fail_after(k)
            try:
                descriptor = await writer.commit(sha(data))
                failed = False
            except StorageError:
                failed = True
            faulty.fail_after(None)
            if failed:
                size = await registry.uploads.size("retry/me", upload_id)
                if size in (0, len(data)):
                    # All there, or already moved to the blob: nothing to send.
                    bodiless += 1
                    descriptor = await finish_upload(registry, "retry/me", upload_id, sha(data))
                else:
                    writer = await registry.uploads.open("retry/me", upload_id, size)
                    await writer.write(data[size:])
                    descriptor = await writer.commit(sha(data))
            self.assertEqual((descriptor.digest, descriptor.size), (sha(data), len(data)), k)
            self.assertEqual(await self.driver.get_content(paths.blob_data(sha(data))), data, k)
            self.assertTrue(await self.registry.blobs.is_linked("retry/me", sha(data)), k)
            self.assertFalse(await self.registry.uploads.exists("retry/me", upload_id), k)
            if not failed:
                break
        self.assertGreater(bodiless, 2)
        try:
            left = await self.driver.list(paths.uploads("retry/me"))
        except PathNotFound:
            left = []
        self.assertEqual(left, [])

    @async_test
    async def test_retry_finds_the_marker_where_earlier_versions_wrote_it(self):
        """
        An upload whose content went to the blob under an earlier version
        has its marker at C{spectroreg/verified}: a retry links the blob.
        """
        data = b"published before the upgrade"
        await self.upload("owner/app", data)
        upload_id = await self.registry.uploads.start("other/app")
        await self.driver.put_content(paths.upload_verified_before("other/app", upload_id),
                                      str(sha(data)).encode("ascii"))
        descriptor = await finish_upload(self.registry, "other/app", upload_id, sha(data))
        self.assertEqual((descriptor.digest, descriptor.size), (sha(data), len(data)))
        self.assertTrue(await self.registry.blobs.is_linked("other/app", sha(data)))
        self.assertFalse(await self.registry.uploads.exists("other/app", upload_id))

    @async_test
    async def test_retry_does_not_link_what_it_did_not_verify(self):
        """An upload that never held the content cannot claim a blob that exists."""
        await self.upload("owner/app", b"private layer")
        upload_id = await self.registry.uploads.start("other/app")
        with self.assertRaises(RegistryError) as caught:
            await finish_upload(self.registry, "other/app", upload_id, sha(b"private layer"))
        self.assertEqual(caught.exception.code, "DIGEST_INVALID")
        self.assertFalse(await self.registry.blobs.is_linked("other/app", sha(b"private layer")))


class InMemoryRegistryTests(RegistryLayerMixin, unittest.TestCase):
    def make_driver(self):
        return ValidatingDriver(InMemoryDriver(reactor=self.clock))


class FilesystemRegistryTests(RegistryLayerMixin, unittest.TestCase):
    def make_driver(self):
        from spectroreg.storage.filesystem import FilesystemDriver

        self.root = self.mktemp()
        os.makedirs(self.root)
        driver = FilesystemDriver(self.root, maxthreads=4, reactor=reactor)
        self.addCleanup(driver.close)
        return ValidatingDriver(driver)

    def read(self, relative):
        with open(os.path.join(self.root, "docker/registry/v2", relative), "rb") as handle:
            return handle.read()

    @async_test
    async def test_layout_on_disk(self):
        """Paths and link contents exactly as Distribution writes them."""
        await self.upload("ns/app", b"cfg")
        await self.upload("ns/app", b"layer")
        body = manifest_body(b"cfg", [b"layer"])
        digest, _ = await self.registry.manifests.put("ns/app", "1.0", body, mf.OCI_MANIFEST)
        layer = sha(b"layer")
        upload_id = await self.registry.uploads.start("ns/app")
        files = []
        for top, _, names in os.walk(os.path.join(self.root, "docker")):
            for name in names:
                files.append(os.path.relpath(os.path.join(top, name), self.root))
        expected = {
            "docker/registry/v2/blobs/sha256/{}/{}/data".format(d.hex[:2], d.hex)
            for d in (sha(b"cfg"), layer, digest)
        } | {
            "docker/registry/v2/repositories/ns/app/_layers/sha256/{}/link".format(sha(b"cfg").hex),
            "docker/registry/v2/repositories/ns/app/_layers/sha256/{}/link".format(layer.hex),
            "docker/registry/v2/repositories/ns/app/_manifests/revisions/sha256/{}/link".format(digest.hex),
            "docker/registry/v2/repositories/ns/app/_manifests/tags/1.0/current/link",
            "docker/registry/v2/repositories/ns/app/_manifests/tags/1.0/index/sha256/{}/link".format(digest.hex),
            # An empty ``data`` from the start, as Distribution starts an upload.
            "docker/registry/v2/repositories/ns/app/_uploads/{}/startedat".format(upload_id),
            "docker/registry/v2/repositories/ns/app/_uploads/{}/data".format(upload_id),
            # spectroreg's referrers index (empty), in a directory Distribution ignores.
            "docker/registry/v2/repositories/ns/app/_referrers/complete",
        }
        self.assertEqual(set(files), expected)
        self.assertEqual(self.read("repositories/ns/app/_layers/sha256/{}/link".format(layer.hex)),
                         str(layer).encode("ascii"))
        self.assertEqual(self.read("repositories/ns/app/_manifests/tags/1.0/current/link"),
                         str(digest).encode("ascii"))
        self.assertEqual(self.read("blobs/sha256/{}/{}/data".format(digest.hex[:2], digest.hex)), body)
        started = self.read("repositories/ns/app/_uploads/{}/startedat".format(upload_id)).decode("ascii")
        self.assertEqual(started, "2023-11-14T22:13:20Z")
        self.assertEqual(parse_rfc3339(started), 1700000000)


class TimestampTests(unittest.SynchronousTestCase):
    def test_round_trip(self):
        self.assertEqual(format_rfc3339(1700000000.25), "2023-11-14T22:13:20Z")
        self.assertEqual(parse_rfc3339("2023-11-14T22:13:20.250000Z"), 1700000000.25)
        self.assertEqual(parse_rfc3339("2023-11-14T22:13:20Z"), 1700000000)
        self.assertEqual(parse_rfc3339("2023-11-14T23:13:20.5+01:00"), 1700000000.5)


class FailingWriteTests(unittest.TestCase):
    """A write storage refused leaves no wrong hash behind."""

    @async_test
    async def test_hash_recomputed_after_failed_write(self):
        from spectroreg.storage.errors import StorageError

        clock = task.Clock()
        driver = ValidatingDriver(InMemoryDriver(reactor=clock))
        registry = Registry(driver, SETTINGS, reactor=clock)
        upload_id = await registry.uploads.start("r")
        writer = await registry.uploads.open("r", upload_id, 0)
        await writer.write(b"kept")
        inner = writer._writer
        original = inner.write
        inner.write = lambda data: defer.fail(StorageError("disk full"))
        with self.assertRaises(StorageError):
            await writer.write(b"lost")
        inner.write = original
        await writer.close()
        self.assertNotIn(("r", upload_id), registry.uploads.hashes)
        writer = await registry.uploads.open("r", upload_id, 4)
        await writer.write(b"!")
        descriptor = await writer.commit(sha(b"kept!"))
        self.assertEqual(descriptor.size, 5)


class FaultyDriver:
    """
    Passes calls to C{driver} (and to the writers it opens) until
    C{fail_after(k)} has let k more through; every later call fails with a
    StorageError until C{fail_after(None)}.
    """

    OPERATIONS = (
        "get_content", "put_content", "read", "writer", "stat", "list", "move", "delete", "walk")

    def __init__(self, driver):
        self.driver = driver
        self.left = None

    def fail_after(self, count):
        self.left = count

    def _spend(self, name):
        if self.left is not None:
            if self.left <= 0:
                raise StorageError("injected fault before {}".format(name))
            self.left -= 1

    def __getattr__(self, name):
        attribute = getattr(self.driver, name)
        if name not in self.OPERATIONS:
            return attribute

        def call(*args, **kwargs):
            try:
                self._spend(name)
            except StorageError as error:
                return defer.fail(error)
            d = attribute(*args, **kwargs)
            if name == "writer":
                d.addCallback(lambda writer: _FaultyWriter(self, writer))
            return d

        return call


class _FaultyWriter:
    def __init__(self, faults, writer):
        self._faults = faults
        self._writer = writer

    @property
    def size(self):
        return self._writer.size

    def __getattr__(self, name):
        attribute = getattr(self._writer, name)
        if name not in ("write", "close", "commit", "cancel"):
            return attribute

        def call(*args):
            try:
                self._faults._spend("writer." + name)
            except StorageError as error:
                return defer.fail(error)
            return attribute(*args)

        return call


class CountingDriver:
    """Records (operation, path) of every call to the driver it wraps."""

    OPERATIONS = ("get_content", "put_content", "read", "writer", "stat", "list", "move", "delete", "walk")

    def __init__(self, driver):
        self.driver = driver
        self.calls = []

    def __getattr__(self, name):
        attribute = getattr(self.driver, name)
        if name not in self.OPERATIONS:
            return attribute

        def call(path, *args, **kwargs):
            self.calls.append((name, path))
            return attribute(path, *args, **kwargs)

        return call


class DriverCallTests(unittest.TestCase):
    """What a push asks of storage (each call is an S3 request or more)."""

    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(1700000000)
        self.shared = ValidatingDriver(InMemoryDriver(reactor=self.clock))
        self.driver = CountingDriver(self.shared)
        self.registry = Registry(self.driver, SETTINGS, reactor=self.clock)
        # Another daemon on the same storage.
        self.other = Registry(self.shared, SETTINGS, reactor=self.clock)

    async def push(self, registry, name, data):
        upload_id = await registry.uploads.start(name)
        writer = await registry.uploads.open(name, upload_id)
        await writer.write(data)
        await writer.close()
        return await finish_upload(registry, name, upload_id, sha(data))

    def blob(self, data):
        digest = sha(data)
        return "/docker/registry/v2/blobs/sha256/{}/{}/data".format(digest.hex[:2], digest.hex)

    @async_test
    async def test_push_of_a_new_blob(self):
        data = b"layer"
        with self.assertRaises(RegistryError) as caught:
            await self.registry.blobs.stat("r", sha(data))
        self.assertEqual(caught.exception.code, "BLOB_UNKNOWN")
        # The client's HEAD: one look at the data, none at the links.
        self.assertEqual(self.driver.calls, [("stat", self.blob(data))])
        self.driver.calls = []
        upload_id = await self.registry.uploads.start("r")
        # ``startedat`` and an empty ``data`` (on S3: an upload in flight),
        # as Distribution starts an upload.
        uploads = "/docker/registry/v2/repositories/r/_uploads/" + upload_id
        self.assertEqual(self.driver.calls, [("put_content", uploads + "/startedat"),
                                             ("writer", uploads + "/data")])
        writer = await self.registry.uploads.open("r", upload_id)
        await writer.write(data)
        await writer.close()
        self.driver.calls = []
        await finish_upload(self.registry, "r", upload_id, sha(data))
        # The HEAD found the blob missing: published without a second look.
        self.assertNotIn(("stat", self.blob(data)), self.driver.calls)
        self.assertIn(("move", uploads + "/data"), self.driver.calls)
        self.assertEqual((await self.other.blobs.stat("r", sha(data))).size, 5)
        self.assertFalse(await self.other.uploads.exists("r", upload_id))

    @async_test
    async def test_existing_blob_kept(self):
        await self.push(self.other, "elsewhere", b"shared")
        self.driver.calls = []
        await self.push(self.registry, "r", b"shared")
        operations = [operation for operation, _ in self.driver.calls]
        self.assertIn(("stat", self.blob(b"shared")), self.driver.calls)
        self.assertNotIn("move", operations)
        self.assertEqual((await self.registry.blobs.stat("r", sha(b"shared"))).size, 6)

    @async_test
    async def test_published_meanwhile_by_another_daemon(self):
        """A stale "missing": the move replaces the blob with the same bytes."""
        with self.assertRaises(RegistryError):
            await self.registry.blobs.stat("r", sha(b"raced"))
        await self.push(self.other, "elsewhere", b"raced")
        descriptor = await self.push(self.registry, "r", b"raced")
        self.assertEqual(descriptor.size, 5)
        self.assertEqual(await self.shared.get_content(self.blob(b"raced")), b"raced")
        self.assertEqual((await self.other.blobs.stat("r", sha(b"raced"))).size, 5)

    @async_test
    async def test_blob_head_needs_data_and_link(self):
        await self.push(self.other, "elsewhere", b"unlinked")
        with self.assertRaises(RegistryError) as caught:
            await self.registry.blobs.stat("r", sha(b"unlinked"))
        self.assertEqual(caught.exception.code, "BLOB_UNKNOWN")
        body = manifest_body(b"unlinked", [])
        await self.other.manifests.put("elsewhere", "t", body, mf.OCI_MANIFEST)
        # A blob HEAD of a manifest digest, as Distribution answers it.
        self.assertEqual((await self.registry.blobs.stat("elsewhere", sha(body))).size, len(body))
        await self.shared.delete(self.blob(b"unlinked"))
        with self.assertRaises(RegistryError) as caught:
            await self.registry.blobs.stat("elsewhere", sha(b"unlinked"))
        self.assertEqual(caught.exception.code, "BLOB_UNKNOWN")

    @async_test
    async def test_upload_cancelled_by_another_daemon(self):
        upload_id = await self.registry.uploads.start("r")
        writer = await self.registry.uploads.open("r", upload_id)
        await writer.write(b"part")
        await writer.close()
        await self.other.uploads.cancel("r", upload_id)
        for attempt in (self.registry.uploads.open("r", upload_id, 4),
                        finish_upload(self.registry, "r", upload_id, sha(b"part")),
                        self.registry.uploads.size("r", upload_id)):
            with self.assertRaises(RegistryError) as caught:
                await attempt
            self.assertEqual(caught.exception.code, "BLOB_UPLOAD_UNKNOWN")


class ManifestCacheTests(unittest.TestCase):
    """Manifest bytes are cached by digest; links are read every time."""

    def setUp(self):
        self.clock = task.Clock()
        self.shared = ValidatingDriver(InMemoryDriver(reactor=self.clock))
        self.driver = CountingDriver(self.shared)
        self.registry = Registry(self.driver, SETTINGS, reactor=self.clock)
        self.other = Registry(self.shared, SETTINGS, reactor=self.clock)

    async def put(self, registry, name, tag, config):
        for blob in (config, b"layer"):
            await DriverCallTests.push(self, registry, name, blob)
        body = manifest_body(config, [b"layer"])
        digest, _ = await registry.manifests.put(name, tag, body, mf.OCI_MANIFEST)
        return digest, body

    def data_reads(self, digest):
        path = "/docker/registry/v2/blobs/sha256/{}/{}/data".format(digest.hex[:2], digest.hex)
        return self.driver.calls.count(("get_content", path))

    @async_test
    async def test_second_get_reads_no_data(self):
        digest, body = await self.put(self.other, "r", "v1", b"config")
        self.driver.calls = []
        for _ in range(3):
            record = await self.registry.manifests.get("r", "v1")
            self.assertEqual((record.body, record.digest, record.media_type), (body, digest, mf.OCI_MANIFEST))
        self.assertEqual(self.data_reads(digest), 1)
        # The tag link is still read every time.
        self.assertEqual(
            self.driver.calls.count(("get_content", "/docker/registry/v2/repositories/r/_manifests/tags/v1/current/link")),
            3)

    @async_test
    async def test_deletes_and_retags_by_another_daemon_are_seen(self):
        first, _ = await self.put(self.other, "r", "v1", b"config-1")
        await self.registry.manifests.get("r", "v1")
        await self.registry.manifests.get("r", first)
        second, body = await self.put(self.other, "r", "v1", b"config-2")
        self.assertEqual((await self.registry.manifests.get("r", "v1")).body, body)
        await self.other.manifests.delete("r", first)
        with self.assertRaises(RegistryError) as caught:
            await self.registry.manifests.get("r", first)
        self.assertEqual(caught.exception.code, "MANIFEST_UNKNOWN")

    @async_test
    async def test_forget_blob_drops_the_entry(self):
        digest, _ = await self.put(self.other, "r", "v1", b"config")
        await self.registry.manifests.get("r", "v1")
        self.registry.blobs.forget(digest)
        self.driver.calls = []
        await self.registry.manifests.get("r", "v1")
        self.assertEqual(self.data_reads(digest), 1)


class ManifestCacheBoundTests(unittest.SynchronousTestCase):
    def test_bounded_in_bytes(self):
        from spectroreg.registry.cache import ManifestCache
        from spectroreg.registry import ManifestRecord

        cache = ManifestCache(max_bytes=100, max_entry_bytes=60)
        records = [ManifestRecord(bytes([n]) * 40, sha(bytes([n]) * 40), mf.OCI_MANIFEST) for n in range(3)]
        for record in records:
            cache.lookup(record.digest).fill(record)
        # 120 bytes would not fit: the oldest went.
        self.assertEqual((len(cache), cache.size), (2, 80))
        self.assertIsNone(cache.get(records[0].digest))
        self.assertIs(cache.get(records[2].digest), records[2])
        big = ManifestRecord(b"x" * 61, sha(b"x" * 61), mf.OCI_MANIFEST)
        cache.lookup(big.digest).fill(big)
        self.assertIsNone(cache.get(big.digest))
        cache.forget(records[2].digest)
        self.assertEqual((len(cache), cache.size), (1, 40))
