"""
Blob bytes sent with sendfile(2) (spectroreg.storage._sendfile) over real
TCP sockets: a twisted.web site in this process serves a FilesystemDriver's
files, blocking clients read them from threads.
"""

import hashlib
import os
import socket
import threading

from twisted.internet import defer, reactor, threads
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IPushProducer, IWriteDescriptor
from twisted.python.failure import Failure
from twisted.trial import unittest
from twisted.web import resource, server
from twisted.web.test.requesthelper import DummyRequest
from zope.interface.verify import verifyObject

from spectroreg.storage import _sendfile
from spectroreg.storage.errors import PathNotFound
from spectroreg.storage.filesystem import FilesystemDriver
from tests.support.asynctest import async_test

MIB = 1024 * 1024


class _Serve(resource.Resource):
    """GET /<name>?o=<offset>&n=<length>: driver.read into the request."""

    isLeaf = True

    def __init__(self, driver, results):
        super().__init__()
        self._driver = driver
        self._results = results

    def render_GET(self, request):
        path = "/" + request.postpath[0].decode()
        offset = int(request.args.get(b"o", [b"0"])[0])
        length = int(request.args.get(b"n", [b"-1"])[0])
        size = os.path.getsize(self._driver.rootdirectory + path)
        length = size - offset if length < 0 else length
        request.setHeader(b"content-length", str(length).encode())
        d = self._driver.read(path, request, offset, length)

        def done(result):
            # As the blob GET handler: a failed read is not finished.
            self._results.append(result)
            if not isinstance(result, Failure):
                request.finish()

        d.addBoth(done)
        return server.NOT_DONE_YET


def _get(port, path, rcvbuf=None, read_size=64 * 1024, stop_after=None, on_partial=None):
    """A blocking GET: (headers, body). C{on_partial(received)} once C{stop_after} bytes arrived."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    try:
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.sendall("GET {} HTTP/1.1\r\nHost: x\r\n\r\n".format(path).encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(read_size)
        head, body = data.split(b"\r\n\r\n", 1)
        length = int([line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")][0])
        parts = [body]
        received = len(body)
        while received < length:
            if stop_after is not None and received >= stop_after and on_partial is not None:
                on_partial(received)
                on_partial = None
            chunk = s.recv(read_size)
            if not chunk:
                break
            parts.append(chunk)
            received += len(chunk)
        return head, b"".join(parts)
    finally:
        s.close()


class SendfileTests(unittest.TestCase):
    def setUp(self):
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(self.root)
        self.driver = FilesystemDriver(self.root, reactor=reactor)
        self.addCleanup(self.driver.close)
        self.results = []
        self.producers = []
        producers = self.producers
        original_start = _sendfile.SendfileProducer.start

        def start(producer):
            producers.append(producer)
            return original_start(producer)

        self.patch(_sendfile.SendfileProducer, "start", start)
        self.calls = []
        real = os.sendfile

        def counting(out, fd, offset, count):
            sent = real(out, fd, offset, count)
            self.calls.append((threading.current_thread() is threading.main_thread(), sent))
            return sent

        self.patch(_sendfile.os, "sendfile", counting)
        self.port = reactor.listenTCP(0, server.Site(_Serve(self.driver, self.results)), interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.portnumber = self.port.getHost().port

    def _file(self, name, size):
        data = os.urandom(size)
        with open(os.path.join(self.root, name), "wb") as handle:
            handle.write(data)
        return data

    def _fetch(self, path, **kwargs):
        return threads.deferToThread(_get, self.portnumber, path, **kwargs)

    @async_test
    async def test_partial_sends(self):
        """A small socket buffer: many partial sends, all on the reactor thread, the bytes in order."""
        data = self._file("big", MIB + 123)
        self.port.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
        head, body = await self._fetch("/big", rcvbuf=8192, read_size=4096)
        self.assertIn(b"200", head.split(b"\r\n")[0])
        self.assertEqual(hashlib.sha256(body).digest(), hashlib.sha256(data).digest())
        self.assertEqual(len(self.producers), 1)
        verifyObject(IPushProducer, self.producers[0])
        verifyObject(IWriteDescriptor, self.producers[0])
        self.assertGreater(len(self.calls), 4)
        self.assertTrue(all(on_reactor for on_reactor, _ in self.calls))
        self.assertTrue(any(sent < 64 * 1024 for _, sent in self.calls))
        self.assertEqual(self.results, [len(data)])

    @async_test
    async def test_range(self):
        data = self._file("blob", 3 * MIB)
        head, body = await self._fetch("/blob?o=1000001&n=1500000")
        self.assertEqual(body, data[1000001:2500001])
        self.assertEqual(len(self.producers), 1)
        self.assertEqual(self.results, [1500000])

    @async_test
    async def test_client_stops_reading(self):
        """
        A client that reads nothing: the producer waits (nothing buffered in
        Python), others are served meanwhile, and its hang-up frees the file.
        """
        self._file("big", 32 * MIB)
        small = self._file("small", 100 * 1024)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)  # before the handshake
        s.connect(("127.0.0.1", self.portnumber))
        s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            head, body = await self._fetch("/small")
            self.assertEqual(body, small)
            await _sleep(0.5)
            stalled = self.producers[0]
            self.assertLess(stalled.written, 16 * MIB)
            self.assertEqual(_sendfile._pending(stalled._transport), 0)
            self.assertFalse(stalled.deferred.called)
        finally:
            s.close()
        for _ in range(200):
            if len(self.results) == 2:
                break
            await _sleep(0.05)
        self.assertEqual(self.results[0], len(small))
        self.assertIsInstance(self.results[1], Failure)
        self.assertTrue(self.results[1].check(ConnectionDone))
        self.assertIsNone(stalled._fd)

    @async_test
    async def test_file_replaced_and_deleted_during_download(self):
        """The descriptor opened first keeps serving the old content, whole."""
        old = self._file("blob", 16 * MIB)
        path = os.path.join(self.root, "blob")

        def replace(received):
            new = os.urandom(len(old))
            with open(path + ".new", "wb") as handle:
                handle.write(new)
            os.replace(path + ".new", path)
            os.unlink(path)

        head, body = await self._fetch("/blob", rcvbuf=16384, read_size=4096, stop_after=MIB,
                                       on_partial=replace)
        self.assertFalse(os.path.exists(path))
        self.assertEqual(hashlib.sha256(body).digest(), hashlib.sha256(old).digest())

    @async_test
    async def test_file_not_in_page_cache(self):
        """Windows missing from the page cache are read in a thread, then sent."""
        data = self._file("cold", 12 * MIB)
        warmed = []
        real = _sendfile._read_into_cache

        def spy(fd, offset, length):
            warmed.append(threading.current_thread() is threading.main_thread())
            return real(fd, offset, length)

        self.patch(_sendfile, "_read_into_cache", spy)
        fd = os.open(os.path.join(self.root, "cold"), os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            if _sendfile.resident(fd, 0, len(data)):
                raise unittest.SkipTest("the kernel kept the file cached")
        finally:
            os.close(fd)
        # Served meanwhile: the reactor is free while the disk is read.
        other = self._file("other", 1024)
        first = self._fetch("/cold")
        second = await self._fetch("/other")
        head, body = await first
        self.assertEqual(second[1], other)
        self.assertEqual(hashlib.sha256(body).digest(), hashlib.sha256(data).digest())
        self.assertTrue(warmed)
        self.assertFalse(any(warmed))

    @async_test
    async def test_missing_file_before_headers(self):
        """The file is opened before anything is sent: a vanished file is an error, no headers out."""
        request = DummyRequest([b"gone"])
        with self.assertRaises(PathNotFound):
            await self.driver.read("/gone", request)
        self.assertEqual(request.written, [])

    def test_other_transports_stream(self):
        """A consumer without a plain TCP socket (in-memory, TLS) is not sent with sendfile."""
        request = DummyRequest([b"blob"])
        request.setHeader(b"content-length", b"10")
        self.assertIsNone(_sendfile.sendfile_transport(request))


async def _sleep(seconds):
    d = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    await d
