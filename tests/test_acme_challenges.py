"""TLS-ALPN-01 and HTTP-01 responders, over a real TLS listener and a real Site in memory."""

import hashlib
import socket
import ssl

from cryptography import x509
from treq.testing import StubTreq
from twisted.internet import reactor, threads
from twisted.trial import unittest
from twisted.web import resource, server

from spectroreg.tls.acme import certs
from spectroreg.tls.acme.challenges import HTTP01Resource, HTTP01Responder
from spectroreg.web.root import http01_root
from spectroreg.tls.acme.source import ACMECertificateSource
from spectroreg.tls.acme.testing import listen_tls
from tests.support.asynctest import async_test

HOST = "registry.example.com"
KEY_AUTHZ = "token-abcdefghijklmnop.thumbprint-xyz"


class ChallengeCertificateTests(unittest.SynchronousTestCase):
    def test_rfc8737_certificate(self):
        """SAN exactly the name; critical acmeIdentifier = OCTET STRING(sha256(keyAuthorization))."""
        key, cert = certs.tls_alpn_challenge(HOST, KEY_AUTHZ)
        self.assertEqual(certs.dns_names(cert), [HOST])
        ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31"))
        self.assertTrue(ext.critical)
        self.assertEqual(ext.value.value, b"\x04\x20" + hashlib.sha256(KEY_AUTHZ.encode()).digest())
        self.assertEqual(cert.public_key().public_numbers(), key.public_key().public_numbers())


class HTTP01Tests(unittest.TestCase):
    def setUp(self):
        self.responder = HTTP01Responder()
        self.http01 = HTTP01Resource(self.responder)

    @async_test
    async def test_mounted_resource(self):
        root = resource.Resource()
        well_known = resource.Resource()
        root.putChild(b".well-known", well_known)
        well_known.putChild(b"acme-challenge", self.http01)
        client = StubTreq(root)
        self.responder.start(HOST, "tok123", KEY_AUTHZ)
        response = await client.get("http://{}/.well-known/acme-challenge/tok123".format(HOST))
        self.assertEqual(response.code, 200)
        self.assertEqual(await response.text(), KEY_AUTHZ)
        self.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"text/plain"])
        for path in ("tok999", "tok123/extra", ""):
            response = await client.get("http://{}/.well-known/acme-challenge/{}".format(HOST, path))
            self.assertEqual(response.code, 404, path)
        self.responder.stop(HOST, "tok123")
        response = await client.get("http://{}/.well-known/acme-challenge/tok123".format(HOST))
        self.assertEqual(response.code, 404)

    @async_test
    async def test_challenge_root_redirects_the_rest(self):
        client = StubTreq(http01_root(self.http01))
        self.responder.start(HOST, "tok123", KEY_AUTHZ)
        response = await client.get("http://{}/.well-known/acme-challenge/tok123".format(HOST))
        self.assertEqual(await response.text(), KEY_AUTHZ)
        for path, target in [
            ("/v2/", "https://{}/v2/".format(HOST)),
            ("/", "https://{}/".format(HOST)),
            ("/.well-known/other?x=1", "https://{}/.well-known/other?x=1".format(HOST)),
        ]:
            response = await client.get("http://{}{}".format(HOST, path), allow_redirects=False)
            self.assertEqual(response.code, 301, path)
            self.assertEqual(response.headers.getRawHeaders(b"location"), [target.encode()])
        client = StubTreq(http01_root(self.http01, https_port=5000))
        response = await client.get("http://{}/v2/".format(HOST), allow_redirects=False)
        self.assertEqual(response.headers.getRawHeaders(b"location"), ["https://{}:5000/v2/".format(HOST).encode()])


class _Hello(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        return b"hello"


def handshake(port, server_name, alpn, version=None):
    """(negotiated ALPN, leaf DER) of a TLS handshake with 127.0.0.1:C{port}."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if version is not None:
        context.minimum_version = context.maximum_version = version
    context.set_alpn_protocols(alpn)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=server_name) as tls:
            return tls.selected_alpn_protocol(), tls.getpeercert(True)


class TLSALPN01ListenerTests(unittest.TestCase):
    """The ALPN callback of the source's contexts, through real handshakes (TLS 1.2 and 1.3)."""

    def listen(self, site):
        return listen_tls(reactor, 0, self.source, site)

    def setUp(self):
        self.source = ACMECertificateSource([HOST])
        self.port = self.listen(server.Site(_Hello()))
        self.addCleanup(self.port.stopListening)
        self.number = self.port.getHost().port

    def leaf_of(self, der):
        return x509.load_der_x509_certificate(der)

    @async_test
    async def test_challenge_only_for_acme_tls(self):
        self.source.tls_alpn_responder.start(HOST, "tok", KEY_AUTHZ)
        alpn, der = await threads.deferToThread(handshake, self.number, HOST, ["acme-tls/1"])
        self.assertEqual(alpn, "acme-tls/1")
        ext = self.leaf_of(der).extensions.get_extension_for_oid(certs.ACME_IDENTIFIER_OID)
        self.assertEqual(ext.value.value[2:], hashlib.sha256(KEY_AUTHZ.encode()).digest())
        # a normal client at the same moment gets the normal certificate
        alpn, der = await threads.deferToThread(handshake, self.number, HOST, ["h2", "http/1.1"])
        self.assertEqual(alpn, "http/1.1")
        self.assertEqual(self.leaf_of(der), self.source.bundle_for(HOST).leaf)
        self.assertTrue(self.source.bundle_for(HOST).fallback)

    @async_test
    async def test_challenge_over_tls12_and_tls13(self):
        """The certificate swap in the ALPN callback works under both versions."""
        self.source.tls_alpn_responder.start(HOST, "tok", KEY_AUTHZ)
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            alpn, der = await threads.deferToThread(handshake, self.number, HOST, ["acme-tls/1"], version)
            self.assertEqual(alpn, "acme-tls/1", version)
            self.assertEqual(certs.dns_names(self.leaf_of(der)), [HOST])
            self.leaf_of(der).extensions.get_extension_for_oid(certs.ACME_IDENTIFIER_OID)
            alpn, der = await threads.deferToThread(handshake, self.number, HOST, ["http/1.1"], version)
            self.assertEqual(self.leaf_of(der), self.source.bundle_for(HOST).leaf, version)

    @async_test
    async def test_no_pending_challenge(self):
        alpn, der = await threads.deferToThread(handshake, self.number, HOST, ["acme-tls/1"])
        self.assertIsNone(alpn)
        self.assertEqual(self.leaf_of(der), self.source.bundle_for(HOST).leaf)

    @async_test
    async def test_challenge_is_per_name(self):
        other = "other.example.com"
        self.source.tls_alpn_responder.start(HOST, "tok", KEY_AUTHZ)
        with self.assertRaises(ssl.SSLError):
            # a name not in hosts has no certificate at all
            await threads.deferToThread(handshake, self.number, other, ["acme-tls/1"])

    @async_test
    async def test_no_sni(self):
        """A client connecting by IP address (no SNI) gets the first host's certificate."""
        alpn, der = await threads.deferToThread(handshake, self.number, None, ["http/1.1"])
        self.assertEqual(alpn, "http/1.1")
        self.assertEqual(self.leaf_of(der), self.source.bundle_for(HOST).leaf)

    @async_test
    async def test_swap_without_closing(self):
        """A new certificate is used by the next handshake; the port stays the same."""
        _, before = await threads.deferToThread(handshake, self.number, HOST, ["http/1.1"])
        now = certs.utc_from_seconds(reactor.seconds())
        self.source.install(HOST, certs.fallback_bundle(HOST, now))
        _, after = await threads.deferToThread(handshake, self.number, HOST, ["http/1.1"])
        self.assertNotEqual(self.leaf_of(before), self.leaf_of(after))
        self.assertEqual(self.leaf_of(after), self.source.bundle_for(HOST).leaf)


class TLSALPN01DaemonListenerTests(TLSALPN01ListenerTests):
    """The same handshakes through the daemon's TLS layer (its own SNI and ALPN callbacks)."""

    def listen(self, site):
        from spectroreg.tls.server import ServerTLS

        return reactor.listenTCP(0, ServerTLS(self.source).wrap_factory(site), interface="127.0.0.1")



class RedirectHostTests(unittest.TestCase):
    """The plain-HTTP listener's redirect over a real socket: a Host no URL can carry is a 400."""

    @async_test
    async def test_malformed_host(self):
        from tests.support.rawhttp import exchange

        site = server.Site(http01_root(HTTP01Resource(HTTP01Responder()), https_port=5443))
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        number = port.getHost().port

        def get(host):
            data = b"GET /v2/x HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n"
            return exchange("127.0.0.1", number, data, timeout=10)

        for host in [b"\xff", b"caf\xc3\xa9", b"a b", b"a\x00b", b"a/b", b"a" * 2000]:
            status, headers, body, _ = await threads.deferToThread(get, host)
            self.assertEqual(status, 400, host[:40])
            self.assertNotIn("location", headers)
        for host, location in [(b"registry.example:80", b"https://registry.example:5443/v2/x"),
                               (b"[::1]:80", b"https://[::1]:5443/v2/x")]:
            status, headers, body, _ = await threads.deferToThread(get, host)
            self.assertEqual((status, headers.get("location")), (301, location), host)
