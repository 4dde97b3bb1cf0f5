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

KNOWN_CHALLENGES = (TLS_ALPN_01, HTTP_01)


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


def check_settings(letsencrypt, tls=None):
    """
    The normalised hosts and challenge types, or a L{ConfigError} naming
    what is wrong.
    """
    hosts = []
    for host in letsencrypt.hosts or ():
        name = normalise_host(host)
        if not name or "/" in name or name.startswith(".") or " " in name:
            raise ConfigError("http.tls.letsencrypt.hosts: {!r} is not a host name".format(host))
        if name not in hosts:
            hosts.append(name)
    if not hosts:
        raise ConfigError(
            "http.tls.letsencrypt.hosts is empty: list the names to get certificates for "
            "(a Let's Encrypt setup without hosts would never obtain a certificate)"
        )
    if tls is not None and (tls.certificate or tls.key):
        raise ConfigError(
            "http.tls.certificate/key and http.tls.letsencrypt are both set: choose one"
        )
    types = []
    for kind in letsencrypt.challenges or ():
        kind = str(kind).lower()
        if kind not in KNOWN_CHALLENGES:
            raise ConfigError(
                "http.tls.letsencrypt.challenges: unknown challenge {!r} (known: {})".format(
                    kind, ", ".join(KNOWN_CHALLENGES)
                )
            )
        if kind == HTTP_01 and letsencrypt.httpaddr is None:
            continue
        if kind not in types:
            types.append(kind)
    if not types:
        raise ConfigError(
            "http.tls.letsencrypt: no usable challenge (http-01 needs httpaddr; "
            "challenges lists {})".format(list(letsencrypt.challenges or ()))
        )
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

    @param letsencrypt_settings: L{LetsEncryptSettings}.
    @param tls_settings: L{TLSSettings} (C{minimumtls} is applied to every
        context built).
    @param store: an L{ICertificateStore}; default: the directory
        C{cachefile} (a L{MemoryStore} when it is empty).
    @param transport: an L{IHTTPTransport}; default: HTTPS through
        C{Agent}, trusting C{directorycafile} when that setting exists and
        is set, else the system store (``SSL_CERT_FILE`` works).
    @raise ConfigError: empty C{hosts}, unknown challenge type, or
        C{certificate} set as well.
    """
    if reactor is None:
        from twisted.internet import reactor
    from .client import ACMEClient, AgentTransport
    from .service import ACMEIssuingService
    from .store import DirectoryStore, MemoryStore

    hosts, types = check_settings(letsencrypt_settings, tls_settings)
    check_cachefile(letsencrypt_settings.cachefile)
    directory_url = letsencrypt_settings.directoryurl or LETSENCRYPT_PRODUCTION
    if store is None:
        cachefile = letsencrypt_settings.cachefile
        store = DirectoryStore(cachefile, reactor) if cachefile else MemoryStore()
    if transport is None:
        transport = AgentTransport(
            reactor, ca_file=getattr(letsencrypt_settings, "directorycafile", None)
        )
    minimumtls = getattr(tls_settings, "minimumtls", None) or "tls1.2"
    policy = _listener_policy(tls_settings)
    reload_context_builder = None
    if policy is not None and tls_settings.clientcas:
        reload_context_builder = functools.partial(_rebuild_policy, tls_settings)

    source = ACMECertificateSource(
        hosts,
        minimumtls=minimumtls,
        clock=reactor,
        build_context=policy.build if policy is not None else None,
        reload_context_builder=reload_context_builder,
        reactor=reactor,
    )
    responders = {}
    http01_resource = None
    if TLS_ALPN_01 in types:
        responders[TLS_ALPN_01] = source.tls_alpn_responder
    if HTTP_01 in types:
        http01 = HTTP01Responder()
        responders[HTTP_01] = http01
        http01_resource = HTTP01Resource(http01)

    def make_client(account_key):
        return ACMEClient(
            directory_url,
            account_key,
            transport,
            reactor,
            email=letsencrypt_settings.email,
            poll_interval=poll_interval,
        )

    issuer = ACMEIssuingService(
        hosts,
        store,
        source,
        make_client,
        responders,
        types,
        reactor,
        retry_initial=retry_initial,
        retry_max=retry_max,
        directory_url=directory_url,
    )
    issuer.setName("acme")
    return ACMESetup(source=source, services=[issuer], http01_resource=http01_resource, issuer=issuer)
