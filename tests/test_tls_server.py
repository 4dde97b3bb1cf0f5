"""
The TLS listener against real clients: Python's ssl, pyOpenSSL and Debian's
``openssl s_client``, talking to a Site on 127.0.0.1 wrapped by ServerTLS.

The helpers here (L{PKI}, L{TLSServerMixin}, L{tls_request}) are also used
by the other security tests.
"""

import datetime
import os
import select
import socket
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL
from twisted.internet import reactor, threads, utils
from twisted.trial import unittest
from twisted.web.resource import Resource
from twisted.web.server import Site
from zope.interface import implementer
from zope.interface.verify import verifyObject

from spectroreg.config.errors import ConfigError
from spectroreg.config.settings import LetsEncryptSettings, TLSSettings
from spectroreg.tls.acme import make_acme_source
from spectroreg.tls.acme.store import MemoryStore
from spectroreg.tls.files import FileCertificateSource
from spectroreg.interfaces import IReloadable
from spectroreg.tls.interfaces import ICertificateSource, IServerTLS
from spectroreg.tls.server import ServerTLS, make_server_tls
from tests.support.asynctest import async_test
from tests.support.requirements import require_binary

_NOW = datetime.datetime.utcnow().replace(microsecond=0)


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem(certificate):
    return certificate.public_bytes(serialization.Encoding.PEM)


def _key_pem(key, password=None):
    encryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


class Issued:
    def __init__(self, key, certificate):
        self.key = key
        self.certificate = certificate


class PKI:
    """Throw-away CAs and certificates (EC P-256) written under C{directory}."""

    def __init__(self, directory):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)

    def ca(self, name, issuer=None):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(issuer.certificate.subject if issuer else _name(name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_NOW - datetime.timedelta(days=1))
            .not_valid_after(_NOW + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
        )
        signer = issuer.key if issuer else key
        return Issued(key, builder.sign(signer, hashes.SHA256()))

    def leaf(self, issuer, name="localhost", client=False):
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(issuer.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_NOW - datetime.timedelta(days=1))
            .not_valid_after(_NOW + datetime.timedelta(days=10))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if not client:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName(name), x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        return Issued(key, builder.sign(issuer.key, hashes.SHA256()))

    def write(self, filename, data):
        path = os.path.join(self.directory, filename)
        with open(path, "wb") as handle:
            handle.write(data)
        return path

    def write_pair(self, prefix, issued, chain=()):
        certificate = self.write(
            prefix + ".crt", _pem(issued.certificate) + b"".join(_pem(c.certificate) for c in chain)
        )
        key = self.write(prefix + ".key", _key_pem(issued.key))
        return certificate, key

    def write_ca(self, filename, *cas):
        return self.write(filename, b"".join(_pem(ca.certificate) for ca in cas))


class Hello(Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/plain")
        return b"hello over tls"


class TLSServerMixin:
    """Starts a Site wrapped by a ServerTLS on 127.0.0.1:0."""

    def start_tls_server(self, server_tls, resource=None):
        from twisted.internet import reactor

        site = Site(resource if resource is not None else Hello())
        port = reactor.listenTCP(0, server_tls.wrap_factory(site), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return port, port.getHost().port

    def make_pki(self):
        pki = PKI(self.mktemp())
        self.root = pki.ca("Test Root")
        self.intermediate = pki.ca("Test Intermediate", issuer=self.root)
        self.server = pki.leaf(self.intermediate, "localhost")
        self.root_path = pki.write_ca("root.pem", self.root)
        self.cert_path, self.key_path = pki.write_pair("server", self.server, chain=[self.intermediate])
        return pki


def client_context(cafile=None, minimum=None, maximum=None, cert=None, ciphers=None, alpn=None):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        context.load_verify_locations(cafile)
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if minimum is not None or maximum is not None:
        # Old protocol versions need OpenSSL's security level lowered on the
        # client too, or the client itself refuses them.
        context.set_ciphers(ciphers or "DEFAULT:@SECLEVEL=0")
    elif ciphers:
        context.set_ciphers(ciphers)
    if minimum is not None:
        context.minimum_version = minimum
    if maximum is not None:
        context.maximum_version = maximum
    if cert:
        context.load_cert_chain(*cert)
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


def tls_request(port, context, server_hostname="localhost", path="/"):
    """
    Blocking: one HTTPS GET; returns a dict with the response bytes, the
    negotiated version, cipher, ALPN protocol and peer certificate (DER).
    """
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=server_hostname) as tls:
            info = {
                "version": tls.version(),
                "cipher": tls.cipher()[0],
                "alpn": tls.selected_alpn_protocol(),
                "peer": tls.getpeercert(binary_form=True),
            }
            tls.sendall(
                "GET {} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".format(path).encode()
            )
            chunks = []
            while True:
                data = tls.recv(65536)
                if not data:
                    break
                chunks.append(data)
            info["response"] = b"".join(chunks)
            return info


def peer_chain(port, server_name=b"localhost", alpn=None):
    """Blocking: the certificates the server sends (pyOpenSSL client), as cryptography objects."""
    context = SSL.Context(SSL.TLS_METHOD)
    if alpn:
        context.set_alpn_protos(alpn)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        connection = SSL.Connection(context, raw)
        connection.set_tlsext_host_name(server_name)
        connection.set_connect_state()
        while True:
            try:
                connection.do_handshake()
                break
            except SSL.WantReadError:
                if not select.select([raw], [], [], 10)[0]:
                    raise TimeoutError("TLS handshake timed out")
        chain = [c.to_cryptography() for c in connection.get_peer_cert_chain()]
        protocol = connection.get_alpn_proto_negotiated()
        return chain, protocol


def in_thread(function, *args, **kwargs):
    return threads.deferToThread(function, *args, **kwargs)


class ServerTLSTests(TLSServerMixin, unittest.TestCase):
    def setUp(self):
        self.pki = self.make_pki()

    def settings(self, **kwargs):
        return TLSSettings(certificate=self.cert_path, key=self.key_path, **kwargs)

    def test_interfaces(self):
        from spectroreg.tls.protocol import TLSServerFactory

        server_tls = make_server_tls(self.settings())
        site = Site(Hello())
        wrapped = server_tls.wrap_factory(site)
        # Our TLS layer, which leaves ALPN to our connection creator.
        self.assertIsInstance(wrapped, TLSServerFactory)
        self.assertIs(wrapped.wrappedFactory, site)
        self.assertIsInstance(server_tls, ServerTLS)
        verifyObject(IServerTLS, server_tls)
        verifyObject(IReloadable, server_tls)
        verifyObject(ICertificateSource, server_tls.source)
        verifyObject(IReloadable, server_tls.source)
        self.assertEqual(server_tls.services, [])
        self.assertIsNone(server_tls.http01_resource)

    @async_test
    async def test_serves_whole_chain(self):
        """Trusting only the root works because the intermediate is sent too."""
        _, port = self.start_tls_server(make_server_tls(self.settings()))
        info = await in_thread(tls_request, port, client_context(cafile=self.root_path))
        self.assertTrue(info["response"].startswith(b"HTTP/1.1 200"), info["response"][:60])
        self.assertIn(b"hello over tls", info["response"])
        chain, _ = await in_thread(peer_chain, port)
        self.assertEqual(
            [c.subject for c in chain], [self.server.certificate.subject, self.intermediate.certificate.subject]
        )

    @async_test
    async def test_rsa_certificate(self):
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        leaf = self.pki.leaf(self.intermediate, "localhost")
        certificate = (
            x509.CertificateBuilder()
            .subject_name(leaf.certificate.subject)
            .issuer_name(leaf.certificate.issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(leaf.certificate.not_valid_before)
            .not_valid_after(leaf.certificate.not_valid_after)
            .add_extension(
                leaf.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value,
                critical=False,
            )
            .sign(self.intermediate.key, hashes.SHA256())
        )
        cert_path, key_path = self.pki.write_pair("rsa", Issued(key, certificate), chain=[self.intermediate])
        _, port = self.start_tls_server(make_server_tls(TLSSettings(certificate=cert_path, key=key_path)))
        info = await in_thread(
            tls_request, port, client_context(cafile=self.root_path, maximum=ssl.TLSVersion.TLSv1_2)
        )
        self.assertEqual(info["cipher"], "ECDHE-RSA-AES128-GCM-SHA256")
        self.assertTrue(info["response"].startswith(b"HTTP/1.1 200"))

    @async_test
    async def test_alpn_http11(self):
        _, port = self.start_tls_server(make_server_tls(self.settings()))
        info = await in_thread(tls_request, port, client_context(alpn=["h2", "http/1.1"]))
        self.assertEqual(info["alpn"], "http/1.1")
        self.assertTrue(info["response"].startswith(b"HTTP/1.1 200"))
        info = await in_thread(tls_request, port, client_context())
        self.assertIsNone(info["alpn"])

    @async_test
    async def test_minimum_tls12_refuses_tls11(self):
        _, port = self.start_tls_server(make_server_tls(self.settings(minimumtls="tls1.2")))
        old = client_context(minimum=ssl.TLSVersion.TLSv1, maximum=ssl.TLSVersion.TLSv1_1)
        with self.assertRaises(ssl.SSLError):
            await in_thread(tls_request, port, old)
        info = await in_thread(
            tls_request, port, client_context(maximum=ssl.TLSVersion.TLSv1_2)
        )
        self.assertEqual(info["version"], "TLSv1.2")

    @async_test
    async def test_minimum_tls10_really_accepts_tls11(self):
        """The refusal above is the server's: the same client gets in when allowed."""
        _, port = self.start_tls_server(make_server_tls(self.settings(minimumtls="tls1.0")))
        old = client_context(minimum=ssl.TLSVersion.TLSv1, maximum=ssl.TLSVersion.TLSv1_1)
        info = await in_thread(tls_request, port, old)
        self.assertEqual(info["version"], "TLSv1.1")
        self.assertTrue(info["response"].startswith(b"HTTP/1.1 200"))

    @async_test
    async def test_minimum_tls13_refuses_tls12(self):
        _, port = self.start_tls_server(make_server_tls(self.settings(minimumtls="tls1.3")))
        with self.assertRaises(ssl.SSLError):
            await in_thread(tls_request, port, client_context(maximum=ssl.TLSVersion.TLSv1_2))
        info = await in_thread(tls_request, port, client_context())
        self.assertEqual(info["version"], "TLSv1.3")

    @async_test
    async def test_openssl_s_client_tls11_refused(self):
        openssl = require_binary("openssl")
        _, port = self.start_tls_server(make_server_tls(self.settings(minimumtls="tls1.2")))

        async def s_client(*flags):
            out, err, code = await utils.getProcessOutputAndValue(
                openssl,
                ("s_client", "-connect", "127.0.0.1:{}".format(port), "-servername", "localhost",
                 "-cipher", "DEFAULT:@SECLEVEL=0") + flags,
                env={"PATH": os.environ.get("PATH", "")},
                stdinBytes=b"",
            )
            return out + err, code

        output, code = await s_client("-tls1_1")
        self.assertNotEqual(code, 0, output)
        output, code = await s_client("-tls1_2")
        self.assertEqual(code, 0, output)
        self.assertIn(b"Protocol  : TLSv1.2", output)

    @async_test
    async def test_cipher_suites_restrict(self):
        settings = self.settings(
            ciphersuites=("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384")
        )
        _, port = self.start_tls_server(make_server_tls(settings))
        info = await in_thread(tls_request, port, client_context(maximum=ssl.TLSVersion.TLSv1_2))
        self.assertEqual(info["cipher"], "ECDHE-ECDSA-AES256-GCM-SHA384")
        info = await in_thread(tls_request, port, client_context())
        self.assertEqual((info["version"], info["cipher"]), ("TLSv1.3", "TLS_AES_256_GCM_SHA384"))
        with self.assertRaises(ssl.SSLError):
            await in_thread(
                tls_request,
                port,
                client_context(maximum=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256"),
            )

    @async_test
    async def test_reload_swaps_certificate_without_closing_port(self):
        server_tls = make_server_tls(self.settings())
        listening, port = self.start_tls_server(server_tls)
        first, _ = await in_thread(peer_chain, port)
        # A failed reload (mismatched key) keeps the old certificate.
        other = self.pki.leaf(self.intermediate, "localhost")
        with open(self.key_path, "wb") as handle:
            handle.write(_key_pem(other.key))
        self.assertFalse(await server_tls.reload())
        kept, _ = await in_thread(peer_chain, port)
        self.assertEqual(kept[0], first[0])
        # A good one swaps it; the same listening port serves the new one.
        self.pki.write_pair("server", other, chain=[self.intermediate])
        self.assertTrue(await server_tls.reload())
        second, _ = await in_thread(peer_chain, port)
        self.assertEqual(second[0].serial_number, other.certificate.serial_number)
        self.assertNotEqual(second[0], first[0])
        self.assertTrue(listening.connected)
        self.assertEqual(listening.getHost().port, port)
        info = await in_thread(tls_request, port, client_context(cafile=self.root_path))
        self.assertTrue(info["response"].startswith(b"HTTP/1.1 200"))


class ClientCertificateTests(TLSServerMixin, unittest.TestCase):
    def setUp(self):
        self.pki = self.make_pki()
        self.client_ca = self.pki.ca("Client CA")
        self.other_ca = self.pki.ca("Other CA")
        self.client_ca_path = self.pki.write_ca("clientca.pem", self.client_ca)
        self.good = self.pki.write_pair("good", self.pki.leaf(self.client_ca, "alice", client=True))
        self.bad = self.pki.write_pair("bad", self.pki.leaf(self.other_ca, "mallory", client=True))

    def serve(self, **kwargs):
        settings = TLSSettings(
            certificate=self.cert_path, key=self.key_path, clientcas=(self.client_ca_path,), **kwargs
        )
        return self.start_tls_server(make_server_tls(settings))[1]

    async def outcome(self, port, cert=None, maximum=None, check_server=True):
        """The handshake's outcome, "ok" or "refused: why"; check_server=False trusts any server certificate."""
        cafile = self.root_path if check_server else None
        context = client_context(cafile=cafile, cert=cert, maximum=maximum)
        try:
            info = await in_thread(tls_request, port, context)
        except (ssl.SSLError, ConnectionError, OSError) as error:
            return "refused: {}".format(error)
        if not info["response"].startswith(b"HTTP/1.1 200"):
            # TLS 1.3: the client's handshake ends before the server checks
            # its certificate; the refusal shows as a closed connection.
            return "refused: {!r}".format(info["response"][:40])
        return "ok"

    @async_test
    async def test_require_and_verify_is_default(self):
        port = self.serve()
        for maximum in (ssl.TLSVersion.TLSv1_2, None):
            self.assertTrue((await self.outcome(port, maximum=maximum)).startswith("refused"))
            self.assertTrue((await self.outcome(port, self.bad, maximum)).startswith("refused"))
            self.assertEqual(await self.outcome(port, self.good, maximum), "ok")

    @async_test
    async def test_verify_if_given(self):
        port = self.serve(clientauth="verify-client-cert-if-given")
        self.assertEqual(await self.outcome(port), "ok")
        self.assertTrue((await self.outcome(port, self.bad)).startswith("refused"))
        self.assertEqual(await self.outcome(port, self.good), "ok")

    @async_test
    async def test_require_any(self):
        port = self.serve(clientauth="require-any-client-cert")
        self.assertTrue((await self.outcome(port)).startswith("refused"))
        self.assertEqual(await self.outcome(port, self.bad), "ok")

    @async_test
    async def test_request_only(self):
        port = self.serve(clientauth="request-client-cert")
        self.assertEqual(await self.outcome(port), "ok")
        self.assertEqual(await self.outcome(port, self.bad), "ok")

    @async_test
    async def test_reload_picks_up_new_client_ca(self):
        settings = TLSSettings(
            certificate=self.cert_path, key=self.key_path, clientcas=(self.client_ca_path,)
        )
        server_tls = make_server_tls(settings)
        port = self.start_tls_server(server_tls)[1]
        self.assertTrue((await self.outcome(port, self.bad)).startswith("refused"))
        self.pki.write_ca("clientca.pem", self.client_ca, self.other_ca)
        self.assertTrue(await server_tls.reload())
        self.assertEqual(await self.outcome(port, self.bad), "ok")

    @async_test
    async def test_reload_picks_up_new_client_ca_with_lets_encrypt(self):
        """With certificates from ACME, SIGHUP's reload still re-reads the client CAs."""
        letsencrypt = LetsEncryptSettings(
            cachefile="", hosts=("localhost",), email="", directoryurl="https://acme.invalid/directory")
        settings = TLSSettings(clientcas=(self.client_ca_path,), letsencrypt=letsencrypt)

        # The issuing service is not started: the source serves its
        # self-signed stand-in, which is all the handshake needs here.
        setup = make_acme_source(letsencrypt, settings, reactor, store=MemoryStore(), transport=object())
        server_tls = ServerTLS(setup.source)
        port = self.start_tls_server(server_tls)[1]
        self.assertEqual(await self.outcome(port, self.good, check_server=False), "ok")
        self.assertTrue((await self.outcome(port, self.bad, check_server=False)).startswith("refused"))
        self.pki.write_ca("clientca.pem", self.client_ca, self.other_ca)
        self.assertTrue(await server_tls.reload())
        self.assertEqual(await self.outcome(port, self.bad, check_server=False), "ok")
        # A CA file that became unreadable keeps the CAs in use.
        with open(self.client_ca_path, "w") as broken:
            broken.write("not a certificate")
        self.assertFalse(await server_tls.reload())
        self.assertEqual(await self.outcome(port, self.bad, check_server=False), "ok")
        self.assertTrue((await self.outcome(port, check_server=False)).startswith("refused"))


@implementer(ICertificateSource)
class TwoNameSource:
    """Per-SNI contexts and a pending TLS-ALPN-01 challenge, like the ACME source."""

    def __init__(self, policy, default, named, challenge):
        self.policy = policy
        self.contexts = {None: policy.build(*default), "other.test": policy.build(*named)}
        self.challenge = challenge

    def context_for(self, server_name):
        return self.contexts.get(server_name, self.contexts[None])

    def alpn_challenge_for(self, server_name):
        return self.challenge if server_name == "acme.test" else None


class SNIAndALPNChallengeTests(TLSServerMixin, unittest.TestCase):
    @async_test
    async def test_sni_and_acme_tls_1(self):
        from spectroreg.tls.context import ContextPolicy

        pki = PKI(self.mktemp())
        ca = pki.ca("CA")
        default, named, challenge = (pki.leaf(ca, n) for n in ("localhost", "other.test", "acme.test"))
        source = TwoNameSource(
            ContextPolicy.from_settings(TLSSettings()),
            (default.key, [default.certificate]),
            (named.key, [named.certificate]),
            (challenge.key, challenge.certificate),
        )
        port = self.start_tls_server(ServerTLS(source))[1]
        chain, protocol = await in_thread(peer_chain, port, b"other.test", [b"http/1.1"])
        self.assertEqual((chain[0], protocol), (named.certificate, b"http/1.1"))
        chain, protocol = await in_thread(peer_chain, port, b"acme.test", [b"acme-tls/1"])
        self.assertEqual((chain[0], protocol), (challenge.certificate, b"acme-tls/1"))
        # No challenge pending for that name: normal certificate, no acme-tls/1.
        chain, protocol = await in_thread(peer_chain, port, b"localhost", [b"acme-tls/1", b"http/1.1"])
        self.assertEqual((chain[0], protocol), (default.certificate, b"http/1.1"))


class OnlyConfiguredNamesSource(TwoNameSource):
    """Like the ACME source: no certificate at all for a name it does not serve."""

    def context_for(self, server_name):
        if server_name == "unknown.test":
            return None
        return super().context_for(server_name)


class UnknownNameTests(TLSServerMixin, unittest.TestCase):
    @async_test
    async def test_name_without_certificate_is_refused(self):
        from spectroreg.tls.context import ContextPolicy

        pki = PKI(self.mktemp())
        ca = pki.ca("CA")
        default, named = (pki.leaf(ca, n) for n in ("localhost", "other.test"))
        source = OnlyConfiguredNamesSource(
            ContextPolicy.from_settings(TLSSettings()),
            (default.key, [default.certificate]),
            (named.key, [named.certificate]),
            None,
        )
        port = self.start_tls_server(ServerTLS(source))[1]
        with self.assertRaises(SSL.Error):
            await in_thread(peer_chain, port, b"unknown.test", [b"http/1.1"])
        # The port goes on serving the names it has.
        chain, _ = await in_thread(peer_chain, port, b"other.test", [b"http/1.1"])
        self.assertEqual(chain[0], named.certificate)


class BadFilesTests(unittest.TestCase):
    def setUp(self):
        self.pki = PKI(self.mktemp())
        ca = self.pki.ca("CA")
        self.leaf = self.pki.leaf(ca)
        self.cert, self.key = self.pki.write_pair("server", self.leaf)
        self.ca_path = self.pki.write_ca("ca.pem", ca)

    def assertConfigError(self, naming, **kwargs):
        values = dict(certificate=self.cert, key=self.key)
        values.update(kwargs)
        error = self.assertRaises(ConfigError, make_server_tls, TLSSettings(**values))
        self.assertIn(naming, str(error))
        return error

    def test_missing_files(self):
        missing = os.path.join(self.pki.directory, "nope.pem")
        self.assertConfigError(missing, certificate=missing)
        self.assertConfigError(missing, key=missing)
        self.assertConfigError(missing, clientcas=(self.ca_path, missing))

    def test_garbage_files(self):
        garbage = self.pki.write("garbage.pem", b"not a pem file\n")
        self.assertConfigError(garbage, certificate=garbage)
        self.assertConfigError(garbage, key=garbage)
        self.assertConfigError(garbage, clientcas=(garbage,))

    def test_mismatched_and_encrypted_key(self):
        other = self.pki.write("other.key", _key_pem(ec.generate_private_key(ec.SECP256R1())))
        error = self.assertConfigError(other, key=other)
        self.assertIn("does not match", str(error))
        locked = self.pki.write("locked.key", _key_pem(self.leaf.key, b"secret"))
        self.assertIn("encrypted", str(self.assertConfigError(locked, key=locked)))

    def test_bad_settings(self):
        self.assertConfigError("TLS_BOGUS", ciphersuites=("TLS_BOGUS",))
        self.assertConfigError("clientauth", clientauth="sometimes", clientcas=(self.ca_path,))
        self.assertConfigError("minimumtls", minimumtls="ssl3")

    def test_file_source_reload_failure_keeps_old(self):
        source = FileCertificateSource(TLSSettings(certificate=self.cert, key=self.key))
        before = source.context_for(None)
        os.unlink(self.cert)

        def check(switched):
            self.assertIs(switched, False)
            self.assertIs(source.context_for(None), before)

        return source.reload().addCallback(check)
