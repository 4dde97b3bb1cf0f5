"""
The TLS listener layer: ``make_server_tls(tls_settings)`` → L{ServerTLS}.

L{ServerTLS.wrap_factory} puts TLS under an HTTP factory (the C{Site}). The
connection creator asks the certificate source for a context on every new
connection and again when the client sends SNI, so a reloaded or renewed
certificate is used by the next handshake while the listening port stays
open.

The TLS layer itself is L{spectroreg.tls.protocol.TLSServerProtocol}, which
adds nothing to the contexts: ALPN is chosen here. We select ``http/1.1``,
or ``acme-tls/1`` together with the challenge certificate when the source
has a TLS-ALPN-01 challenge pending for the SNI name (RFC 8737).

Plain HTTP sent to the TLS port is answered as Go's server answers it
(``400``, "Client sent an HTTP request to an HTTPS server."), so a client
configured with the wrong scheme learns why instead of seeing the
connection drop.
"""

import weakref

from OpenSSL import SSL
from twisted.internet import defer
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.logger import Logger
from zope.interface import implementer

from spectroreg.interfaces import IReloadable
from spectroreg.tls.interfaces import IServerTLS
from spectroreg.tls.protocol import TLSServerFactory, TLSServerProtocol, whole_writes
from spectroreg.tls.context import _as_pkey, _as_x509, _openssl_call

log = Logger(namespace="spectroreg.tls.server")

HTTP_11 = b"http/1.1"
ACME_TLS_1 = b"acme-tls/1"


def _server_name(connection):
    name = connection.get_servername()
    if not name:
        return None
    return name.decode("ascii", "replace").lower().rstrip(".")


@implementer(IOpenSSLServerConnectionCreator)
class SourceConnectionCreator:
    """
    Makes each server connection from the context the source gives now.

    Every context seen is given our SNI and ALPN callbacks once, before its
    first use (OpenSSL reads the ALPN callback from the context in force
    after the SNI switch, so each one needs it).
    """

    def __init__(self, source):
        self.source = source
        self._prepared = weakref.WeakSet()
        self._refusing = None

    def _prepare(self, context):
        if context in self._prepared:
            return context
        whole_writes(context)
        context.set_tlsext_servername_callback(self._on_server_name)
        context.set_alpn_select_callback(self._select_protocol)
        self._prepared.add(context)
        return context

    def serverConnectionForTLS(self, tls_protocol):
        context = self.source.context_for(None)
        if context is None:
            raise SSL.Error("no certificate available yet")
        return SSL.Connection(self._prepare(context), None)

    def _on_server_name(self, connection):
        try:
            name = _server_name(connection)
            if name is None:
                return
            context = self.source.context_for(name)
            if context is None:
                # The source has no certificate for this name (with ACME: a
                # name not in `hosts`). Presenting another host's certificate
                # would leak which names are served here; a context without
                # any certificate makes the handshake fail instead.
                log.info("TLS client asked for {name!r}: no certificate for that name", name=name)
                connection.set_context(self._without_certificate())
            elif context is not connection.get_context():
                connection.set_context(self._prepare(context))
        except Exception:
            log.failure("choosing the certificate for a TLS client failed")

    def _without_certificate(self):
        if self._refusing is None:
            self._refusing = SSL.Context(SSL.TLS_METHOD)
        return self._refusing

    def _select_protocol(self, connection, offered):
        if ACME_TLS_1 in offered:
            name = _server_name(connection)
            pair = self.source.alpn_challenge_for(name) if name else None
            if pair is not None:
                key, certificate = pair
                # Either pyOpenSSL or cryptography objects may come back.
                _openssl_call(connection.use_certificate, certificate, _as_x509)
                _openssl_call(connection.use_privatekey, key, _as_pkey)
                return ACME_TLS_1
        if HTTP_11 in offered:
            return HTTP_11
        return SSL.NO_OVERLAPPING_PROTOCOLS


# Go's answer, byte for byte (net/http's server, on a TLS record header
# that reads like an HTTP request).
PLAIN_HTTP_ANSWER = b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"

# A TLS record starts with its content type (20-24); an HTTP request with
# its method, in capitals.
_SNIFF_LENGTH = 5
_REQUEST_START = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ /")


def looks_like_http(head):
    """
    True when C{head}, the first bytes of a connection (at least five, or
    all there are), read as the start of an HTTP request rather than a TLS
    record: a method in capital letters and then its target.
    """
    head = head[:_SNIFF_LENGTH]
    return bool(head) and head[:1].isupper() and all(byte in _REQUEST_START for byte in head)


class _AnswerPlainHTTP:
    """
    Mixed into our TLS protocol: looks at the first bytes of the
    connection before they go to OpenSSL, and answers plain HTTP itself.
    """

    _sniffed = b""

    def dataReceived(self, data):
        if self._sniffed is not None:
            data = self._sniffed + data
            if len(data) < _SNIFF_LENGTH and looks_like_http(data):
                self._sniffed = data
                return
            self._sniffed = None
            if looks_like_http(data):
                self.transport.write(PLAIN_HTTP_ANSWER)
                self.transport.loseConnection()
                return
        super().dataReceived(data)


class _ServerTLSProtocol(_AnswerPlainHTTP, TLSServerProtocol):
    pass


class _ServerTLSFactory(TLSServerFactory):
    protocol = _ServerTLSProtocol


@implementer(IServerTLS, IReloadable)
class ServerTLS:
    """
    What the service wires into a TLS listener.

    @ivar source: the L{ICertificateSource} in use.
    @ivar services: C{IService}s to run alongside the listener (ACME issuing).
    @ivar http01_resource: an C{IResource} answering HTTP-01 challenges, or None.
    """

    def __init__(self, source, services=(), http01_resource=None):
        self.source = source
        self.services = list(services)
        self.http01_resource = http01_resource
        self.connection_creator = SourceConnectionCreator(source)

    def wrap_factory(self, factory):
        """A factory serving C{factory}'s protocol over TLS."""
        return _ServerTLSFactory(self.connection_creator, factory)

    def reload(self):
        """
        Re-read certificates and CAs (SIGHUP) without closing the port.

        @return: a Deferred firing with True when new material is in use,
            False when the old is kept (the reason is logged). Never fails.
        """
        if not IReloadable.providedBy(self.source):
            return defer.succeed(False)
        return defer.maybeDeferred(self.source.reload).addErrback(self._reload_failed)

    def _reload_failed(self, failure):
        log.failure("TLS reload failed, keeping the current certificates", failure)
        return False


def make_server_tls(tls_settings, reactor=None):
    """
    The TLS layer for ``http.tls``.

    With ``letsencrypt`` set, certificates come from ACME
    (L{spectroreg.tls.acme.make_acme_source}); otherwise from the
    ``certificate``/``key`` files.

    @raise spectroreg.config.errors.ConfigError: a certificate, key or CA
        file is unreadable, malformed or mismatched (the message names it),
        or a protocol/cipher/client-auth setting is invalid.
    """
    if reactor is None:
        from twisted.internet import reactor
    if tls_settings.letsencrypt is not None:
        from spectroreg.tls.acme import make_acme_source

        setup = make_acme_source(tls_settings.letsencrypt, tls_settings, reactor)
        return ServerTLS(setup.source, setup.services, setup.http01_resource)
    from spectroreg.tls.files import FileCertificateSource

    source = FileCertificateSource(tls_settings, reactor=reactor)
    for note in source.policy.notes:
        log.warn("{note}", note=note)
    return ServerTLS(source)
