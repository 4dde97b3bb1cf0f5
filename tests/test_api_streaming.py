"""
Upload bodies over a real listening Site on 127.0.0.1: streamed into
storage as they arrive (never spooled), with the client paused while
storage lags, clean handling of clients that disconnect mid-body, and the
caps on non-blob bodies.
"""

import hashlib
import json

from twisted.internet import defer, protocol, reactor, task
from twisted.trial import unittest
from twisted.web.client import HTTPConnectionPool
from zope.interface import implementer

import treq

from spectroreg.api import request as api_request
from spectroreg.api.request import RegistryRequest
from spectroreg.api.testing import make_api_resource, make_registry, make_root, make_settings
from spectroreg.storage.base import ValidatingDriver
from spectroreg.storage.errors import StorageError
from spectroreg.storage.inmemory import InMemoryDriver
from spectroreg.storage.interfaces import IFileWriter
from spectroreg.web.interfaces import IRequestContext
from spectroreg.web.site import RegistrySite
from tests.support.asynctest import async_test

MiB = 1024 * 1024


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


@implementer(IFileWriter)
class SlowWriter:
    """A writer whose writes complete a little later, like a remote backend."""

    def __init__(self, writer, delay, fail_after=None):
        self._writer = writer
        self._delay = delay
        self._fail_after = fail_after
        self.writes = []

    @property
    def size(self):
        return self._writer.size

    def write(self, data):
        self.writes.append(len(data))
        if self._fail_after is not None and sum(self.writes) > self._fail_after:
            return defer.fail(OSError("the disk broke"))
        d = self._writer.write(data)
        return d.addCallback(lambda _: task.deferLater(reactor, self._delay, lambda: None))

    def close(self):
        return self._writer.close()

    def commit(self):
        return self._writer.commit()

    def cancel(self):
        return self._writer.cancel()


class SlowDriver(InMemoryDriver):
    delay = 0.0005
    fail_after = None  # bytes an upload writer takes before its writes fail

    def __init__(self):
        InMemoryDriver.__init__(self)
        self.writers = []

    def writer(self, path, append=False):
        d = InMemoryDriver.writer(self, path, append)

        def wrap(writer):
            slow = SlowWriter(writer, self.delay, self.fail_after)
            self.writers.append(slow)
            return slow

        return d.addCallback(wrap)


class RawClient(protocol.Protocol):
    """Sends bytes, collects the answer, can drop the connection."""

    def __init__(self):
        self.received = b""
        self.lost = defer.Deferred()

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.lost.callback(None)


class PausingClient(RawClient):
    """Stops reading after C{threshold} bytes."""

    def __init__(self, threshold):
        RawClient.__init__(self)
        self.threshold = threshold
        self.paused = defer.Deferred()

    def dataReceived(self, data):
        RawClient.dataReceived(self, data)
        if len(self.received) >= self.threshold and not self.paused.called:
            self.transport.pauseProducing()
            self.paused.callback(None)


class StreamingTestCase(unittest.TestCase):
    def setUp(self):
        self.settings = make_settings()
        self.driver = SlowDriver()
        self.registry = make_registry(self.settings, driver=ValidatingDriver(self.driver))
        self.api = make_api_resource(self.registry, self.settings)
        root = make_root(self.api)
        self.site = RegistrySite(root, request_factory=RegistryRequest, access_log=False)
        self.port = reactor.listenTCP(0, self.site, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        # Connections still lingering after a cut body.
        self.addCleanup(self.site.drain, 0)
        self.base = "http://127.0.0.1:{}/v2/".format(self.port.getHost().port)
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.streams = []
        original = api_request.BodyStream.__init__
        streams = self.streams

        def recording_init(stream, *args, **kwargs):
            original(stream, *args, **kwargs)
            stream.max_queued = 0
            streams.append(stream)

        original_feed = api_request.BodyStream.feed

        def recording_feed(stream, data):
            original_feed(stream, data)
            stream.max_queued = max(stream.max_queued, sum(map(len, stream._queue)))

        self.patch(api_request.BodyStream, "__init__", recording_init)
        self.patch(api_request.BodyStream, "feed", recording_feed)

    async def http(self, method, url, data=None, headers=None):
        response = await treq.request(method, url, data=data, headers=headers or {}, pool=self.pool,
                                      reactor=reactor)
        response.body = await response.content()
        return response

    async def start_upload(self):
        response = await self.http("POST", self.base + "repo/blobs/uploads/")
        self.assertEqual(response.code, 202)
        return response.headers.getRawHeaders("location")[0]

    async def finish_upload_and_pull(self, location, data):
        """Close the upload with its digest (201), then pull the blob back intact."""
        response = await self.http("PUT", location + "?digest=" + sha(data))
        self.assertEqual(response.code, 201, response.body)
        response = await self.http("GET", self.base + "repo/blobs/" + sha(data))
        self.assertEqual(response.body, data)

    async def raw(self, payload, close_after=False):
        client = RawClient()
        connection = await protocol.ClientCreator(reactor, lambda: client).connectTCP(
            "127.0.0.1", self.port.getHost().port)
        connection.transport.write(payload)
        if close_after:
            await task.deferLater(reactor, 0.2, lambda: None)
            connection.transport.abortConnection()
        await client.lost
        return client.received


class StreamingTests(StreamingTestCase):
    @async_test
    async def test_patch_is_streamed_with_back_pressure(self):
        """A 16 MiB PATCH reaches storage in chunks while at most a little is queued."""
        data = bytes(range(256)) * (16 * MiB // 256)
        location = await self.start_upload()
        response = await self.http("PATCH", location, data=data, headers={"Content-Type": "application/octet-stream"})
        self.assertEqual(response.code, 202, response.body)
        self.assertEqual(response.headers.getRawHeaders("range"), ["0-{}".format(len(data) - 1)])
        self.assertEqual(len(self.streams), 1)
        stream = self.streams[0]
        self.assertEqual(stream.received, len(data))
        # Paused while storage lags: the queue never holds more than a few socket reads.
        self.assertLess(stream.max_queued, 1 * MiB)
        writer = self.driver.writers[-1]
        self.assertGreater(len(writer.writes), 16)
        self.assertLessEqual(max(writer.writes), 1 * MiB)
        await self.finish_upload_and_pull(location, data)

    @async_test
    async def test_monolithic_post_is_streamed(self):
        data = b"z" * (4 * MiB)
        response = await self.http("POST", self.base + "repo/blobs/uploads/?digest=" + sha(data), data=data)
        self.assertEqual(response.code, 201, response.body)
        self.assertEqual(len(self.streams), 1)
        self.assertEqual(self.streams[0].received, len(data))

    @async_test
    async def test_chunked_transfer_encoding(self):
        location = await self.start_upload()
        path = location.split(str(self.port.getHost().port), 1)[1]
        body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        answer = await self.raw(
            b"PATCH " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + body)
        self.assertTrue(answer.startswith(b"HTTP/1.1 202"), answer)
        self.assertIn(b"Range: 0-10", answer)
        response = await self.http("PUT", location + "?digest=" + sha(b"hello world"))
        self.assertEqual(response.code, 201)

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
    async def test_disconnect_mid_patch_leaves_resumable_upload(self):
        location = await self.start_upload()
        await self.http("PATCH", location, data=b"a" * 1000)
        path = location.split(str(self.port.getHost().port), 1)[1]
        partial = b"b" * (300 * 1024)
        await self.raw(b"PATCH " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n"
                       b"Content-Range: 1000-1049575\r\n\r\n" + partial, close_after=True)
        for _ in range(50):
            if not self.registry.uploads.locks:
                break
            await task.deferLater(reactor, 0.02, lambda: None)
        status = await self.http("GET", location)
        self.assertEqual(status.code, 204)
        end = int(status.headers.getRawHeaders("range")[0].split("-")[1])
        size = end + 1
        self.assertGreaterEqual(size, 1000)
        self.assertLessEqual(size, 1000 + len(partial))
        stored = (b"a" * 1000 + partial)[:size]
        rest = b"c" * 5000
        response = await self.http("PATCH", location, data=rest,
                                   headers={"Content-Range": "{}-{}".format(size, size + len(rest) - 1)})
        self.assertEqual(response.code, 202, response.body)
        response = await self.http("PUT", location + "?digest=" + sha(stored + rest))
        self.assertEqual(response.code, 201, response.body)

    @async_test
    async def test_storage_failure_mid_body_answered_at_once(self):
        # The answer (500) is decided when storage fails: the rest of an
        # 8 MiB body is not waited for; the connection closes after it.
        location = await self.start_upload()
        path = location.split(str(self.port.getHost().port), 1)[1]
        self.driver.fail_after = 256 * 1024
        answer = await self.raw(b"PATCH " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 8388608\r\n\r\n"
                                + b"f" * MiB)
        self.assertTrue(answer.startswith(b"HTTP/1.1 500 "), answer[:200])
        self.assertIn(b"\r\nConnection: close\r\n", answer)
        self.flushLoggedErrors(StorageError, OSError)
        self.driver.fail_after = None
        response = await self.http("GET", location)
        self.assertEqual(response.code, 204)

    @async_test
    async def test_disconnect_mid_monolithic_post_leaves_nothing(self):
        data = b"m" * MiB
        path = "/v2/repo/blobs/uploads/?digest=" + sha(data)
        await self.raw(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n"
                       + data[:200000], close_after=True)
        for _ in range(50):
            if not any("/_uploads/" in p for p in self.driver._files):
                break
            await task.deferLater(reactor, 0.02, lambda: None)
        self.assertEqual([p for p in self.driver._files if "/_uploads/" in p or "/blobs/" in p], [])

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


class DownloadTests(StreamingTestCase):
    @async_test
    async def test_client_leaving_mid_download(self):
        """A client that goes away mid-blob stops the read; nothing is logged as an error."""
        data = b"d" * (16 * MiB)
        response = await self.http("POST", self.base + "repo/blobs/uploads/?digest=" + sha(data), data=data)
        self.assertEqual(response.code, 201)
        reads = []
        original = self.driver.read

        def recording_read(path, consumer, offset=0, length=None):
            d = original(path, consumer, offset, length)
            reads.append(d)
            return d

        self.driver.read = recording_read
        client = PausingClient(100000)
        connection = await protocol.ClientCreator(reactor, lambda: client).connectTCP(
            "127.0.0.1", self.port.getHost().port)
        connection.transport.write("GET /v2/repo/blobs/{} HTTP/1.1\r\nHost: x\r\n\r\n".format(sha(data)).encode())
        await client.paused
        # The client reads nothing more: the server must stop reading the blob.
        await task.deferLater(reactor, 0.2, lambda: None)
        self.assertFalse(reads[0].called)
        connection.transport.abortConnection()
        await client.lost
        for _ in range(100):
            if reads and reads[0].called:
                break
            await task.deferLater(reactor, 0.01, lambda: None)
        self.assertTrue(reads[0].called)
        self.assertLess(len(client.received), len(data))
        response = await self.http("GET", self.base + "repo/blobs/" + sha(data), headers={"Range": "bytes=0-9"})
        self.assertEqual((response.code, response.body), (206, b"d" * 10))


class KeepAliveTests(StreamingTestCase):
    @async_test
    async def test_streamed_requests_on_one_connection(self):
        """After a streamed body the connection reads the next request."""
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = 1
        self.connections = []
        build = self.site.buildProtocol

        def counting_build(address):
            self.connections.append(address)
            return build(address)

        self.site.buildProtocol = counting_build
        self.addCleanup(self.pool.closeCachedConnections)
        location = await self.start_upload()
        data = b""
        for index in range(3):
            chunk = bytes([65 + index]) * (512 * 1024)
            response = await self.http("PATCH", location, data=chunk)
            self.assertEqual(response.code, 202, response.body)
            data += chunk
        await self.finish_upload_and_pull(location, data)
        self.assertEqual(len(self.streams), 4)
        self.assertEqual(len(self.connections), 1)


class FilesystemStreamingTests(StreamingTestCase):
    """The same streaming over the filesystem driver, whose writes complete in threads."""

    def setUp(self):
        StreamingTestCase.setUp(self)
        from spectroreg.registry import Registry
        from spectroreg.storage.filesystem import FilesystemDriver

        self.root = self.mktemp()
        filesystem = FilesystemDriver(self.root, maxthreads=4, reactor=reactor)
        self.addCleanup(filesystem.close)
        self.registry = Registry(ValidatingDriver(filesystem), self.settings.storage, reactor=reactor)
        self.api = make_api_resource(self.registry, self.settings)
        self.site.resource = make_root(self.api)

    def files(self):
        import os

        found = []
        for top, _, names in os.walk(self.root):
            found.extend(os.path.join(top, name) for name in names)
        return found

    @async_test
    async def test_patch_streamed(self):
        data = bytes(range(256)) * (8 * MiB // 256)
        location = await self.start_upload()
        response = await self.http("PATCH", location, data=data)
        self.assertEqual(response.code, 202, response.body)
        self.assertLess(self.streams[0].max_queued, 1 * MiB)
        await self.finish_upload_and_pull(location, data)

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
        from spectroreg.web import bodies

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

    @async_test
    async def test_disconnect_mid_monolithic_post_leaves_nothing(self):
        data = b"m" * MiB
        path = "/v2/repo/blobs/uploads/?digest=" + sha(data)
        await self.raw(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n"
                       + data[:200000], close_after=True)
        for _ in range(100):
            if not any("/_uploads/" in p for p in self.files()):
                break
            await task.deferLater(reactor, 0.02, lambda: None)
        self.assertEqual([p for p in self.files() if "/_uploads/" in p or "/blobs/" in p], [])

    @async_test
    async def test_disconnect_mid_patch_resumable(self):
        location = await self.start_upload()
        path = location.split(str(self.port.getHost().port), 1)[1]
        partial = b"p" * (400 * 1024)
        await self.raw(b"PATCH " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n"
                       + partial, close_after=True)
        for _ in range(100):
            if not self.registry.uploads.locks:
                break
            await task.deferLater(reactor, 0.02, lambda: None)
        status = await self.http("GET", location)
        size = int(status.headers.getRawHeaders("range")[0].split("-")[1]) + 1
        self.assertLessEqual(size, len(partial))
        rest = b"r" * 1000
        response = await self.http("PATCH", location, data=rest,
                                   headers={"Content-Range": "{}-{}".format(size, size + len(rest) - 1)})
        self.assertEqual(response.code, 202, response.body)
        response = await self.http("PUT", location + "?digest=" + sha(partial[:size] + rest))
        self.assertEqual(response.code, 201, response.body)


class DownloadFailureTests(StreamingTestCase):
    @async_test
    async def test_storage_failure_mid_download_cuts_the_response(self):
        from spectroreg.storage.errors import StorageError

        data = b"e" * MiB
        response = await self.http("POST", self.base + "repo/blobs/uploads/?digest=" + sha(data), data=data)
        self.assertEqual(response.code, 201)

        def failing_read(path, consumer, offset=0, length=None):
            consumer.write(b"e" * 1000)
            return defer.fail(StorageError("disk gone", path))

        self.driver.read = failing_read
        answer = await self.raw("GET /v2/repo/blobs/{} HTTP/1.1\r\nHost: x\r\n\r\n".format(sha(data)).encode())
        head, _, body = answer.partition(b"\r\n\r\n")
        self.assertIn(b"200 OK", head)
        self.assertIn(b"Content-Length: 1048576", head)
        self.assertEqual(len(body), 1000)
        self.assertEqual(len(self.flushLoggedErrors(StorageError)), 1)
