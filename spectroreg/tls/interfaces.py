"""The seam between the TLS listener and whatever provides certificates."""

from zope.interface import Attribute, Interface


class ICertificateSource(Interface):
    """
    Provides the certificate a TLS handshake presents.

    The file-based source (``http.tls.certificate``/``key``) and the ACME
    source (``http.tls.letsencrypt``) both implement it; the listener's
    connection creator asks it during the handshake (SNI), so a renewed or
    reloaded certificate is used by the next handshake without closing the
    listening port.
    """

    def context_for(server_name):
        """
        @param server_name: the SNI name sent by the client (str, lower case)
            or None when the client sent none.
        @return: an C{OpenSSL.SSL.Context} with certificate, chain and key
            loaded (and the listener's protocol settings applied), or None
            when this source has no certificate for that name (the handshake
            then fails, or falls back to the default context).
        """

    def alpn_challenge_for(server_name):
        """
        TLS-ALPN-01 (RFC 8737): the (private key, certificate) pair, as
        pyOpenSSL C{PKey}/C{X509}, to present when a client offers ALPN
        C{acme-tls/1} for C{server_name}, or None when no challenge is pending
        for that name. Sources that do not do ACME always return None.
        """


class IServerTLS(Interface):
    """What the service wires into a TLS listener (L{spectroreg.tls.server.make_server_tls})."""

    source = Attribute("The L{ICertificateSource} in use.")
    services = Attribute("C{IService}s to run alongside the listener (ACME issuing); a list.")
    http01_resource = Attribute("An C{IResource} answering HTTP-01 challenges, or None.")

    def wrap_factory(factory):
        """A factory serving C{factory}'s protocol over TLS."""

    def reload():
        """
        Re-read certificates and CAs (SIGHUP) without closing the port.

        @return: a Deferred firing with True when new material is in use,
            False when the old is kept. Never fails.
        """
