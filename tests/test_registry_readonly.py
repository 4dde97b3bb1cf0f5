"""
Reads write nothing: every GET and HEAD route over a tree as Distribution
leaves it (no referrers index), with storage that records each write, in
normal and in read-only mode; and the driver read-only mode runs on.
"""

import hashlib
import json

from twisted.internet import defer, task
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from spectroreg.api.testing import make_api_resource, make_registry, make_root, make_settings, stub_client
from spectroreg.config.settings import StorageSettings
from spectroreg.registry import Registry
from spectroreg.registry import manifests as mf
from spectroreg.registry.errors import RegistryError
from spectroreg.storage.base import ValidatingDriver
from spectroreg.storage.inmemory import InMemoryDriver
from spectroreg.storage.interfaces import IStorageDriver
from spectroreg.storage.readonly import ReadOnlyDriver, ReadOnlyStorage
from tests.support.asynctest import async_test

BASE = "http://registry.test/v2/"
WRITES = ("put_content", "writer", "move", "delete")


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class WriteRecordingDriver:
    """Passes every call through; records (and fails) each write."""

    def __init__(self, driver):
        self.driver = driver
        self.writes = []

    def __getattr__(self, name):
        attribute = getattr(self.driver, name)
        if name not in WRITES:
            return attribute

        def refuse(path, *args, **kwargs):
            self.writes.append((name, path))
            return defer.fail(OSError(30, "Read-only file system"))

        return refuse


class ReadOnlyDriverTests(unittest.TestCase):
    def setUp(self):
        self.inner = ValidatingDriver(InMemoryDriver(reactor=task.Clock()))
        self.driver = ReadOnlyDriver(self.inner)

    def test_interface(self):
        self.assertTrue(verifyObject(IStorageDriver, self.driver))

    @async_test
    async def test_reads_pass_writes_refused(self):
        await self.inner.put_content("/a/b", b"x")
        self.assertEqual(await self.driver.get_content("/a/b"), b"x")
        self.assertEqual(await self.driver.list("/a"), ["/a/b"])
        self.assertEqual((await self.driver.stat("/a/b")).size, 1)
        for attempt in (self.driver.put_content("/a/c", b"y"), self.driver.writer("/a/c"),
                        self.driver.move("/a/b", "/a/c"), self.driver.delete("/a/b")):
            await self.assertFailure(attempt, ReadOnlyStorage)
        self.assertEqual(await self.inner.list("/a"), ["/a/b"])

    @async_test
    async def test_registry_in_read_only_mode_uses_it(self):
        registry = Registry(self.inner, StorageSettings(driver="inmemory", readonly=True))
        self.assertIsInstance(registry.driver, ReadOnlyDriver)
        with self.assertRaises(RegistryError) as caught:
            await registry.uploads.start("r")
        self.assertEqual(caught.exception.code, "UNSUPPORTED")


class ReadsWriteNothingMixin:
    """Push with a writable registry, then read through C{self.readonly}."""

    readonly = False

    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(1700000000)
        self.shared = ValidatingDriver(InMemoryDriver(reactor=self.clock))
        writer_settings = make_settings(storage=StorageSettings(driver="inmemory", delete_enabled=True))
        self.writer = stub_client(make_root(make_api_resource(
            make_registry(writer_settings, self.shared, self.clock), writer_settings)))
        self.recorder = WriteRecordingDriver(self.shared)
        settings = make_settings(storage=StorageSettings(
            driver="inmemory", delete_enabled=True, readonly=self.readonly, blobdescriptor_cache="inmemory"))
        self.reader = stub_client(make_root(make_api_resource(
            make_registry(settings, self.recorder, self.clock), settings)))

    async def request(self, client, method, path, data=None, headers=None):
        response = await client.request(method, BASE + path, data=data, headers=headers or {},
                                        allow_redirects=False)
        response.body = await response.content()
        return response

    async def push(self, name, reference, layers, **extra):
        for blob in layers:
            response = await self.request(self.writer, "POST", "{}/blobs/uploads/?digest={}".format(name, sha(blob)),
                                          data=blob)
            self.assertEqual(response.code, 201, response.body)
        document = {"schemaVersion": 2, "mediaType": mf.OCI_MANIFEST,
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": sha(layers[0]), "size": len(layers[0])},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(blob),
                                "size": len(blob)} for blob in layers[1:]]}
        document.update(extra)
        body = json.dumps(document).encode("utf-8")
        response = await self.request(self.writer, "PUT", "{}/manifests/{}".format(name, reference), data=body,
                                      headers={"Content-Type": mf.OCI_MANIFEST})
        self.assertEqual(response.code, 201, response.body)
        return body

    @async_test
    async def test_every_read_route(self):
        subject = await self.push("ns/app", "v1", [b"config", b"layer"])
        referrer = await self.push("ns/app", "sig", [b"{}"], artifactType="application/x-sig",
                                   subject={"mediaType": mf.OCI_MANIFEST, "digest": sha(subject),
                                            "size": len(subject)})
        response = await self.request(self.writer, "POST", "ns/app/blobs/uploads/")
        upload = response.headers.getRawHeaders("location")[0]
        # As Distribution leaves a tree: no referrers index.
        await self.shared.delete("/docker/registry/v2/repositories/ns/app/_referrers")
        reads = [
            ("", 200, None),
            ("_catalog", 200, {"repositories": ["ns/app"]}),
            ("ns/app/tags/list", 200, {"name": "ns/app", "tags": ["sig", "v1"]}),
            ("ns/app/manifests/v1", 200, None),
            ("ns/app/manifests/" + sha(subject), 200, None),
            ("ns/app/blobs/" + sha(b"layer"), 200, None),
            ("ns/app/blobs/" + sha(b"absent"), 404, None),
            ("ns/app/manifests/absent", 404, None),
            ("other/tags/list", 404, None),
            ("ns/app/referrers/" + sha(subject), 200, None),
            ("ns/app/referrers/" + sha(subject) + "?artifactType=application/x-sig", 200, None),
            ("ns/app/referrers/" + sha(b"nothing"), 200, None),
            ("other/referrers/" + sha(subject), 200, None),
        ]
        for method in ("GET", "HEAD"):
            for path, status, document in reads:
                response = await self.request(self.reader, method, path)
                self.assertEqual(response.code, status, (method, path, response.body))
                if document is not None and method == "GET":
                    self.assertEqual(json.loads(response.body), document)
            response = await self.reader.request(method, upload, allow_redirects=False)
            await response.content()
            self.assertEqual(response.code, 204)
        response = await self.request(self.reader, "GET", "ns/app/referrers/" + sha(subject))
        self.assertEqual([d["digest"] for d in json.loads(response.body)["manifests"]], [sha(referrer)])
        self.assertEqual(self.recorder.writes, [])


class ReadsWriteNothingTests(ReadsWriteNothingMixin, unittest.TestCase):
    readonly = False


class ReadOnlyModeReadsWriteNothingTests(ReadsWriteNothingMixin, unittest.TestCase):
    readonly = True

    @async_test
    async def test_writes_refused_before_storage(self):
        for method, path in [("POST", "r/blobs/uploads/"), ("PUT", "r/manifests/v1"),
                             ("DELETE", "r/manifests/v1"), ("DELETE", "r/blobs/" + sha(b"x")),
                             ("POST", "r/blobs/uploads/?mount={}&from=ns/app".format(sha(b"x")))]:
            response = await self.request(self.reader, method, path, data=b"{}")
            self.assertEqual(response.code, 405, (method, path))
        self.assertEqual(self.recorder.writes, [])
