"""
spectroreg.tls.protocol: the server TLS layer, driven in memory against a
pyOpenSSL client (the real daemon over TLS is in test_tls_daemon,
test_storage_sendfile_daemon and test_web_early_answers).
"""

import datetime
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import INegotiated, IPushProducer, ISSLTransport, ISystemHandle
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest
from zope.interface import implementer
from zope.interface.verify import verifyObject

from tests.support.tlsmemory import connected
from spectroreg.tls.protocol import RECORD, SEND_LIMIT, TLSServerFactory, represents_eof, seal, whole_writes


def _context_pair():
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(1)
                   .not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .sign(key, hashes.SHA256()))
    server = SSL.Context(SSL.TLS_METHOD)
    server.use_certificate(crypto.X509.from_cryptography(certificate))
    server.use_privatekey(crypto.PKey.from_cryptography_key(key))
    server.set_options(SSL.OP_NO_RENEGOTIATION)
    server.set_alpn_select_callback(lambda connection, offered: b"http/1.1")
    client = SSL.Context(SSL.TLS_METHOD)
    client.set_alpn_protos([b"http/1.1"])
    return server, client


class Creator:
    def __init__(self, context):
        self.context = context

    def serverConnectionForTLS(self, protocol):
        return SSL.Connection(self.context, None)


class Recorder(Protocol):
    """The application: records what it is given; writes C{greeting} at connection."""

    greeting = None

    def __init__(self):
        self.received = []
        self.lost = None

    def connectionMade(self):
        if self.greeting is not None:
            self.transport.write(self.greeting)

    def dataReceived(self, data):
        self.received.append(data)

    def connectionLost(self, reason):
        self.lost = reason


class CountingTransport(StringTransport):
    """Records each write as it came."""

    def __init__(self):
        StringTransport.__init__(self)
        self.writes = []
        self.aborted = False

    def write(self, data):
        self.writes.append(data)
        StringTransport.write(self, data)

    def abortConnection(self):
        self.aborted = True
        self.disconnecting = True

    # The rest of a TCP connection's interface, which the TLS layer passes on.
    def loseWriteConnection(self):
        pass

    def getTcpNoDelay(self):
        return True

    def setTcpNoDelay(self, enabled):
        pass

    def getTcpKeepAlive(self):
        return False

    def setTcpKeepAlive(self, enabled):
        pass


@implementer(IPushProducer)
class Producer:
    def __init__(self):
        self.events = []

    def pauseProducing(self):
        self.events.append("pause")

    def resumeProducing(self):
        self.events.append("resume")

    def stopProducing(self):
        self.events.append("stop")


class TLSServerProtocolTests(unittest.TestCase):
    def setUp(self):
        server_context, client_context = _context_pair()
        self.application = Recorder()
        self.factory = TLSServerFactory(Creator(server_context),
                                        Factory.forProtocol(lambda: self.application))
        self.client = SSL.Connection(client_context, None)
        self.client.set_connect_state()
        self.transport = CountingTransport()

    def connect(self):
        self.protocol = self.factory.buildProtocol(None)
        self.protocol.makeConnection(self.transport)

    def client_out(self):
        """What the client has for the server."""
        out = []
        while True:
            try:
                out.append(self.client.bio_read(65536))
            except SSL.WantReadError:
                return b"".join(out)

    def to_client(self):
        """Give the client what the server sent; return the plaintext it decrypts."""
        data = self.transport.value()
        self.transport.clear()
        if data:
            self.client.bio_write(data)
        plain = []
        while True:
            try:
                plain.append(self.client.recv(65536))
            except (SSL.WantReadError, SSL.ZeroReturnError):
                return b"".join(plain)

    def handshake(self):
        self.connect()
        self.handshake_after_connect()
        self.assertTrue(self.protocol._handshake_done)
        self.to_client()
        self.transport.writes.clear()

    def test_interfaces(self):
        self.handshake()
        verifyObject(ISSLTransport, self.protocol)
        verifyObject(INegotiated, self.protocol)
        verifyObject(ISystemHandle, self.protocol)
        self.assertIsInstance(self.protocol.getHandle(), SSL.Connection)
        self.assertEqual(self.protocol.negotiatedProtocol, b"http/1.1")
        self.assertIsNone(self.protocol.getPeerCertificate())
        self.assertEqual(self.factory.logPrefix(), "Factory (TLS)")

    def test_send_limit_raised_for_whole_writes(self):
        """The TCP connection may hand an encrypted chunk to the kernel in one send."""
        self.transport.SEND_LIMIT = 128 * 1024
        self.connect()
        self.assertEqual(self.transport.SEND_LIMIT, SEND_LIMIT)
        larger = CountingTransport()
        larger.SEND_LIMIT = 4 * SEND_LIMIT
        self.factory.buildProtocol(None).makeConnection(larger)
        self.assertEqual(larger.SEND_LIMIT, 4 * SEND_LIMIT)

    def test_write_is_one_transport_write(self):
        """A 1 MiB application write reaches the TCP connection as one write, not one per record."""
        self.handshake()
        body = os.urandom(1024 * 1024)
        self.protocol.write(body)
        self.assertEqual(len(self.transport.writes), 1)
        self.assertGreater(len(self.transport.writes[0]), len(body))
        self.assertEqual(self.to_client(), body)

    def test_writes_of_any_size_arrive_whole(self):
        self.handshake()
        pieces = [b"", b"x", os.urandom(RECORD - 1), os.urandom(RECORD), os.urandom(RECORD + 1),
                  bytearray(os.urandom(3 * RECORD + 7)), memoryview(os.urandom(5000))]
        for piece in pieces:
            self.protocol.write(piece)
        self.protocol.writeSequence([b"a", b"bc"])
        self.assertEqual(self.to_client(), b"".join(bytes(piece) for piece in pieces) + b"abc")
        self.assertRaises(TypeError, self.protocol.write, "text")

    def test_records_of_one_read_arrive_together(self):
        """The records of one TCP read are given to the application as one piece."""
        self.handshake()
        body = os.urandom(7 * RECORD + 123)
        view = memoryview(body)
        for start in range(0, len(body), RECORD):
            self.client.send(view[start:start + RECORD])
        self.protocol.dataReceived(self.client_out())
        self.assertEqual([len(piece) for piece in self.application.received], [len(body)])
        self.assertEqual(self.application.received[0], body)

    def test_record_split_across_reads(self):
        self.handshake()
        self.client.send(b"hello, registry")
        wire = self.client_out()
        for index in range(len(wire)):
            self.protocol.dataReceived(wire[index:index + 1])
        self.assertEqual(b"".join(self.application.received), b"hello, registry")

    def test_writes_wait_for_the_handshake(self):
        """Writes made before the handshake ends wait, with the producer paused, then go out."""
        self.application.greeting = b"early"
        producer = Producer()
        self.connect()
        self.protocol.registerProducer(producer, True)
        self.protocol.write(b" and more")
        self.assertEqual(producer.events, ["pause"])
        self.handshake_after_connect()
        self.assertEqual(producer.events, ["pause", "resume"])
        self.assertEqual(self.to_client(), b"early and more")

    def test_transport_pause_outlasts_the_handshake(self):
        """The producer resumes when neither the TLS layer nor the TCP connection holds it."""
        producer = Producer()
        self.connect()
        self.protocol.registerProducer(producer, True)
        self.protocol.write(b"early")
        self.transport.producer.pauseProducing()  # the TCP buffer is full too
        self.handshake_after_connect()
        self.assertEqual(producer.events, ["pause"])
        self.transport.producer.resumeProducing()
        self.assertEqual(producer.events, ["pause", "resume"])
        self.assertEqual(self.to_client(), b"early")

    def handshake_after_connect(self):
        """Run the handshake; the server's bytes reach the client undecrypted (nothing read)."""
        for _ in range(10):
            try:
                self.client.do_handshake()
            except SSL.WantReadError:
                pass
            out = self.client_out()
            if out:
                self.protocol.dataReceived(out)
            if self.protocol._handshake_done and not out:
                break
            data = self.transport.value()
            self.transport.clear()
            if data:
                self.client.bio_write(data)

    def test_lose_connection_sends_close_notify(self):
        self.handshake()
        self.protocol.write(b"last words")
        self.protocol.loseConnection()
        self.assertEqual(self.to_client(), b"last words")
        self.assertRaises(SSL.ZeroReturnError, self.client.recv, 100)
        self.assertFalse(self.transport.disconnecting)  # waits for the client's close_notify
        self.client.shutdown()
        self.protocol.dataReceived(self.client_out())
        self.assertTrue(self.transport.disconnecting)
        self.protocol.write(b"dropped")
        self.assertEqual(self.transport.value(), b"")

    def test_lose_connection_waits_for_the_producer(self):
        self.handshake()
        producer = Producer()
        self.protocol.registerProducer(producer, True)
        self.protocol.loseConnection()
        self.protocol.write(b"still allowed")
        self.assertEqual(self.to_client(), b"still allowed")
        self.protocol.unregisterProducer()
        self.to_client()
        self.assertRaises(SSL.ZeroReturnError, self.client.recv, 100)

    def test_lose_connection_before_handshake_aborts(self):
        self.connect()
        self.protocol.loseConnection()
        self.assertTrue(self.transport.aborted)

    def test_client_close_notify(self):
        self.handshake()
        self.client.send(b"bye")
        self.client.shutdown()
        self.protocol.dataReceived(self.client_out())
        self.assertEqual(self.application.received, [b"bye"])
        self.assertTrue(self.transport.disconnecting)
        self.protocol.connectionLost(Failure(ConnectionLost()))
        self.assertIsNotNone(self.application.lost)

    def test_eof_without_close_notify_is_connection_lost(self):
        self.handshake()
        self.client.send(b"cut")
        self.protocol.dataReceived(self.client_out())
        self.protocol.connectionLost(Failure(ConnectionLost("tcp closed")))
        self.assertEqual(self.application.received, [b"cut"])
        self.assertIsInstance(self.application.lost.value, ConnectionLost)
        self.assertIsNone(self.protocol.getHandle())

    def test_handshake_failure_reaches_the_application(self):
        self.connect()
        self.protocol.dataReceived(b"\x16\x03\x01\x00\x05garbage-that-is-not-a-hello")
        self.assertTrue(self.transport.disconnecting)
        self.protocol.connectionLost(Failure(ConnectionLost()))
        self.assertIsInstance(self.application.lost.value, SSL.Error)
        self.assertEqual(self.application.received, [])

    def test_producer_membrane(self):
        """A pause from TCP and one from TLS reach the producer once; resumes likewise."""
        self.handshake()
        producer = Producer()
        self.protocol.registerProducer(producer, True)
        membrane = self.transport.producer
        membrane.pauseProducing()
        membrane.pauseProducing()
        membrane.resumeProducing()
        membrane.resumeProducing()
        membrane.stopProducing()
        self.assertEqual(producer.events, ["pause", "resume", "stop"])
        self.protocol.unregisterProducer()
        self.assertIsNone(self.transport.producer)

    def test_pull_producer_asked_each_time(self):
        self.handshake()
        producer = Producer()
        self.protocol.registerProducer(producer, False)
        self.transport.producer.resumeProducing()
        self.transport.producer.resumeProducing()
        self.assertEqual(producer.events, ["resume", "resume"])

    def test_producer_after_the_end_is_stopped(self):
        self.handshake()
        self.protocol.connectionLost(Failure(ConnectionLost()))
        producer = Producer()
        self.protocol.registerProducer(producer, True)
        self.assertEqual(producer.events, ["stop"])


class WholeWritesTests(unittest.TestCase):
    def connected_pair(self, whole, prepare=whole_writes):
        server_context, client_context = _context_pair()
        if whole:
            prepare(server_context)
        return connected(server_context, client_context)

    def test_one_send_takes_a_whole_write(self):
        server, _ = self.connected_pair(whole=True)
        data = os.urandom(4 * RECORD)
        self.assertEqual(server.send(data), len(data))

    def test_partial_writes_by_default(self):
        server, _ = self.connected_pair(whole=False)
        self.assertEqual(server.send(os.urandom(4 * RECORD)), RECORD)

    def test_seal_either_way(self):
        for whole in (True, False):
            server, client = self.connected_pair(whole)
            data = os.urandom(5 * RECORD + 3)
            sent, ciphertext, problem = seal(server, data)
            self.assertEqual((sent, problem), (len(data), None))
            client.bio_write(ciphertext)
            received = b""
            while len(received) < len(data):
                received += client.recv(65536)
            self.assertEqual(received, data)

    def test_without_clear_mode_the_binding_clears_it(self):
        """
        pyOpenSSL before 24.3 (Debian 12's 23.0) has no C{Context.clear_mode}:
        L{whole_writes} clears the mode through the binding it ships.
        """

        class OldContext:
            def __init__(self, context):
                self._context = context._context

        server, _ = self.connected_pair(True, lambda context: whole_writes(OldContext(context)))
        data = os.urandom(4 * RECORD)
        self.assertEqual(server.send(data), len(data))


class RepresentsEOFTests(unittest.TestCase):
    def test_forms(self):
        self.assertTrue(represents_eof(SSL.SysCallError(-1, "Unexpected EOF")))
        self.assertTrue(represents_eof(SSL.Error([("SSL routines", "", "unexpected eof while reading")])))
        self.assertTrue(represents_eof(SSL.Error([])))
        self.assertFalse(represents_eof(SSL.Error([("SSL routines", "", "bad record mac")])))
        self.assertFalse(represents_eof(SSL.SysCallError(104, "ECONNRESET")))

