"""
The certificate source of ``http.tls.certificate`` / ``key`` / ``clientcas``.

One context serves every server name (the certificate's own names decide
what clients accept). L{FileCertificateSource.reload} reads the files again
in a thread and switches to a newly built context; when anything is wrong
the old context stays and the reason is logged.
"""

from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from zope.interface import implementer

from spectroreg.config.errors import ConfigError
from spectroreg.tls.context import ContextPolicy, load_key_pair
from spectroreg.interfaces import IReloadable
from spectroreg.tls.interfaces import ICertificateSource

log = Logger(namespace="spectroreg.tls.files")


def build_file_context(tls_settings):
    """
    Blocking: read the certificate, key and client CA files and build a context.

    @return: (C{OpenSSL.SSL.Context}, L{ContextPolicy}).
    @raise ConfigError: naming the file at fault.
    """
    if not tls_settings.certificate or not tls_settings.key:
        raise ConfigError("http.tls: both certificate and key must be set")
    policy = ContextPolicy.from_settings(tls_settings)
    key, chain = load_key_pair(tls_settings.certificate, tls_settings.key)
    return policy.build(key, chain), policy


@implementer(ICertificateSource, IReloadable)
class FileCertificateSource:
    """
    @param tls_settings: L{spectroreg.config.settings.TLSSettings}.
    @raise ConfigError: at construction, when a file is unreadable or the
        key does not match the certificate.
    """

    def __init__(self, tls_settings, reactor=None):
        if reactor is None:
            from twisted.internet import reactor
        self._reactor = reactor
        self._settings = tls_settings
        self._context, self.policy = build_file_context(tls_settings)

    def context_for(self, server_name):
        return self._context

    def alpn_challenge_for(self, server_name):
        return None

    def reload(self):
        """
        Read the files again (in a thread) and switch to the new material.

        @return: a Deferred firing with True when switched, False when the
            old material was kept (the reason is logged).
        """
        return defer.ensureDeferred(self._reload())

    async def _reload(self):
        try:
            context, policy = await deferToThreadPool(
                self._reactor, self._reactor.getThreadPool(), build_file_context, self._settings
            )
        except Exception as error:
            log.error(
                "TLS reload failed, keeping the current certificate: {error}",
                error=str(error) if isinstance(error, ConfigError) else repr(error),
            )
            return False
        self._context, self.policy = context, policy
        log.info(
            "TLS certificate {certificate} and client CAs reloaded",
            certificate=self._settings.certificate,
        )
        return True
