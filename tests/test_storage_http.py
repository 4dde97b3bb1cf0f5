"""
Driver reads into a real twisted.web request over real TCP on 127.0.0.1.

The producer contract (pause while the client is slow, stop when it goes
away) is checked here against Twisted's own transport, not a test double.
"""

import hashlib

from twisted.internet import defer, endpoints, protocol, task
from twisted.internet import reactor
from twisted.internet.error import ConnectionClosed
from twisted.trial import unittest
from twisted.web import resource, server

from spectroreg.storage.base import ValidatingDriver
from spectroreg.storage.filesystem import FilesystemDriver
from spectroreg.storage.inmemory import InMemoryDriver
from spectroreg.storage.s3 import S3Driver
from spectroreg.storage.testing import MiB, deterministic_chunks, deterministic_digest
from tests.support.asynctest import async_test
from tests.support.moto import fresh_bucket, s3_settings

SIZE = 32 * MiB


class CountingConsumer:
    """Passes everything to the request, counting the bytes the driver wrote."""

    def __init__(self, request):
        self.request = request
        self.written = 0

    def registerProducer(self, producer, streaming):
        self.request.registerProducer(producer, streaming)

    def unregisterProducer(self):
        self.request.unregisterProducer()

    def write(self, data):
        self.written += len(data)
        self.request.write(data)


class Serve(resource.Resource):
    isLeaf = True

    def __init__(self, driver):
        super().__init__()
        self.driver = driver
        self.reads = []

    def render_GET(self, request):
        request.setHeader(b"content-length", b"%d" % SIZE)
        consumer = CountingConsumer(request)
        d = self.driver.read(request.path.decode("ascii"), consumer)
        self.reads.append((consumer, d))

        def done(count):
            request.finish()
            return count

        d.addCallback(done)
        # Outcomes are checked by the tests; keep them from being logged as unhandled.
        d.addErrback(lambda failure: failure)
        return server.NOT_DONE_YET


class Client(protocol.Protocol):
    def __init__(self, on_first_data=None):
        self.hash = hashlib.sha256()
        self.header = b""
        self.body = 0
        self.done = defer.Deferred()
        self.on_first_data = on_first_data

    def connectionMade(self):
        self.transport.write(
            b"GET " + self.factory.path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")

    def dataReceived(self, data):
        if self.header is not None:
            self.header += data
            if b"\r\n\r\n" not in self.header:
                return
            self.header, data = self.header.split(b"\r\n\r\n", 1)
            self.status = self.header.split(b" ")[1]
            self.header = None
            if self.on_first_data is not None:
                self.on_first_data(self)
        self.hash.update(data)
        self.body += len(data)

    def connectionLost(self, reason):
        self.done.callback(None)


class HTTPReadTestsMixin:
    timeout = 120

    async def serve(self):
        driver = ValidatingDriver(self.make_driver())
        writer = await driver.writer("/blob/data")
        for chunk in deterministic_chunks(SIZE, seed=11):
            await writer.write(chunk)
        await writer.commit()
        self.site_resource = Serve(driver)
        site = server.Site(self.site_resource)
        site.noisy = False
        port = await endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(site)
        self.addCleanup(port.stopListening)
        self.port = port.getHost().port
        return driver

    async def fetch(self, on_first_data=None):
        factory = protocol.ClientFactory.forProtocol(lambda: Client(on_first_data))
        factory.path = b"/blob/data"
        endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", self.port)
        client = await endpoint.connect(factory)
        await client.done
        return client

    @async_test
    async def test_download(self):
        """A whole download arrives intact."""
        await self.serve()
        client = await self.fetch()
        self.assertEqual(client.status, b"200")
        consumer, d = self.site_resource.reads[0]
        self.assertEqual(await d, SIZE)
        self.assertEqual((consumer.written, client.body), (SIZE, SIZE))
        self.assertEqual(client.hash.hexdigest(), deterministic_digest(SIZE, seed=11))

    @async_test
    async def test_slow_client_pauses_the_read(self):
        """While the client reads nothing, the driver stops writing after a few buffers."""
        await self.serve()
        observed = []

        def stall(client):
            client.transport.pauseProducing()

            def measure():
                consumer, _ = self.site_resource.reads[0]
                observed.append(consumer.written)
                return task.deferLater(reactor, 0.3, lambda: observed.append(consumer.written))

            def resume(_):
                client.transport.resumeProducing()

            task.deferLater(reactor, 0.3, measure).addCallback(resume)

        client = await self.fetch(stall)
        consumer, d = self.site_resource.reads[0]
        self.assertEqual(await d, SIZE)
        self.assertEqual(client.hash.hexdigest(), deterministic_digest(SIZE, seed=11))
        first, second = observed
        # Stalled: nothing more was produced, and far less than the file was.
        self.assertEqual(first, second)
        self.assertLess(second, SIZE // 2)

    @async_test
    async def test_client_goes_away(self):
        """A client that disconnects stops the read; the driver reports a connection error."""
        await self.serve()

        def leave(client):
            client.transport.abortConnection()

        await self.fetch(leave)
        consumer, d = self.site_resource.reads[0]
        try:
            await d
        except ConnectionClosed:
            pass
        else:
            self.fail("the read finished although the client went away")
        self.assertLess(consumer.written, SIZE)


class InMemoryHTTPReadTests(HTTPReadTestsMixin, unittest.TestCase):
    def make_driver(self):
        return InMemoryDriver()


class FilesystemHTTPReadTests(HTTPReadTestsMixin, unittest.TestCase):
    def make_driver(self):
        driver = FilesystemDriver(self.mktemp(), maxthreads=4)
        self.addCleanup(driver.close)
        return driver


class S3HTTPReadTests(HTTPReadTestsMixin, unittest.TestCase):
    def make_driver(self):
        server, bucket = fresh_bucket(self)
        driver = S3Driver(s3_settings(server, bucket))
        self.addCleanup(driver.close)
        return driver
