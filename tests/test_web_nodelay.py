"""
Every accepted TCP connection sends without Nagle's delay, plain and through
the TLS layer, and under the TLS layer hands a whole encrypted write to the
kernel at once: checked on the server's own socket of a real connection.
"""

import socket
import ssl

from twisted.internet import reactor
from twisted.trial import unittest
from twisted.web import resource

from spectroreg.config.settings import TLSSettings
from spectroreg.tls.protocol import SEND_LIMIT
from spectroreg.tls.server import make_server_tls
from spectroreg.web.channel import send_at_once
from spectroreg.web.site import RegistrySite
from tests.support.asynctest import async_test
from tests.test_tls_server import TLSServerMixin, in_thread


class Answer(resource.Resource):
    isLeaf = True

    def render(self, request):
        request.setHeader(b"content-length", b"2")
        return b"ok"


def ask(port, context=None):
    """Blocking: one keep-alive GET; returns the open socket and the answer's first line."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn = context.wrap_socket(raw, server_hostname="localhost") if context else raw
    conn.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    data = b""
    while not data.endswith(b"ok"):
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return conn, data.split(b"\r\n", 1)[0]


def no_delay(tcp):
    return tcp.getHandle().getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


class NoDelayTests(TLSServerMixin, unittest.TestCase):
    def site(self):
        return RegistrySite(Answer(), access_log=False)

    async def check(self, site, factory, context=None, tls=False):
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        conn, status = await in_thread(ask, port.getHost().port, context)
        self.addCleanup(conn.close)
        self.assertEqual(status, b"HTTP/1.1 200 OK")
        self.assertEqual(len(site.channels), 1)
        transport = next(iter(site.channels)).transport
        # Under the TLS layer, the TCP connection.
        tcp = transport.transport if tls else transport
        self.assertTrue(no_delay(tcp))
        return tcp

    @async_test
    async def test_plain(self):
        site = self.site()
        await self.check(site, site)

    @async_test
    async def test_tls(self):
        self.make_pki()
        server_tls = make_server_tls(TLSSettings(certificate=self.cert_path, key=self.key_path))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(self.root_path)
        site = self.site()
        tcp = await self.check(site, server_tls.wrap_factory(site), context, tls=True)
        # An encrypted 256 KiB write goes to the kernel in one send, not three.
        self.assertEqual(tcp.SEND_LIMIT, SEND_LIMIT)
        self.assertGreater(SEND_LIMIT, 256 * 1024 + 16 * 320)

    def test_other_transports_are_left_alone(self):
        class UnixLike:
            def setTcpNoDelay(self, enabled):
                raise OSError(95, "Operation not supported")

        send_at_once(UnixLike())
        send_at_once(object())
