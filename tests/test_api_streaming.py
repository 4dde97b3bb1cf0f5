"""
Upload bodies over a real listening Site on 127.0.0.1: streamed into
storage as they arrive (never spooled), with the client paused while
storage lags, clean handling of clients that disconnect mid-body, and the
caps on non-blob bodies.

The streaming tests (L{tests.support.streaming.StreamingTestsMixin}) run on
each driver: in memory (with writes that complete a little later, like a
remote backend's), on the filesystem (writes complete in threads) and on S3
(moto).
"""

import json
import os

from twisted.internet import reactor, threads

from spectroreg.api.request import RegistryRequest
from spectroreg.storage.filesystem import FilesystemDriver
from spectroreg.storage.inmemory import InMemoryDriver
from spectroreg.storage.s3 import S3Driver
from spectroreg.storage.s3.client import RetryPolicy
from spectroreg.web.interfaces import IRequestContext
from tests.support.asynctest import async_test
from tests.support.moto import fresh_bucket, s3_settings
from tests.support.streaming import MiB, StreamingTestCase, StreamingTestsMixin


class InMemoryStreamingCase(StreamingTestCase):
    write_delay = 0.0005

    def make_storage(self):
        return InMemoryDriver()

    async def stored_paths(self):
        return list(self.storage._files)


class InMemoryStreamingTests(StreamingTestsMixin, InMemoryStreamingCase):
    """Streaming into memory, each write completing a little later."""


class FilesystemStreamingTests(StreamingTestsMixin, StreamingTestCase):
    """Streaming over the filesystem driver, whose writes complete in threads."""

    def make_storage(self):
        self.root = self.mktemp()
        driver = FilesystemDriver(self.root, maxthreads=4, reactor=reactor)
        self.addCleanup(driver.close)
        return driver

    async def stored_paths(self):
        found = []
        for top, _, names in os.walk(self.root):
            found.extend(os.path.join(top, name) for name in names)
        return found

    @async_test
    async def test_blob_hashed_beside_the_reactor(self):
        """
        The upload's sha256 is computed by the writer in the pool thread
        that writes the bytes, never on the reactor thread, and a streamed
        body is read from the socket in large pieces.
        """
        import hashlib
        import threading

        from spectroreg.registry import uploads
        from spectroreg.web import bodies
        from spectroreg.web.bodies import LARGE_READ

        hashed_on = set()

        class Recording:
            def __init__(self, inner):
                self._inner = inner

            def update(self, data):
                hashed_on.add(threading.current_thread())
                self._inner.update(data)

            def copy(self):
                return Recording(self._inner.copy())

            def hexdigest(self):
                return self._inner.hexdigest()

        self.patch(uploads, "digest_hasher", lambda: Recording(hashlib.sha256()))
        read_sizes = []
        connections = set()
        original = bodies.ReadSizer.received

        def recording_received(sizer, count):
            original(sizer, count)
            if sizer._socket is not None:
                connections.add(sizer._socket)
                read_sizes.append(sizer._socket.bufferSize)

        self.patch(bodies.ReadSizer, "received", recording_received)
        data = bytes(range(256)) * (4 * MiB // 256)
        location = await self.start_upload()
        response = await self.http("PATCH", location, data=data)
        self.assertEqual(response.code, 202, response.body)
        await self.finish_upload_and_pull(location, data)
        self.assertTrue(hashed_on)
        self.assertNotIn(threading.main_thread(), hashed_on)
        # The reads grew while the body came in fast, and are Twisted's again after it.
        self.assertIn(LARGE_READ, read_sizes)
        self.assertTrue(connections)
        self.assertEqual({connection.bufferSize for connection in connections}, {bodies.DEFAULT_READ})


class S3StreamingTests(StreamingTestsMixin, StreamingTestCase):
    """Streaming into S3 (moto's server) in multipart uploads."""

    timeout = 120

    def make_storage(self):
        self.server, self.bucket = fresh_bucket(self)
        retry = RetryPolicy(attempts=4, base=0.01, cap=0.05)
        # Blobs are read through the daemon, not redirected to the bucket.
        driver = S3Driver(s3_settings(self.server, self.bucket), retry=retry, redirect=False)
        self.addCleanup(driver.close)
        return driver

    async def stored_paths(self):
        def listing():
            # Multipart uploads in progress hold data too.
            return self.server.keys(self.bucket) + [key for key, _ in self.server.uploads(self.bucket)]

        return ["/" + key for key in await threads.deferToThread(listing)]


class BodyCapTests(InMemoryStreamingCase):
    """What is not a blob is never streamed into storage nor spooled whole."""

    @async_test
    async def test_request_content_stays_empty(self):
        """Twisted's spool (request.content) never sees the blob."""
        seen = []
        original = RegistryRequest.requestReceived

        def check(request, *args):
            original(request, *args)
            if IRequestContext(request).body.stream is not None:
                request.content.seek(0, 2)
                seen.append(request.content.tell())

        self.patch(RegistryRequest, "requestReceived", check)
        location = await self.start_upload()
        response = await self.http("PATCH", location, data=b"q" * MiB)
        self.assertEqual(response.code, 202)
        self.assertEqual(seen, [0])

    @async_test
    async def test_oversized_manifest_refused_without_keeping_it(self):
        body = b"{" + b" " * (5 * MiB) + b"}"
        response = await self.http("PUT", self.base + "repo/manifests/v1", data=body,
                                   headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        self.assertEqual(response.code, 413)
        self.assertEqual(json.loads(response.body)["errors"][0]["code"], "MANIFEST_INVALID")
        self.assertEqual(self.streams, [])

    @async_test
    async def test_other_bodies_capped(self):
        response = await self.http("POST", self.base + "repo/blobs/uploads/", data=b"x" * MiB)
        self.assertEqual(response.code, 202)
        self.assertEqual(self.streams, [])

    @async_test
    async def test_unclaimed_path_with_big_body(self):
        response = await self.http("POST", "http://127.0.0.1:{}/elsewhere".format(self.port.getHost().port),
                                   data=b"x" * MiB)
        self.assertEqual(response.code, 413)
        self.assertEqual(json.loads(response.body)["errors"][0]["code"], "SIZE_INVALID")
