"""
The ACME certificate source: what the TLS listener asks during a handshake.

It holds, per configured host, the certificate currently served (the CA's, or
a self-signed fallback until the CA's arrives) and builds a new
C{SSL.Context} whenever that certificate changes, so renewals take effect at
the next handshake without touching the listening port or open connections.
"""

import time
from typing import Dict, Optional

from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from zope.interface import implementer

from spectroreg.interfaces import IReloadable

from ..interfaces import ICertificateSource
from . import certs
from .challenges import ALPNSelector, TLSALPN01Responder

log = Logger(namespace="spectroreg.tls.acme")


def normalise_host(name) -> Optional[str]:
    if not name:
        return None
    if isinstance(name, bytes):
        name = name.decode("ascii", "replace")
    return name.strip().lower().rstrip(".")


@implementer(ICertificateSource, IReloadable)
class ACMECertificateSource:
    """
    @ivar hosts: the configured names (lower case).
    @ivar configure_context: None, or a callable the TLS listener may set
        (before its first handshake) to apply its own settings -- cipher
        suites, client CAs -- to every context this source builds.
    """

    def __init__(
        self,
        hosts,
        tls_alpn_responder=None,
        minimumtls="tls1.2",
        configure_context=None,
        clock=None,
        build_context=None,
        reload_context_builder=None,
        reactor=None,
    ):
        self.hosts = tuple(normalise_host(h) for h in hosts)
        self.tls_alpn_responder = tls_alpn_responder or TLSALPN01Responder()
        self.minimumtls = minimumtls
        self.configure_context = configure_context
        # callable(cryptography key, chain) -> SSL.Context applying the
        # listener's whole policy (versions, ciphers, client CAs); None: ours.
        self._build_context = build_context
        # Blocking callable returning a new build_context from the files
        # (client CAs) again: what SIGHUP runs, in C{reactor}'s thread pool.
        self._reload_context_builder = reload_context_builder
        self._reactor = reactor
        self._clock = clock
        self._bundles: Dict[str, certs.Bundle] = {}
        self._contexts: Dict[str, object] = {}
        self._alpn = ALPNSelector(self.alpn_challenge_for)

    def _now(self):
        seconds = self._clock.seconds() if self._clock is not None else time.time()
        return certs.utc_from_seconds(seconds)

    def install(self, host, bundle: certs.Bundle):
        """Serve C{bundle} for C{host} from the next handshake on."""
        host = normalise_host(host)
        if host not in self.hosts:
            raise KeyError(host)
        self._bundles[host] = bundle
        self._contexts.pop(host, None)

    def reload(self):
        """
        Read the client CA files again (SIGHUP) and serve every later
        handshake under the new policy; the certificates stay those issued.

        @return: a Deferred firing with True when switched, False when
            there is nothing to re-read or the old policy was kept (the
            reason is logged).
        """
        if self._reload_context_builder is None:
            return defer.succeed(False)
        return defer.ensureDeferred(self._reload())

    async def _reload(self):
        reactor = self._reactor
        if reactor is None:
            from twisted.internet import reactor
        try:
            build_context = await deferToThreadPool(
                reactor, reactor.getThreadPool(), self._reload_context_builder)
        except Exception as error:
            log.error("TLS reload failed, keeping the current client CAs: {error}", error=str(error))
            return False
        self._build_context = build_context
        self._contexts.clear()
        log.info("TLS client CAs reloaded")
        return True

    def bundle_for(self, host) -> Optional[certs.Bundle]:
        return self._bundles.get(normalise_host(host))

    def context_for(self, server_name):
        host = normalise_host(server_name)
        if host is None:
            # No SNI: a client that connected by IP address (health checks,
            # Kubernetes probes). It gets the first host's certificate rather
            # than a failed handshake; it cannot verify it by name anyway.
            host = self.hosts[0]
        if host not in self.hosts:
            return None
        context = self._contexts.get(host)
        if context is None:
            bundle = self._bundles.get(host)
            if bundle is None:
                # Asked before the issuing service started: answer anyway.
                bundle = certs.fallback_bundle(host, self._now())
                self._bundles[host] = bundle
            if self._build_context is not None:
                context = self._build_context(bundle.key, list(bundle.chain))
                context.set_alpn_select_callback(self._alpn)
                if self.configure_context is not None:
                    self.configure_context(context)
            else:
                context = certs.build_context(
                    bundle, self.minimumtls, alpn_select=self._alpn, configure=self.configure_context
                )
            self._contexts[host] = context
        return context

    def alpn_challenge_for(self, server_name):
        host = normalise_host(server_name)
        if host not in self.hosts:
            return None
        return self.tls_alpn_responder.challenge_for(host)
