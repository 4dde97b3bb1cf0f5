"""The seams inside the ACME package: where certificates are kept, how HTTP is sent."""

from zope.interface import Interface


class ICertificateStore(Interface):
    """
    Keeps the ACME account key and one entry per host (its private key PEM
    followed by its certificate chain PEM), as Go autocert's cache does.
    Every method returns a Deferred.
    """

    def load_account_key():
        """@return: Deferred firing with the account key PEM (bytes) or None."""

    def save_account_key(pem):
        """Store the account key PEM. @return: Deferred firing with None."""

    def load(host):
        """@return: Deferred firing with the host's entry (bytes) or None."""

    def save(host, pem):
        """Store (replace) the host's entry. @return: Deferred firing with None."""


class IHTTPTransport(Interface):
    """The few HTTP requests an ACME client sends."""

    def request(method, url, headers, body):
        """
        @param method: ``GET``, ``HEAD`` or ``POST``.
        @param headers: dict of str name to str value.
        @param body: bytes or None.
        @return: Deferred firing with an L{HTTPResponse}; fails with
            L{spectroreg.tls.acme.errors.CAUnavailableError} when the CA
            cannot be reached or does not answer in time. Cancelling it
            aborts the request.
        """
