"""
Let's Encrypt against a real ACME CA: Debian's pebble.

The registry side is the ACME package's issuing service behind the daemon's
TLS layer (``spectroreg.tls.server``) listening on 127.0.0.1 (SNI picks the
certificate, ALPN ``acme-tls/1`` gets the TLS-ALPN-01 challenge) and a real
plain HTTP listener for HTTP-01; clients are Python's ``ssl`` trusting only
pebble's root. tests/test_acme_daemon.py runs the whole daemon.
"""

import os
import socket
import ssl
import time

from twisted.internet import defer, reactor, task, threads
from twisted.trial import unittest
from twisted.web import resource, server

from spectroreg.config.settings import LetsEncryptSettings, TLSSettings
from spectroreg.tls.acme import make_acme_source
from spectroreg.tls.acme.client import AgentTransport
from spectroreg.web.root import http01_root
from spectroreg.tls.server import ServerTLS
from tests.support.asynctest import async_test
from tests.support.pebble import ChallTestSrv, Pebble, validation_ports

SECOND = "second.spectroreg.test"
# The second name resolves here, where only the HTTP-01 listener listens:
# its TLS-ALPN-01 validation fails (like a host whose port 443 is not
# forwarded) and the service goes on with HTTP-01.
SECOND_ADDRESS = "127.0.0.2"


class _Registry(resource.Resource):
    """Stands in for the registry's API root: ``/`` and ``/v2/``."""

    isLeaf = True

    def render_GET(self, request):
        if request.path in (b"/v2/", b"/v2"):
            request.setHeader(b"docker-distribution-api-version", b"registry/2.0")
            request.setHeader(b"content-type", b"application/json")
            return b"{}"
        return b"ok\n"


def https_get(port, server_name, root_pem, path="/v2/"):
    """
    GET over TLS to 127.0.0.1:C{port} with SNI C{server_name}, verifying the
    certificate against C{root_pem} only (None: no verification).
    @return: (status line, body, leaf certificate DER)
    """
    if root_pem is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cadata=root_pem.decode("ascii"))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=server_name) as tls:
            tls.sendall(
                "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n".format(path, server_name).encode()
            )
            data = b""
            while True:
                chunk = tls.recv(65536)
                if not chunk:
                    break
                data += chunk
            return data.split(b"\r\n", 1)[0], data.split(b"\r\n\r\n", 1)[-1], tls.getpeercert(True)


def serial_of(der):
    from cryptography import x509

    return x509.load_der_x509_certificate(der).serial_number


class PebbleWorld(unittest.TestCase):
    """pebble, challtestsrv and the registry's listeners, started per test."""

    timeout = 120

    async def start_world(self, validity=None, start_pebble=True, nonce_reject=0):
        """pebble (+ challtestsrv), the TLS listener and the HTTP-01 listeners."""
        self.http_port, self.tls_port = validation_ports()
        self.dns = ChallTestSrv(self, reactor)
        await self.dns.start()
        await self.dns.add_a(SECOND, SECOND_ADDRESS)
        self.pebble = Pebble(
            self,
            reactor,
            self.http_port,
            self.tls_port,
            validity=validity,
            dns_server=self.dns.dns_server,
            nonce_reject=nonce_reject,
        )
        if start_pebble:
            await self.pebble.start()
        self.cachefile = os.path.abspath(self.mktemp())

    def settings(self, hosts=("localhost", SECOND), **changes):
        values = dict(
            cachefile=self.cachefile,
            hosts=tuple(hosts),
            email="admin@example.com",
            directoryurl=self.pebble.directory_url,
        )
        values.update(changes)
        return LetsEncryptSettings(**values)

    async def start_registry(self, settings, trust_api_ca=True, **options):
        """
        make_acme_source + listeners, as the daemon assembles them; the ACME
        client trusts pebble's API certificate when C{trust_api_ca}, else
        only what the system store (SSL_CERT_FILE) trusts.
        """
        if trust_api_ca:
            options.setdefault("transport", AgentTransport(reactor, ca_file=self.pebble.api_ca_file))
        setup = make_acme_source(settings, TLSSettings(letsencrypt=settings), reactor, **options)
        site = server.Site(_Registry())
        # The daemon's own TLS layer: its connection creator asks the source
        # on SNI and answers ALPN acme-tls/1 with the pending challenge.
        tls = ServerTLS(setup.source, setup.services, setup.http01_resource)
        ports = [reactor.listenTCP(self.tls_port, tls.wrap_factory(site), interface="127.0.0.1")]
        if setup.http01_resource is not None:
            http_site = server.Site(http01_root(setup.http01_resource, https_port=self.tls_port))
            for interface in ("127.0.0.1", SECOND_ADDRESS):
                ports.append(reactor.listenTCP(self.http_port, http_site, interface=interface))
        for service in setup.services:
            service.startService()
        self.addCleanup(lambda: defer.ensureDeferred(self.stop_registry(setup, ports)))
        return setup, ports

    async def stop_registry(self, setup, ports):
        for service in setup.services:
            if service.running:
                await defer.maybeDeferred(service.stopService)
        while ports:
            await defer.maybeDeferred(ports.pop().stopListening)

    async def wait_valid(self, setup, seconds=60):
        d = setup.issuer.when_certs_valid()
        d.addTimeout(seconds, reactor)
        await d


class PebbleTests(PebbleWorld):

    @async_test
    async def test_two_hosts_both_challenges_and_a_verified_client(self):
        """
        Certificates for two names, ``localhost`` by TLS-ALPN-01 and the
        second by HTTP-01; a client trusting only pebble's root gets /v2/.
        """
        await self.start_world()
        started = time.monotonic()
        setup, _ = await self.start_registry(self.settings())
        await self.wait_valid(setup)
        elapsed = time.monotonic() - started
        root = await self.pebble.root_pem()

        used = dict(setup.issuer.issued)
        self.assertEqual(used, {"localhost": "tls-alpn-01", SECOND: "http-01"})
        for name in ("localhost", SECOND):
            status, body, _ = await threads.deferToThread(https_get, self.tls_port, name, root)
            self.assertEqual(status, b"HTTP/1.1 200 OK")
            self.assertEqual(body, b"{}")
        # A name not in hosts gets no certificate of its own: a verifying
        # client fails the handshake.
        with self.assertRaises(ssl.SSLError):
            await threads.deferToThread(https_get, self.tls_port, "other.test", root)
        self.assertIsNone(setup.source.context_for("other.test"))
        # The cache holds what Go autocert would: account key + one file per host.
        self.assertEqual(
            sorted(os.listdir(self.cachefile)), sorted(["acme_account+key", "localhost", SECOND])
        )
        self.assertEqual(self.pebble.orders(), 3)
        print("\ntwo certificates from pebble in {:.2f} s".format(elapsed))

    @async_test
    async def test_restart_reuses_cached_certificates(self):
        """A restart with valid cached certificates sends pebble no new order."""
        await self.start_world()
        settings = self.settings(hosts=("localhost",))
        first = await self.start_registry(settings)
        setup = first[0]
        await self.wait_valid(setup)
        root = await self.pebble.root_pem()
        _, _, der_before = await threads.deferToThread(https_get, self.tls_port, "localhost", root)
        orders = self.pebble.orders()
        self.assertEqual(orders, 1)
        await self.stop_registry(*first)

        second, _ = await self.start_registry(settings)
        await self.wait_valid(second, seconds=10)
        # give a stray issuance the chance to show up
        await task.deferLater(reactor, 1.0, lambda: None)
        _, _, der_after = await threads.deferToThread(https_get, self.tls_port, "localhost", root)
        self.assertEqual(serial_of(der_after), serial_of(der_before))
        self.assertEqual(self.pebble.orders(), orders)
        self.assertEqual(second.issuer.issued, [])

    @async_test
    async def test_ca_down_at_start(self):
        """
        pebble is down when the registry starts: the fallback certificate is
        served, issuance is retried, and the certificate arrives once pebble
        is up.
        """
        await self.start_world(start_pebble=False)
        setup, _ = await self.start_registry(self.settings(hosts=("localhost",)), retry_initial=0.5)
        await task.deferLater(reactor, 1.5, lambda: None)
        status, body, der = await threads.deferToThread(https_get, self.tls_port, "localhost", None)
        self.assertEqual(status, b"HTTP/1.1 200 OK")
        self.assertTrue(setup.source.bundle_for("localhost").fallback)
        self.assertFalse(setup.issuer.certs_valid())
        await self.pebble.start()
        await self.wait_valid(setup, seconds=30)
        root = await self.pebble.root_pem()
        status, body, der2 = await threads.deferToThread(https_get, self.tls_port, "localhost", root)
        self.assertEqual(status, b"HTTP/1.1 200 OK")
        self.assertNotEqual(serial_of(der), serial_of(der2))


class PebbleRestartTests(PebbleWorld):
    @async_test
    async def test_renewal_after_ca_restart(self):
        """
        The CA restarts between issuance and renewal (pebble forgets accounts,
        nonces and its root) and rejects a third of the good nonces: the
        renewal still succeeds.
        """
        await self.start_world(validity=15, nonce_reject=30)
        setup, _ = await self.start_registry(
            self.settings(hosts=("localhost",)), retry_initial=0.5, retry_max=2.0
        )
        await self.wait_valid(setup)
        await self.pebble.restart()
        root = await self.pebble.root_pem()
        deadline = time.monotonic() + 40
        while len(setup.issuer.issued) < 2 and time.monotonic() < deadline:
            await task.deferLater(reactor, 0.5, lambda: None)
        self.assertGreaterEqual(len(setup.issuer.issued), 2)
        self.assertGreater(setup.issuer.client.bad_nonces, 0)
        status, body, _ = await threads.deferToThread(https_get, self.tls_port, "localhost", root)
        self.assertEqual(status, b"HTTP/1.1 200 OK")


class PrivateCATrustTests(PebbleWorld):
    """Trusting a private ACME CA's API certificate without a setting: SSL_CERT_FILE."""

    def setUp(self):
        previous = os.environ.get("SSL_CERT_FILE")

        def restore():
            if previous is None:
                os.environ.pop("SSL_CERT_FILE", None)
            else:
                os.environ["SSL_CERT_FILE"] = previous

        self.addCleanup(restore)
        os.environ.pop("SSL_CERT_FILE", None)

    @async_test
    async def test_ssl_cert_file(self):
        await self.start_world()
        settings = self.settings(hosts=("localhost",))
        setup, _ = await self.start_registry(settings, trust_api_ca=False, retry_initial=0.5, retry_max=1.0)
        await task.deferLater(reactor, 1.5, lambda: None)
        # pebble's API certificate is not trusted yet: nothing is issued
        self.assertFalse(setup.issuer.certs_valid())
        self.assertEqual(self.pebble.orders(), 0)
        os.environ["SSL_CERT_FILE"] = self.pebble.api_ca_file
        await self.wait_valid(setup, seconds=30)
