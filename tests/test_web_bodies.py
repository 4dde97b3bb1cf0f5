"""
The channel's control of request bodies, in memory (a real RegistrySite
over a StringTransport): reading paused for a request until it wants its
body, whatever Twisted's own back-pressure does; the pause ends with the
request; an unwanted body is dropped within the bound or cut.
"""

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial import unittest
from twisted.web import resource, server
from zope.interface.verify import verifyObject

from spectroreg.web.limits import Limits
from spectroreg.web.interfaces import IRequestBodyControl
from spectroreg.web.site import RegistrySite, SiteRequest


class Answer(resource.Resource):
    """Answers every request at once with 204, body or not."""

    isLeaf = True

    def render(self, request):
        request.setResponseCode(204)
        return b""


class Requests:
    """A request factory that keeps each request and can act at gotLength."""

    def __init__(self, on_length=None):
        self.made = []
        self.on_length = on_length

    def __call__(self, *args, **kwargs):
        outer = self

        class Request(SiteRequest):
            def gotLength(self, length):
                SiteRequest.gotLength(self, length)
                if outer.on_length is not None:
                    outer.on_length(self)

        request = Request(*args, **kwargs)
        self.made.append(request)
        return request


class ChannelBodyTests(unittest.TestCase):
    def connect(self, requests, limits=Limits(max_discard=100)):
        self.clock = Clock()
        site = RegistrySite(Answer(), request_factory=requests, access_log=False, limits=limits, reactor=self.clock)
        channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1234))
        channel.callLater = self.clock.callLater
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 1234))
        channel.makeConnection(transport)
        return channel, transport

    def test_interface(self):
        channel, _ = self.connect(Requests())
        verifyObject(IRequestBodyControl, channel)

    def test_pause_outlives_write_back_pressure(self):
        channel, transport = self.connect(Requests(on_length=lambda request: request.channel.pause_reading()))
        channel.dataReceived(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n")
        self.assertEqual(transport.producerState, "paused")
        # The transport's send buffer drained: reading stays paused for the request.
        channel.pauseProducing()
        channel.resumeProducing()
        self.assertEqual(transport.producerState, "paused")
        channel.resume_reading()
        self.assertEqual(transport.producerState, "producing")

    def test_pause_ends_with_the_request(self):
        # The request is answered while its pause is on (an answer decided
        # before the body was wanted): the next request must still be read.
        channel, transport = self.connect(Requests(on_length=lambda request: request.channel.pause_reading()))
        channel.dataReceived(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 204 No Content\r\n"))
        self.assertEqual(transport.producerState, "producing")
        transport.clear()
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 204 "))

    def test_pause_kept_while_answers_are_not_read(self):
        # The request wants its body again while the client does not read our
        # answers (the transport paused us): reading waits for the client.
        channel, transport = self.connect(Requests(on_length=lambda request: request.channel.pause_reading()))
        channel.dataReceived(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n")
        channel.pauseProducing()
        channel.resume_reading()
        self.assertEqual(transport.producerState, "paused")
        channel.resumeProducing()
        self.assertEqual(transport.producerState, "producing")

    def test_discard_after_the_body_changes_nothing(self):
        pending = []

        class Pending(resource.Resource):
            isLeaf = True

            def render(self, request):
                pending.append(request)
                return server.NOT_DONE_YET

        self.clock = Clock()
        site = RegistrySite(Pending(), request_factory=Requests(on_length=lambda r: r.channel.pause_reading()),
                            access_log=False, limits=Limits(max_discard=100), reactor=self.clock)
        channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1234))
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 1234))
        channel.makeConnection(transport)
        channel.dataReceived(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        self.assertEqual(len(pending), 1)
        channel.discard_body(pending[0])
        self.assertEqual(transport.producerState, "paused")
        pending[0].finish()
        self.assertEqual(transport.producerState, "producing")
        self.assertNotIn(b"Connection: close", transport.value())

    def test_discard_within_the_bound(self):
        def refuse(request):
            request.channel.pause_reading()
            request.channel.discard_body(request)

        channel, transport = self.connect(Requests(on_length=refuse))
        channel.dataReceived(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 90\r\n\r\n" + b"a" * 50)
        self.assertEqual(transport.value(), b"")  # answered once the body is in
        channel.dataReceived(b"a" * 40 + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answers = transport.value()
        self.assertEqual(answers.count(b"HTTP/1.1 204 "), 2, answers)
        self.assertNotIn(b"Connection: close", answers)
        self.assertFalse(transport.disconnecting)

    def test_cut_beyond_the_bound(self):
        channel, transport = self.connect(Requests(on_length=lambda request: request.channel.discard_body(request)))
        channel.dataReceived(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n" + b"a" * 10)
        answer = transport.value()
        self.assertTrue(answer.startswith(b"HTTP/1.1 204 "), answer)
        self.assertIn(b"\r\nConnection: close\r\n", answer)
        # What the client still sends is dropped, never parsed as a request.
        transport.clear()
        channel.dataReceived(b"a" * 91 + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(transport.value(), b"")
        # StringTransport has no half-close: closed after the linger time.
        self.assertFalse(transport.disconnecting)
        self.clock.advance(Limits().linger_timeout)
        self.assertTrue(transport.disconnecting)

    def test_chunked_cut_after_the_bound(self):
        channel, transport = self.connect(Requests(on_length=lambda request: request.channel.discard_body(request)))
        channel.dataReceived(b"PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        channel.dataReceived(b"32\r\n" + b"a" * 50 + b"\r\n")
        self.assertEqual(transport.value(), b"")
        channel.dataReceived(b"32\r\n" + b"a" * 50 + b"\r\n")
        self.assertIn(b"\r\nConnection: close\r\n", transport.value())


class ReadSizerTests(unittest.TestCase):
    """A blob body's reads grow while they come back full, shrink when not, and end at Twisted's size."""

    def sizer(self, wrapped=False):
        from twisted.internet import abstract

        from spectroreg.web.bodies import ReadSizer

        class Wrapper:
            def __init__(self, transport):
                self.transport = transport

        connection = abstract.FileDescriptor()
        return connection, ReadSizer(Wrapper(connection) if wrapped else connection)

    def test_grows_while_full_then_shrinks_and_resets(self):
        from spectroreg.web.bodies import DEFAULT_READ, LARGE_READ

        connection, sizer = self.sizer()
        self.assertEqual(connection.bufferSize, DEFAULT_READ)
        seen = []
        for _ in range(5):
            sizer.received(connection.bufferSize)
            seen.append(connection.bufferSize)
        self.assertEqual(seen, [128 * 1024, 256 * 1024, LARGE_READ, LARGE_READ, LARGE_READ])
        sizer.received(LARGE_READ // 2)  # half full: stays
        self.assertEqual(connection.bufferSize, LARGE_READ)
        sizer.received(1000)  # a trickle: halves, down to Twisted's size and no further
        sizer.received(1000)
        sizer.received(1000)
        sizer.received(1000)
        self.assertEqual(connection.bufferSize, DEFAULT_READ)
        sizer.received(DEFAULT_READ)
        self.assertEqual(connection.bufferSize, 128 * 1024)
        sizer.done()
        self.assertEqual(connection.bufferSize, DEFAULT_READ)
        sizer.received(DEFAULT_READ)  # after the body: nothing changes
        self.assertEqual(connection.bufferSize, DEFAULT_READ)

    def test_under_tls_layer(self):
        connection, sizer = self.sizer(wrapped=True)
        sizer.received(connection.bufferSize)
        self.assertEqual(connection.bufferSize, 128 * 1024)

    def test_not_a_socket(self):
        from spectroreg.web.bodies import ReadSizer

        transport = StringTransport()
        sizer = ReadSizer(transport)
        sizer.received(10 ** 6)
        sizer.done()
        self.assertFalse(hasattr(transport, "bufferSize"))
        ReadSizer(None).received(5)
