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
from spectroreg.web.site import RegistrySite
from tests.support.asynctest import async_test
from tests.test_web_drain import wait_connections_closed

MIB = 1024 * 1024


class _Serve(resource.Resource):
    """GET /<name>?o=<offset>&n=<length>: driver.read into the request."""

    isLeaf = True

    def __init__(self, driver, results):
        super().__init__()
        self._driver = driver
        self._results = results

    def render_GET(self, request):
        if request.postpath[0] == b"memory":
            # A body written through the transport (as every non-blob answer).
            size = int(request.args[b"n"][0])
            request.setHeader(b"content-length", str(size).encode())
            request.write(b"m" * size)
            return b""
        path = "/" + request.postpath[0].decode()
        offset = int(request.args.get(b"o", [b"0"])[0])
        length = int(request.args.get(b"n", [b"-1"])[0])
        size = os.path.getsize(self._driver.rootdirectory + path)
        length = size - offset if length < 0 else length
        request.setHeader(b"content-length", str(length).encode())
        if b"h" in request.args:
            # Headers larger than the socket's buffers: they leave the
            # transport over several writes.
            request.setHeader(b"x-padding", b"p" * int(request.args[b"h"][0]))
        d = self._driver.read(path, request, offset, length)

        def done(result):
            # As the blob GET handler: a failed read is not finished.
            self._results.append(result)
            if not isinstance(result, Failure):
                request.finish()

        d.addBoth(done)
        return server.NOT_DONE_YET

    # As twisted.web.static: a HEAD answer is the GET's, without its body.
    render_HEAD = render_GET


def _read_response(stream):
    """One HTTP/1.1 response from a file-like C{stream}: (status line, headers dict, body)."""
    status = stream.readline()
    headers = {}
    while True:
        line = stream.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


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


class _SendfileCase(unittest.TestCase):
    """A RegistrySite serving a FilesystemDriver's files on a real port."""

    def setUp(self):
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(self.root)
        self.driver = FilesystemDriver(self.root, reactor=reactor)
        self.addCleanup(self.driver.close)
        self.results = []
        self.producers = []
        producers = self.producers
        original_start = _sendfile.SendfileProducer.start

        self.eager = False

        def start(producer):
            producers.append(producer)
            d = original_start(producer)
            if self.eager:
                # The reactor may find the socket writable for the producer
                # before the transport has written the headers.
                producer.doWrite()
            return d

        self.patch(_sendfile.SendfileProducer, "start", start)
        self.calls = []
        real = os.sendfile

        def counting(out, fd, offset, count):
            sent = real(out, fd, offset, count)
            self.calls.append((threading.current_thread() is threading.main_thread(), sent))
            return sent

        self.patch(_sendfile.os, "sendfile", counting)
        site = RegistrySite(_Serve(self.driver, self.results), access_log=False, reactor=reactor)
        self.port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.addCleanup(lambda: defer.ensureDeferred(wait_connections_closed(site)))
        self.portnumber = self.port.getHost().port

    def _file(self, name, size):
        data = os.urandom(size)
        with open(os.path.join(self.root, name), "wb") as handle:
            handle.write(data)
        return data

    def _fetch(self, path, **kwargs):
        return threads.deferToThread(_get, self.portnumber, path, **kwargs)


class SendfileTests(_SendfileCase):

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
            # The two requests may have reached the server in either order.
            [stalled] = [p for p in self.producers if not p.deferred.called]
            self.assertLess(stalled.written, 16 * MIB)
        finally:
            s.close()
        for _ in range(200):
            if len(self.results) == 2:
                break
            await _sleep(0.05)
        [failure] = [r for r in self.results if isinstance(r, Failure)]
        self.assertTrue(failure.check(ConnectionDone))
        self.assertIn(len(small), self.results)
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

    @async_test
    async def test_channel_that_cannot_tell_when_drained_streams(self):
        """
        A plain twisted.web channel (no IDrainingChannel) on TCP: nothing
        would say when the headers are out, so the body streams through the
        transport.
        """
        data = self._file("blob", 3 * MIB)
        port = reactor.listenTCP(0, server.Site(_Serve(self.driver, self.results)), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        head, body = await threads.deferToThread(_get, port.getHost().port, "/blob")
        self.assertEqual(hashlib.sha256(body).digest(), hashlib.sha256(data).digest())
        self.assertEqual(self.producers, [])
        self.assertEqual(self.results, [len(data)])

    def test_other_transports_stream(self):
        """A consumer without a plain TCP socket (in-memory, TLS) is not sent with sendfile."""
        request = DummyRequest([b"blob"])
        request.setHeader(b"content-length", b"10")
        self.assertIsNone(_sendfile.sendfile_transport(request))


class SendfileFramingTests(_SendfileCase):
    """Response bytes stay in order on a keep-alive connection."""

    def _pipelined(self, requests, before_reading=None, rcvbuf=None):
        """
        Send C{requests} (method, path) at once on one connection, wait
        C{before_reading} seconds, then read every response: a list of
        (status line, headers, body).
        """
        import time

        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before the handshake
        s.settimeout(60)
        s.connect(("127.0.0.1", self.portnumber))
        try:
            s.sendall(b"".join(
                "{} {} HTTP/1.1\r\nHost: x\r\n\r\n".format(method, path).encode()
                for method, path in requests))
            if before_reading:
                time.sleep(before_reading)
            stream = s.makefile("rb")
            responses = []
            for method, _ in requests:
                status, headers = _read_response(stream)
                length = int(headers.get(b"content-length", b"0"))
                body = b"" if method == "HEAD" else stream.read(length)
                responses.append((status, headers, body))
            s.settimeout(0.5)
            try:
                extra = s.recv(65536)
            except socket.timeout:
                extra = b""
            responses.append(extra)
            return responses
        finally:
            s.close()

    @async_test
    async def test_headers_before_body(self):
        """
        The body starts only after the last byte of the headers left the
        transport, even when the socket is writable for the producer first:
        small headers (sent in one go) and headers larger than the socket's
        buffers (several sends, the client slow to read).
        """
        data = self._file("blob", 2 * MIB)
        self.eager = True
        self.port.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
        responses = await threads.deferToThread(
            self._pipelined, [("GET", "/blob?h={}".format(512 * 1024)), ("GET", "/blob?o=7&n=99&h=300000"),
                              ("GET", "/blob"), ("GET", "/blob?o=3&n=5")],
            before_reading=0.5, rcvbuf=4096)
        (s1, h1, b1), (s2, h2, b2), (s3, _, b3), (s4, _, b4), extra = responses
        self.assertEqual((s1[:12], s2[:12], s3[:12], s4[:12]), (b"HTTP/1.1 200",) * 4)
        self.assertEqual(h1[b"x-padding"], b"p" * (512 * 1024))
        self.assertEqual(hashlib.sha256(b1).digest(), hashlib.sha256(data).digest())
        self.assertEqual(h2[b"x-padding"], b"p" * 300000)
        self.assertEqual(b2, data[7:106])
        self.assertEqual(hashlib.sha256(b3).digest(), hashlib.sha256(data).digest())
        self.assertEqual(b4, data[3:8])
        self.assertEqual(extra, b"")
        self.assertEqual(len(self.producers), 4)

    @async_test
    async def test_headers_before_body_behind_a_full_buffer(self):
        """
        A blob answer that follows a large answer still in the transport's
        buffer (the client is not reading yet): its headers and body come
        after all of it, in order.
        """
        data = self._file("blob", 2 * MIB)
        self.port.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        responses = await threads.deferToThread(
            self._pipelined, [("GET", "/memory?n={}".format(4 * MIB)), ("GET", "/blob"),
                              ("GET", "/blob?o=10&n=1000")], before_reading=1.0, rcvbuf=4096)
        (s1, _, b1), (s2, h2, b2), (s3, _, b3), extra = responses
        self.assertEqual((s1[:12], s2[:12], s3[:12]), (b"HTTP/1.1 200",) * 3)
        self.assertEqual(b1, b"m" * (4 * MIB))
        self.assertEqual(hashlib.sha256(b2).digest(), hashlib.sha256(data).digest())
        self.assertEqual(b3, data[10:1010])
        self.assertEqual(extra, b"")
        self.assertEqual(len(self.producers), 2)

    @async_test
    async def test_head_sends_no_body(self):
        """HEAD: the headers of the GET, no body on the wire, the connection goes on."""
        data = self._file("blob", 300 * 1024)
        responses = await threads.deferToThread(
            self._pipelined, [("HEAD", "/blob"), ("GET", "/blob?o=5&n=20")])
        (s1, h1, _), (s2, _, b2), extra = responses
        self.assertEqual(h1[b"content-length"], str(len(data)).encode())
        self.assertEqual(s2[:12], b"HTTP/1.1 200")
        self.assertEqual(b2, data[5:25])
        self.assertEqual(extra, b"")

    @async_test
    async def test_zero_length(self):
        """An empty file: headers only, the response complete, the connection goes on."""
        self._file("empty", 0)
        data = self._file("blob", 1000)
        responses = await threads.deferToThread(
            self._pipelined, [("GET", "/empty"), ("GET", "/blob")])
        (s1, h1, b1), (s2, _, b2), extra = responses
        self.assertEqual((s1[:12], h1[b"content-length"], b1), (b"HTTP/1.1 200", b"0", b""))
        self.assertEqual(b2, data)
        self.assertEqual(extra, b"")
        self.assertEqual(self.results, [0, 1000])


async def _sleep(seconds):
    d = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    await d
