"""
Let's Encrypt / ACME v2 for the TLS listener (``http.tls.letsencrypt``).

L{make_acme_source} turns the settings into an L{ACMESetup}: the certificate
source the TLS listener asks during handshakes, the issuing service the
daemon starts, and the HTTP-01 resource the plain HTTP listener mounts at
``/.well-known/acme-challenge``.
"""

import functools
import os
from dataclasses import dataclass, field
from typing import List, Optional

from ...config.errors import ConfigError
from ...config.settings import LETSENCRYPT_PRODUCTION
from .challenges import HTTP_01, TLS_ALPN_01, HTTP01Resource, HTTP01Responder
from .source import ACMECertificateSource, normalise_host

__all__ = ["ACMESetup", "make_acme_source"]


@dataclass
class ACMESetup:
    """
    @ivar source: the L{ICertificateSource} for the TLS listener.
    @ivar services: the services to start with the daemon (the issuing one).
    @ivar http01_resource: the resource for ``/.well-known/acme-challenge``
        on the plain HTTP listener, or None when HTTP-01 is not enabled.
    @ivar issuer: the L{ACMEIssuingService} itself (C{when_certs_valid()}).
    """

    source: ACMECertificateSource
    services: List[object] = field(default_factory=list)
    http01_resource: Optional[object] = None
    issuer: Optional[object] = None


def hosts_and_challenges(letsencrypt):
    """
    The names to get certificates for (normalised as SNI names are) and the
    challenge types that can be answered: HTTP-01 only with a plain HTTP
    listener. What is allowed was checked with the configuration
    (L{spectroreg.config.sections.tls}).
    """
    hosts = list(dict.fromkeys(normalise_host(host) for host in letsencrypt.hosts))
    types = [kind for kind in dict.fromkeys(letsencrypt.challenges)
             if not (kind == HTTP_01 and letsencrypt.httpaddr is None)]
    return hosts, types


def check_cachefile(cachefile):
    """
    Refuse a C{cachefile} that is a file: Distribution 2.8 kept its (ACME v1)
    state in one file, Distribution 3 and spectroreg keep a directory.
    """
    if cachefile and os.path.exists(cachefile) and not os.path.isdir(cachefile):
        raise ConfigError(
            "http.tls.letsencrypt.cachefile: {} is a file (Distribution 2.8's format, which "
            "cannot be reused); point it at a directory, e.g. a new one".format(cachefile)
        )


def _listener_policy(tls_settings):
    """
    The TLS listener's context policy (versions, cipher suites, client
    CAs), so ACME certificates are served under the same rules as files.
    """
    if tls_settings is None:
        return None
    try:
        from spectroreg.tls.context import ContextPolicy
    except ImportError:
        return None
    return ContextPolicy.from_settings(tls_settings)


def _rebuild_policy(tls_settings):
    """Blocking: the listener's policy read again from the files (SIGHUP)."""
    return _listener_policy(tls_settings).build


def _responders(source, types):
    """The responder of each challenge type, and the HTTP-01 resource (or None)."""
    responders = {}
    http01_resource = None
    if TLS_ALPN_01 in types:
        responders[TLS_ALPN_01] = source.tls_alpn_responder
    if HTTP_01 in types:
        http01 = HTTP01Responder()
        responders[HTTP_01] = http01
        http01_resource = HTTP01Resource(http01)
    return responders, http01_resource


def _certificate_source(hosts, tls_settings, reactor):
    """The source the TLS listener asks, under the listener's own context policy."""
    policy = _listener_policy(tls_settings)
    reload_context_builder = None
    if policy is not None and tls_settings.clientcas:
        reload_context_builder = functools.partial(_rebuild_policy, tls_settings)
    return ACMECertificateSource(
        hosts,
        minimumtls=getattr(tls_settings, "minimumtls", None) or "tls1.2",
        clock=reactor,
        build_context=policy.build if policy is not None else None,
        reload_context_builder=reload_context_builder,
        reactor=reactor,
    )


def make_acme_source(
    letsencrypt_settings,
    tls_settings,
    reactor=None,
    *,
    store=None,
    transport=None,
    retry_initial=10.0,
    retry_max=3600.0,
    poll_interval=1.0,
):
    """
    Build the ACME certificate source and its issuing service.

    @param letsencrypt_settings: L{LetsEncryptSettings}, as validated.
    @param tls_settings: L{TLSSettings} (C{minimumtls} is applied to every
        context built).
    @param store: an L{ICertificateStore}; default: the directory
        C{cachefile} (a L{MemoryStore} when it is empty).
    @param transport: an L{IHTTPTransport}; default: HTTPS through
        C{Agent}, trusting the system store (``SSL_CERT_FILE`` works).
    @raise ConfigError: C{cachefile} is a file.
    """
    if reactor is None:
        from twisted.internet import reactor
    from .client import ACMEClient, AgentTransport
    from .service import ACMEIssuingService
    from .store import DirectoryStore, MemoryStore

    hosts, types = hosts_and_challenges(letsencrypt_settings)
    check_cachefile(letsencrypt_settings.cachefile)
    directory_url = letsencrypt_settings.directoryurl or LETSENCRYPT_PRODUCTION
    if store is None:
        cachefile = letsencrypt_settings.cachefile
        store = DirectoryStore(cachefile, reactor) if cachefile else MemoryStore()
    if transport is None:
        transport = AgentTransport(reactor)
    source = _certificate_source(hosts, tls_settings, reactor)
    responders, http01_resource = _responders(source, types)
    def make_client(account_key):
        return ACMEClient(directory_url, account_key, transport, reactor,
                          email=letsencrypt_settings.email, poll_interval=poll_interval)

    issuer = ACMEIssuingService(
        hosts, store, source, make_client, responders, types, reactor,
        retry_initial=retry_initial, retry_max=retry_max, directory_url=directory_url,
    )
    issuer.setName("acme")
    return ACMESetup(source=source, services=[issuer], http01_resource=http01_resource, issuer=issuer)
