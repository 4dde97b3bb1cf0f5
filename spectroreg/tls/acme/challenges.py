"""
Answering ACME challenges: TLS-ALPN-01 (RFC 8737) on the registry's own TLS
listener, HTTP-01 on a plain HTTP listener.

A responder is told C{start(host, token, key_authorization)} before the
challenge is submitted to the CA and C{stop(host, token)} once it is decided.
"""

from typing import Dict, Optional, Tuple

from twisted.logger import Logger
from twisted.web import resource

from . import certs

TLS_ALPN_01 = "tls-alpn-01"
HTTP_01 = "http-01"
ACME_TLS_ALPN = b"acme-tls/1"


class TLSALPN01Responder:
    """
    Keeps the challenge certificate of each host under validation; the TLS
    listener presents it to a client that offers ALPN ``acme-tls/1`` with
    that host as SNI.
    """

    challenge_type = TLS_ALPN_01

    def __init__(self):
        self._pending: Dict[str, Tuple[object, object]] = {}

    def start(self, host, token, key_authorization):
        key, cert = certs.tls_alpn_challenge(host, key_authorization)
        self._pending[host.lower()] = certs.to_openssl(key=key, cert=cert)

    def stop(self, host, token):
        self._pending.pop(host.lower(), None)

    def challenge_for(self, server_name) -> Optional[Tuple[object, object]]:
        """(pyOpenSSL PKey, X509) for C{server_name}, or None."""
        if not server_name:
            return None
        return self._pending.get(server_name.lower())


class HTTP01Responder:
    """Keeps the key authorization of each pending HTTP-01 token."""

    challenge_type = HTTP_01

    def __init__(self):
        self._tokens: Dict[str, str] = {}

    def start(self, host, token, key_authorization):
        self._tokens[token] = key_authorization

    def stop(self, host, token):
        self._tokens.pop(token, None)

    def key_authorization(self, token) -> Optional[str]:
        return self._tokens.get(token)


class _KeyAuthorization(resource.Resource):
    isLeaf = True

    def __init__(self, text):
        super().__init__()
        self._text = text

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/plain")
        return self._text.encode("ascii")

    render_HEAD = render_GET


class HTTP01Resource(resource.Resource):
    """
    To be mounted at ``/.well-known/acme-challenge``: each child is a pending
    token and answers its key authorization; anything else is 404.
    """

    def __init__(self, responder: HTTP01Responder):
        super().__init__()
        self._responder = responder

    def getChild(self, path, request):
        text = self._responder.key_authorization(path.decode("ascii", "replace"))
        if text is None or request.postpath:
            return resource.NoResource("no pending ACME challenge")
        return _KeyAuthorization(text)

    def render_GET(self, request):
        return resource.NoResource("no pending ACME challenge").render(request)


class ALPNSelector:
    """
    The ALPN select callback installed on every context of the ACME source.

    A client offering ``acme-tls/1`` for a host with a pending TLS-ALPN-01
    challenge gets the challenge certificate (swapped in on the connection, so
    other clients keep the real one); everyone else gets ``http/1.1`` when
    offered, or no ALPN at all.
    """

    log = Logger()

    def __init__(self, challenge_for, protocols=(b"http/1.1",)):
        self._challenge_for = challenge_for
        self._protocols = tuple(protocols)

    def __call__(self, connection, offered):
        from OpenSSL import SSL

        if ACME_TLS_ALPN in offered:
            name = connection.get_servername()
            pair = self._challenge_for(name.decode("ascii", "replace") if name else None)
            if pair is not None:
                key, cert = pair
                connection.use_certificate(cert)
                connection.use_privatekey(key)
                self.log.info("ACME tls-alpn-01 challenge answered for {name}", name=name)
                return ACME_TLS_ALPN
        for protocol in self._protocols:
            if protocol in offered:
                return protocol
        return SSL.NO_OVERLAPPING_PROTOCOLS
