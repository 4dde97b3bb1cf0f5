"""
Blob bodies streamed through a real listening Site on 127.0.0.1 into one
storage driver: the shared tests (L{StreamingTestsMixin}) and the harness
they run in (L{StreamingTestCase}).

A driver's test case derives from both and says how to make its driver
(L{StreamingTestCase.make_storage}) and where to look for what it stored
(L{StreamingTestCase.stored_paths}); see tests/test_api_streaming.py.
"""

import hashlib

from twisted.internet import defer, protocol, reactor, task
from twisted.trial import unittest
from twisted.web.client import HTTPConnectionPool
from zope.interface import alsoProvides, implementer

import treq

from spectroreg.api import request as api_request
from spectroreg.api.request import RegistryRequest
from spectroreg.api.testing import make_api_resource, make_registry, make_root, make_settings
from spectroreg.storage.base import ValidatingDriver
from spectroreg.storage.errors import StorageError
from spectroreg.storage.interfaces import IFileWriter, IHashingWriter, IStorageDriver
from spectroreg.web.site import RegistrySite
from tests.support.asynctest import async_test

MiB = 1024 * 1024


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


@implementer(IFileWriter)
class SlowWriter:
    """A writer that records its writes; each completes C{delay} later."""

    def __init__(self, writer, delay, fail_after=None):
        self._writer = writer
        self._delay = delay
        self._fail_after = fail_after
        self.writes = []
        if IHashingWriter.providedBy(writer):
            # The driver's writer hashes what it writes (the filesystem's,
            # in its thread): so does this one, by handing it the hasher.
            alsoProvides(self, IHashingWriter)

    def hash_with(self, hasher):
        return self._writer.hash_with(hasher)

    @property
    def size(self):
        return self._writer.size

    def write(self, data):
        self.writes.append(len(data))
        if self._fail_after is not None and sum(self.writes) > self._fail_after:
            return defer.fail(OSError("the disk broke"))
        d = self._writer.write(data)
        if not self._delay:
            return d
        return d.addCallback(lambda _: task.deferLater(reactor, self._delay, lambda: None))

    def close(self):
        return self._writer.close()

    def commit(self):
        return self._writer.commit()

    def cancel(self):
        return self._writer.cancel()


@implementer(IStorageDriver)
class SlowDriver:
    """
    A driver whose writers are L{SlowWriter}s (kept in C{writers}); all else
    is C{driver}'s. C{fail_after}: bytes an upload writer takes before its
    writes fail.
    """

    fail_after = None

    def __init__(self, driver, delay=0.0):
        self.driver = driver
        self.delay = delay
        self.writers = []

    def __getattr__(self, attribute):
        if attribute == "driver":
            raise AttributeError(attribute)
        return getattr(self.driver, attribute)

    def writer(self, path, append=False, durable=True):
        d = self.driver.writer(path, append, durable)

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


async def pause(seconds):
    await task.deferLater(reactor, seconds, lambda: None)


class StreamingTestCase(unittest.TestCase):
    """
    A registry on C{self.driver} (a L{SlowDriver} around L{make_storage}'s
    driver) served on a port of 127.0.0.1; C{self.streams} records every
    request body stream and the most it queued (C{max_queued}).
    """

    # Seconds each write of an upload takes on top of the driver's own.
    write_delay = 0.0

    def make_storage(self):
        """The driver under test."""
        raise NotImplementedError()

    async def stored_paths(self):
        """Every path (or key) the driver holds now."""
        raise NotImplementedError()

    def setUp(self):
        self.settings = make_settings()
        self.storage = self.make_storage()
        self.driver = SlowDriver(self.storage, self.write_delay)
        self.registry = make_registry(self.settings, driver=ValidatingDriver(self.driver), reactor=reactor)
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

    def path_of(self, location):
        return location.split(str(self.port.getHost().port), 1)[1]

    async def raw(self, payload, close_after=False):
        client = RawClient()
        connection = await protocol.ClientCreator(reactor, lambda: client).connectTCP(
            "127.0.0.1", self.port.getHost().port)
        connection.transport.write(payload)
        if close_after:
            await pause(0.2)
            connection.transport.abortConnection()
        await client.lost
        return client.received

    async def uploads_released(self):
        """Wait (a while at most) until no upload is locked by a request."""
        for _ in range(100):
            if not self.registry.uploads.locks:
                break
            await pause(0.02)

    async def upload_size(self, location):
        status = await self.http("GET", location)
        self.assertEqual(status.code, 204)
        return int(status.headers.getRawHeaders("range")[0].split("-")[1]) + 1


class StreamingTestsMixin:
    """Uploads and downloads streamed into and out of the driver under test."""

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
        response = await self.http("GET", self.base + "repo/blobs/" + sha(data))
        self.assertEqual(response.body, data)

    @async_test
    async def test_chunked_transfer_encoding(self):
        location = await self.start_upload()
        body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        answer = await self.raw(
            b"PATCH " + self.path_of(location).encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + body)
        self.assertTrue(answer.startswith(b"HTTP/1.1 202"), answer)
        self.assertIn(b"Range: 0-10", answer)
        response = await self.http("PUT", location + "?digest=" + sha(b"hello world"))
        self.assertEqual(response.code, 201)

    @async_test
    async def test_disconnect_mid_patch_leaves_resumable_upload(self):
        """A second PATCH cut short: the upload resumes from what storage kept."""
        location = await self.start_upload()
        await self.http("PATCH", location, data=b"a" * 1000)
        partial = b"b" * (300 * 1024)
        await self.raw(b"PATCH " + self.path_of(location).encode()
                       + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n"
                       b"Content-Range: 1000-1049575\r\n\r\n" + partial, close_after=True)
        await self.uploads_released()
        size = await self.upload_size(location)
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
    async def test_disconnect_mid_first_patch_resumable(self):
        """The first PATCH (no Content-Range) cut short: the upload resumes too."""
        location = await self.start_upload()
        partial = b"p" * (400 * 1024)
        await self.raw(b"PATCH " + self.path_of(location).encode()
                       + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n"
                       + partial, close_after=True)
        await self.uploads_released()
        size = await self.upload_size(location)
        self.assertLessEqual(size, len(partial))
        rest = b"r" * 1000
        response = await self.http("PATCH", location, data=rest,
                                   headers={"Content-Range": "{}-{}".format(size, size + len(rest) - 1)})
        self.assertEqual(response.code, 202, response.body)
        response = await self.http("PUT", location + "?digest=" + sha(partial[:size] + rest))
        self.assertEqual(response.code, 201, response.body)

    @async_test
    async def test_storage_failure_mid_body_answered_at_once(self):
        # The answer (500) is decided when storage fails: the rest of an
        # 8 MiB body is not waited for; the connection closes after it.
        location = await self.start_upload()
        self.driver.fail_after = 256 * 1024
        answer = await self.raw(b"PATCH " + self.path_of(location).encode()
                                + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 8388608\r\n\r\n" + b"f" * MiB)
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
        for _ in range(100):
            if not any("/_uploads/" in p for p in await self.stored_paths()):
                break
            await pause(0.02)
        self.assertEqual([p for p in await self.stored_paths() if "/_uploads/" in p or "/blobs/" in p], [])

    @async_test
    async def test_client_leaving_mid_download(self):
        """A client that goes away mid-blob stops the read; nothing is logged as an error."""
        data = b"d" * (16 * MiB)
        response = await self.http("POST", self.base + "repo/blobs/uploads/?digest=" + sha(data), data=data)
        self.assertEqual(response.code, 201)
        reads = []
        original = self.storage.read

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
        await pause(0.2)
        self.assertFalse(reads[0].called)
        connection.transport.abortConnection()
        await client.lost
        for _ in range(100):
            if reads and reads[0].called:
                break
            await pause(0.01)
        self.assertTrue(reads[0].called)
        self.assertLess(len(client.received), len(data))
        response = await self.http("GET", self.base + "repo/blobs/" + sha(data), headers={"Range": "bytes=0-9"})
        self.assertEqual((response.code, response.body), (206, b"d" * 10))

    @async_test
    async def test_storage_failure_mid_download_cuts_the_response(self):
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
