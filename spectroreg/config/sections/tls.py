"""The ``http.tls`` section: certificate files or Let's Encrypt, versions, ciphers, client CAs."""

from dataclasses import dataclass
from typing import Optional, Tuple

from spectroreg.config import tlsnames
from spectroreg.config.addresses import check_http_url, split_host_port
from spectroreg.config.messages import choices_text
from spectroreg.config import declare
from spectroreg.config.declare import STR, STRINGS, key, section

LETSENCRYPT_PRODUCTION = "https://acme-v02.api.letsencrypt.org/directory"
ACME_CHALLENGES = ("tls-alpn-01", "http-01")


@dataclass(frozen=True)
class LetsEncryptSettings:
    cachefile: str = key(STR, required=True)  # a directory (Go autocert's DirCache layout)
    hosts: Tuple[str, ...] = key(STRINGS, required=True)
    email: Optional[str] = key(STR)
    directoryurl: str = key(STR, LETSENCRYPT_PRODUCTION)
    # spectroreg extensions (Distribution ignores them):
    challenges: Tuple[str, ...] = key(STRINGS, ACME_CHALLENGES)
    httpaddr: Optional[str] = key(STR, ":80")  # plain HTTP listener for HTTP-01 + redirect; None: none


@dataclass(frozen=True)
class TLSSettings:
    certificate: Optional[str] = declare.key(STR)
    key: Optional[str] = declare.key(STR)
    clientcas: Tuple[str, ...] = declare.key(STRINGS, ())
    # Distribution v3 names (tlsnames.CLIENT_AUTH_MODES); None: the default
    # (require-and-verify-client-cert) when clientcas is set.
    clientauth: Optional[str] = declare.key(STR, choices=tlsnames.CLIENT_AUTH_MODES, what="client auth mode")
    minimumtls: str = declare.key(STR, "tls1.2", choices=tuple(tlsnames.PROTOCOL_VERSIONS), what="TLS version")
    ciphersuites: Tuple[str, ...] = declare.key(STRINGS, ())  # Go names, as written in the config
    letsencrypt: Optional[LetsEncryptSettings] = section(LetsEncryptSettings)


def tls_settings(check, section_values, path):
    """The checked C{http.tls} section, or None when TLS is off."""
    tls_path = path + ("tls",)
    if section_values.get("tls") is None:
        return None
    tls = check.mapping(section_values.get("tls"), tls_path)
    check.known(tls, tls_path)
    values = check.read_keys(TLSSettings, tls, tls_path, letsencrypt=None)
    for name in values["ciphersuites"]:
        if name.upper() not in tlsnames.GO_CIPHER_SUITES:
            check.fail(
                tls_path + ("ciphersuites",),
                "unknown cipher suite {!r} (use Go's names, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)".format(name),
            )
    values["ciphersuites"] = tuple(name.upper() for name in values["ciphersuites"])
    certificate, key_file = values["certificate"], values["key"]
    if tls.get("letsencrypt") is not None:
        values["letsencrypt"] = letsencrypt_settings(check, tls, tls_path)
        if certificate is not None:
            check.fail(tls_path + ("letsencrypt",), "cannot be used together with http.tls.certificate; choose one")
    if certificate is None and values["letsencrypt"] is None:
        if key_file is not None:
            check.fail(tls_path + ("certificate",), "required when http.tls.key is set")
        if tls:
            check.warn(
                tls_path,
                "neither certificate nor letsencrypt is set: serving plain HTTP, the other tls keys are ignored",
            )
        return None
    if certificate is not None and key_file is None:
        check.fail(tls_path + ("key",), "required when http.tls.certificate is set")
    if values["minimumtls"] in tlsnames.LEGACY_VERSIONS:
        check.warn(
            tls_path + ("minimumtls",),
            "{} is accepted but insecure and refused by current clients; use tls1.2 or tls1.3".format(
                values["minimumtls"]
            ),
        )
    clientauth = values["clientauth"]
    if clientauth in tlsnames.VERIFYING_CLIENT_AUTH and not values["clientcas"]:
        check.fail(tls_path + ("clientauth",), "{} needs http.tls.clientcas".format(clientauth))
    return TLSSettings(**values)


def letsencrypt_settings(check, tls, tls_path):
    """The checked C{http.tls.letsencrypt} section (L{LetsEncryptSettings})."""
    path = tls_path + ("letsencrypt",)
    le = check.mapping(tls.get("letsencrypt"), path)
    check.known(le, path)
    cachefile = check.read(le, path, "cachefile")
    hosts = check.read(le, path, "hosts")
    _check_hosts(check, path, hosts)
    email = check.read(le, path, "email")
    if email is not None and ("@" not in email or any(c.isspace() for c in email)):
        check.fail(path + ("email",), "expected an e-mail address, got {!r}".format(email))
    directoryurl = check.read(le, path, "directoryurl")
    check_http_url(check, path + ("directoryurl",), directoryurl, "the ACME directory URL")
    challenges = check.read(le, path, "challenges")
    if not challenges:
        check.fail(path + ("challenges",), "must not be empty (expected {})".format(choices_text(ACME_CHALLENGES)))
    for challenge in challenges:
        if challenge not in ACME_CHALLENGES:
            check.fail(
                path + ("challenges",),
                "unknown challenge {!r} (expected {})".format(challenge, choices_text(ACME_CHALLENGES)),
            )
    # Written as null or "": no plain HTTP listener.
    httpaddr = check.read(le, path, "httpaddr", default=None) if "httpaddr" in le else LetsEncryptSettings.httpaddr
    if httpaddr is not None:
        try:
            split_host_port(httpaddr)
        except ValueError as error:
            check.fail(path + ("httpaddr",), str(error))
    elif "http-01" in challenges:
        check.fail(path + ("httpaddr",), "required for the http-01 challenge (e.g. :80)")
    return LetsEncryptSettings(
        cachefile=cachefile,
        hosts=hosts,
        email=email,
        directoryurl=directoryurl,
        challenges=tuple(dict.fromkeys(challenges)),
        httpaddr=httpaddr,
    )


def _check_hosts(check, path, hosts):
    if not hosts:
        check.fail(
            path + ("hosts",),
            "required and must not be empty: without hosts no certificate would ever be issued",
        )
    for host in hosts:
        if not host or host.startswith(".") or "://" in host or "/" in host or any(c.isspace() for c in host):
            check.fail(path + ("hosts",), "expected host names such as registry.example.com, got {!r}".format(host))
        if "*" in host:
            check.fail(
                path + ("hosts",),
                "wildcard host {!r} cannot be validated with tls-alpn-01 or http-01".format(host),
            )
