"""
The TLS layer of a server connection: OpenSSL over memory BIOs, moving
bytes between the application, OpenSSL and the TCP connection in batches.

This is the job of Twisted's C{TLSMemoryBIOProtocol}, which moves one TLS
record (16 KiB) at a time in each direction: per record a slice copy, a
C{send} into OpenSSL, one or two reads of the outgoing BIO (the last one
raising C{WantReadError}) and a write into the TCP transport; and on the
way in, one C{dataReceived} of the application per record. A download over
TLS is then mostly that per-record Python work, an upload four rounds of
HTTP body parsing per 64 KiB read. L{TLSServerProtocol} does the same
exchange with the work gathered:

- an application write is handed to OpenSSL through a C{memoryview},
  without copies: in one C{send} once partial writes are off
  (L{whole_writes}), else one record per C{send}; what OpenSSL produced for
  the whole write is read out of the memory BIO in one C{bio_read} sized for
  it and written to the TCP connection once, which hands it to the kernel
  in one C{send} (L{SEND_LIMIT});
- the records that one read from the TCP connection holds are decrypted in
  a loop and given to the application as one piece.

Everything else follows Twisted's protocol, whose behaviour our callers and
tests rely on: the handshake starts at connection and application writes
wait (the producer paused) until it is done; C{loseConnection} sends
``close_notify`` once the writes are out (or aborts before the handshake);
an OpenSSL error during the handshake reaches the application's
C{connectionLost}, an unexpected EOF reads as C{ConnectionLost}; producers
are registered with the TCP connection through a membrane that keeps the
pause and resume of the two sources apart. Only public interfaces of
Twisted and pyOpenSSL are used, except where pyOpenSSL before 24.3 lacks
C{Context.clear_mode} (L{whole_writes} then calls the binding it ships).
"""

from OpenSSL.SSL import Error, SysCallError, WantReadError, ZeroReturnError
from twisted.internet.interfaces import (
    IHandshakeListener,
    ILoggingContext,
    INegotiated,
    IPushProducer,
    ISystemHandle,
)
from twisted.internet.main import CONNECTION_LOST
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure
from zope.interface import implementer

# The most plaintext one TLS record carries.
RECORD = 16384
# Bytes a TLS 1.2/1.3 record adds at most (header, explicit nonce or inner
# type, AEAD tag or MAC and padding), rounded up.
_RECORD_OVERHEAD = 320
# What a bio_read asks for when the amount is not known (handshake, alerts).
_DEFAULT_READ = 64 * 1024
# What one decryption call asks for (OpenSSL returns at most one record).
_RECV = 2 ** 15
# OpenSSL's SSL_MODE_ENABLE_PARTIAL_WRITE.
_MODE_ENABLE_PARTIAL_WRITE = 0x1
# The most a TCP connection under this layer hands the kernel in one send
# (Twisted's SEND_LIMIT, 128 KiB by default): a download's encrypted
# 256 KiB chunk is a little over 256 KiB, which 128 KiB sends turn into
# three turns of the reactor (the last one for a few hundred bytes) and
# this into one.
SEND_LIMIT = 1024 * 1024


def represents_eof(error):
    """
    Whether the OpenSSL error C{error} is the peer closing the TCP
    connection without ``close_notify`` (OpenSSL 1.1: C{SysCallError(-1,
    'Unexpected EOF')}; OpenSSL 3: "unexpected eof while reading").
    """
    if isinstance(error, SysCallError):
        reason = error.args[1] if len(error.args) > 1 else None
        return isinstance(reason, str) and reason.casefold().startswith("unexpected eof")
    queue = error.args[0] if error.args else None
    if not queue:
        return True
    try:
        reason = queue[-1][2]
    except (IndexError, TypeError):
        return False
    return isinstance(reason, str) and reason.casefold().startswith("unexpected eof")


@implementer(IPushProducer)
class _ProducerMembrane:
    """
    Stands for the application's producer at the TCP connection. Two sources
    pause it: the connection (its buffer is full) and the TLS layer (writes
    wait for the handshake). The producer is paused while either holds it,
    and resumed once neither does.
    """

    def __init__(self, producer, streaming):
        self.producer = producer
        self.streaming = streaming
        self._by_transport = False
        self._by_tls = False
        self._paused = False

    def pauseProducing(self):
        self._by_transport = True
        self._update()

    def resumeProducing(self):
        if not self.streaming:
            # A pull producer: the connection asks it for more each time
            # its buffer empties.
            self.producer.resumeProducing()
            return
        self._by_transport = False
        self._update()

    def stopProducing(self):
        self.producer.stopProducing()

    def hold(self, held):
        """The TLS layer's own pause (C{held} True) or its release."""
        if self.streaming:
            self._by_tls = held
            self._update()

    def _update(self):
        paused = self._by_transport or self._by_tls
        if paused == self._paused:
            return
        self._paused = paused
        if paused:
            self.producer.pauseProducing()
        else:
            self.producer.resumeProducing()


def seal(connection, data):
    """
    Encrypt C{data} on the OpenSSL C{connection} and take what it produced
    out of its memory BIO.

    @return: C{(sent, ciphertext, problem)}: the plaintext bytes OpenSSL
        took, the bytes to send, and None, C{"want-read"} (OpenSSL needs the
        peer first: the rest must wait for a read) or a L{Failure}.
    """
    view = memoryview(data)
    size = len(view)
    send = connection.send
    sent = 0
    problem = None
    try:
        while sent < size:
            # One record per call, or all of it where partial writes are off
            # (L{whole_writes}).
            sent += send(view[sent:])
    except WantReadError:
        problem = "want-read"
    except Error:
        problem = Failure()
    return sent, drain(connection, sent + (sent // RECORD + 1) * _RECORD_OVERHEAD), problem


def whole_writes(context):
    """
    Let one C{send} on C{context}'s connections encrypt a whole write
    (clears C{SSL_MODE_ENABLE_PARTIAL_WRITE}, which pyOpenSSL sets, so
    OpenSSL no longer returns after each record). A memory BIO never makes
    a write wait, so nothing else changes. pyOpenSSL 24.3 and later have
    C{Context.clear_mode}; older ones (Debian 12's 23.0) ship a binding
    with C{SSL_CTX_clear_mode}, used directly. Without either, each
    C{send} takes a record. Must run before the context's first connection.
    """
    clear_mode = getattr(context, "clear_mode", None)
    if clear_mode is not None:
        clear_mode(_MODE_ENABLE_PARTIAL_WRITE)
        return
    from OpenSSL._util import lib

    handle = getattr(context, "_context", None)
    if handle is not None and hasattr(lib, "SSL_CTX_clear_mode"):
        lib.SSL_CTX_clear_mode(handle, _MODE_ENABLE_PARTIAL_WRITE)


def drain(connection, expected=_DEFAULT_READ):
    """All that OpenSSL has produced for the peer, as one C{bytes}."""
    chunks = []
    size = max(expected, _DEFAULT_READ)
    while True:
        try:
            chunk = connection.bio_read(size)
        except WantReadError:
            break
        chunks.append(chunk)
        if len(chunk) < size:
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


@implementer(ISystemHandle, INegotiated)
class TLSServerProtocol(ProtocolWrapper):
    """
    The server side of one TLS connection; see the module docstring.

    @ivar factory: a L{TLSServerFactory}.
    """

    _handshake_done = False
    _over = False  # TLS ended (shut down or failed): nothing more in or out
    _aborted = False
    _reason = None
    _producer = None
    _tls = None

    def __init__(self, factory, wrappedProtocol):
        ProtocolWrapper.__init__(self, factory, wrappedProtocol)
        self._waiting = []  # application writes that wait for the handshake

    # ISystemHandle, ISSLTransport, INegotiated

    def getHandle(self):
        """The L{OpenSSL.SSL.Connection} of this connection (None once it is lost)."""
        return self._tls

    def getPeerCertificate(self):
        return self._tls.get_peer_certificate()

    @property
    def negotiatedProtocol(self):
        if self._tls is None:
            return None
        try:
            name = self._tls.get_alpn_proto_negotiated()
        except (NotImplementedError, AttributeError):
            return None
        return name or None

    # IProtocol, towards the TCP connection

    def makeConnection(self, transport):
        self._tls = self.factory.connection_for(self)
        if getattr(transport, "SEND_LIMIT", SEND_LIMIT) < SEND_LIMIT:
            transport.SEND_LIMIT = SEND_LIMIT
        ProtocolWrapper.makeConnection(self, transport)
        self._continue_handshake()

    def dataReceived(self, data):
        if self._tls is None:
            return
        self._tls.bio_write(data)
        if not self._handshake_done:
            self._continue_handshake()
            if not self._handshake_done:
                return
        # Reads first: what the application writes in answer queues behind
        # the writes that waited, which then go out in order.
        self._read_application()
        if self._waiting and not self._over:
            self._write_waiting()

    def connectionLost(self, reason):
        if not self._over and self._tls is not None:
            # Let OpenSSL see the end of input and hand over what it holds.
            self._tls.bio_shutdown()
            self._read_application()
        self._over = True
        reason = self._reason or reason
        self._reason = None
        self.connected = False
        ProtocolWrapper.connectionLost(self, reason)
        self._tls = None
        self._waiting = []

    # ITransport, towards the application

    def write(self, data):
        if isinstance(data, str):
            raise TypeError("Must write bytes to a TLS transport, not str.")
        # After loseConnection, writes are dropped unless a producer is
        # still registered (it may write until it unregisters).
        if self.disconnecting and self._producer is None:
            return
        self._write(data)

    def writeSequence(self, iovec):
        self.write(b"".join(iovec))

    def loseConnection(self):
        if self.disconnecting or not self.connected:
            return
        if not self._handshake_done and not self._waiting:
            # OpenSSL would not shut down before the handshake completes,
            # and nothing may be written after this to complete it.
            self.abortConnection()
        self.disconnecting = True
        self._shutdown_when_idle()

    def abortConnection(self):
        self._aborted = True
        self.disconnecting = True
        self._shutdown_tls()
        self.transport.abortConnection()

    def failVerification(self, reason):
        self._reason = reason
        self.abortConnection()

    def registerProducer(self, producer, streaming):
        if self._over:
            producer.stopProducing()
            return
        membrane = _ProducerMembrane(producer, streaming)
        # Raises if a producer is registered already.
        self.transport.registerProducer(membrane, streaming)
        self._producer = membrane
        if self._waiting:
            membrane.hold(True)

    def unregisterProducer(self):
        if self._producer is None:
            return
        self._producer = None
        self.transport.unregisterProducer()
        self._shutdown_when_idle()

    # internals

    def _continue_handshake(self):
        if self._aborted or self._tls is None:
            return
        try:
            self._tls.do_handshake()
        except WantReadError:
            self._flush()
        except Error:
            self._tls_ended(Failure())
        else:
            self._handshake_done = True
            self._flush()
            if IHandshakeListener.providedBy(self.wrappedProtocol):
                self.wrappedProtocol.handshakeCompleted()

    def _write(self, data):
        if self._over:
            return
        if not self._handshake_done or self._waiting:
            self._wait(data)
            return
        self._send_sealed(seal(self._tls, data), data)

    def _send_sealed(self, result, data):
        """Send what L{seal} returned; queue what OpenSSL could not take yet."""
        sent, ciphertext, problem = result
        if ciphertext:
            self.transport.write(ciphertext)
        if isinstance(problem, Failure):
            self._tls_ended(problem)
        elif problem is not None:
            # OpenSSL needs the peer first (a renegotiation, which our
            # contexts refuse): the rest waits, ahead of other writes, for
            # the next read.
            self._waiting.insert(0, bytes(memoryview(data)[sent:]))
            self._hold()

    def _wait(self, data):
        self._waiting.append(data)
        self._hold()

    def _hold(self):
        if self._producer is not None:
            self._producer.hold(bool(self._waiting))

    def _write_waiting(self):
        waiting, self._waiting = self._waiting, []
        for data in waiting:
            self._write(data)
        self._hold()
        self._shutdown_when_idle()

    def _shutdown_when_idle(self):
        """After loseConnection: close_notify once every write is out and the producer is gone."""
        if self.disconnecting and not self._waiting and self._producer is None:
            self._shutdown_tls()

    def _read_application(self):
        """Decrypt every record OpenSSL holds; give the application the plaintext as one piece."""
        pieces = []
        ended = None
        recv = self._tls.recv
        while True:
            try:
                pieces.append(recv(_RECV))
            except WantReadError:
                break
            except ZeroReturnError:
                ended = True  # the peer's close_notify
                break
            except Error:
                ended = Failure()
                break
        if pieces and not self._aborted and not self._over:
            ProtocolWrapper.dataReceived(self, pieces[0] if len(pieces) == 1 else b"".join(pieces))
        if ended is True and not self._over:
            self._shutdown_tls()
            self._tls_ended(None)
        elif ended is not None and not self._over:
            self._tls_ended(ended)
        # The records read may call for an answer (a key update, alerts).
        self._flush()

    def _flush(self):
        """Write what OpenSSL has produced to the TCP connection, in one write."""
        if self._tls is None:
            return
        data = drain(self._tls)
        if data:
            self.transport.write(data)

    def _shutdown_tls(self):
        """Send (or answer) close_notify; close the TCP connection once both sides have."""
        if self._tls is None:
            return
        try:
            done = self._tls.shutdown()
        except Error:
            # Mid-handshake OpenSSL wants to read first; pyOpenSSL does not
            # tell that apart from a failure.
            done = False
        self._flush()
        if done:
            self.transport.loseConnection()

    def _tls_ended(self, reason):
        """
        TLS is over: close the TCP connection. C{reason} (a L{Failure}) is
        what the application's C{connectionLost} is to get, or None for the
        TCP connection's own reason.
        """
        if reason is not None and isinstance(reason.value, Error) and represents_eof(reason.value):
            reason = Failure(CONNECTION_LOST)
        if self._reason is None:
            self._reason = reason
        self._over = True
        # An alert saying why may be waiting.
        self._flush()
        self.transport.loseConnection()


class TLSServerFactory(WrappingFactory):
    """
    Serves C{wrappedFactory}'s protocol over TLS.

    @param connection_creator: an C{IOpenSSLServerConnectionCreator}; it
        chooses certificates and ALPN (nothing is added to its contexts).
    """

    protocol = TLSServerProtocol
    noisy = False

    def __init__(self, connection_creator, wrappedFactory):
        WrappingFactory.__init__(self, wrappedFactory)
        self.connection_creator = connection_creator

    def connection_for(self, protocol):
        """The OpenSSL connection for C{protocol}, in the server role."""
        connection = self.connection_creator.serverConnectionForTLS(protocol)
        connection.set_accept_state()
        return connection

    def logPrefix(self):
        if ILoggingContext.providedBy(self.wrappedFactory):
            prefix = self.wrappedFactory.logPrefix()
        else:
            prefix = self.wrappedFactory.__class__.__name__
        return "{} (TLS)".format(prefix)
