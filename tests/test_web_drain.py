"""
IDrainingChannel (spectroreg.web.drain): the registry's channel tells when
what it wrote has left the transport, over a real TCP connection.
"""

import socket
import time

from twisted.internet import defer, reactor, threads
from twisted.internet.testing import StringTransport
from twisted.trial import unittest
from twisted.web import resource, server
from zope.interface.verify import verifyObject

from spectroreg.web.drain import IDrainingChannel, NotDrainable
from spectroreg.web.channel import RegistryChannel
from spectroreg.web.site import RegistrySite
from tests.support.asynctest import async_test

BODY = 4 * 1024 * 1024


class _Drained(resource.Resource):
    """GET /: writes BODY bytes through write_drained; C{drained} fires after."""

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.drained = defer.Deferred()
        self.buffer_sizes = []

    def render_GET(self, request):
        transport = request.channel.transport
        self.buffer_sizes.append(transport.bufferSize)
        d = request.channel.write_drained(lambda: request.write(b"d" * BODY))
        self.buffer_sizes.append(transport.bufferSize)

        def out(result):
            request.finish()
            self.drained.callback(time.monotonic())

        d.addCallbacks(out, self.drained.errback)
        return server.NOT_DONE_YET


def _slow_read(port, wait):
    """
    Send a GET, read nothing for C{wait} seconds, then everything until the
    server closes: (when reading started, bytes).  Reading to the end, not to
    BODY bytes, so the client never closes on the response's last bytes.
    """
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(30)
    s.connect(("127.0.0.1", port))
    try:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        time.sleep(wait)
        started = time.monotonic()
        received = 0
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            received += len(chunk)
        return started, received
    finally:
        s.close()


class DrainTests(unittest.TestCase):
    @async_test
    async def test_fires_once_everything_left_the_transport(self):
        served = _Drained()
        site = RegistrySite(served, access_log=False, reactor=reactor)
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.addCleanup(lambda: defer.ensureDeferred(wait_connections_closed(site)))
        port.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
        started, received = await threads.deferToThread(_slow_read, port.getHost().port, 1.0)
        drained_at = await served.drained
        self.assertGreater(received, BODY)
        # Not before the client started reading what was stuck in the buffer.
        self.assertGreater(drained_at, started)
        # bufferSize is back to what it was.
        self.assertEqual(served.buffer_sizes[0], served.buffer_sizes[1])
        self.assertGreater(served.buffer_sizes[0], 0)

    def test_interface(self):
        channel = RegistryChannel()
        verifyObject(IDrainingChannel, channel)

    def test_transport_that_does_not_pause(self):
        """A transport that never pauses its producer cannot tell: NotDrainable, nothing written."""
        site = RegistrySite(resource.Resource(), access_log=False, reactor=reactor)
        channel = site.buildProtocol(None)
        transport = StringTransport()
        channel.makeConnection(transport)
        self.addCleanup(channel.connectionLost, None)
        written = []
        d = channel.write_drained(lambda: written.append(True))
        self.failureResultOf(d, NotDrainable)
        self.assertEqual(written, [])


async def wait_connections_closed(site, timeout=10.0):
    """Until every connection of C{site} (a RegistrySite) has closed: the reactor is clean after the test."""
    deadline = reactor.seconds() + timeout
    while site.channels and reactor.seconds() < deadline:
        d = defer.Deferred()
        reactor.callLater(0.02, d.callback, None)
        await d
