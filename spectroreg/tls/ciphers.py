"""
``http.tls.ciphersuites`` and ``minimumtls``: Distribution's Go names mapped to OpenSSL's.

Distribution accepts the names of Go's ``crypto/tls`` (``tls.CipherSuites()``
and ``tls.InsecureCipherSuites()``). TLS 1.2-and-older suites become an
OpenSSL cipher list; TLS 1.3 suites an OpenSSL ciphersuites string. Unknown
names, and names this OpenSSL build cannot use, are configuration errors.
"""

from dataclasses import dataclass
from typing import Optional, Tuple

from spectroreg.config.errors import ConfigError
from spectroreg.config.tlsnames import LEGACY_VERSIONS, PROTOCOL_VERSIONS, TLS12_SUITES, TLS13_SUITES

# Distribution v3's defaults for TLS 1.2 (ECDHE + AEAD only).
DEFAULT_TLS12 = (
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
)
# TLS 1.3 in Go's order on machines with AES instructions, which is what
# Distribution negotiates: AES-128-GCM first (OpenSSL's own default puts
# AES-256-GCM first, about a third more work per byte on both ends for no
# practical gain). A client that lists ChaCha20 first (no AES instructions)
# still gets it: see spectroreg.tls.context (SSL_OP_PRIORITIZE_CHACHA).
DEFAULT_TLS13 = (
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
)
# TLS 1.0/1.1 have no AEAD suites: with such a minimum and no explicit list,
# these are added so old clients can really connect.
LEGACY_TLS10 = (
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-RSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES256-SHA",
)



@dataclass(frozen=True)
class CipherPolicy:
    """What a listener's contexts are given (OpenSSL syntax)."""

    minimum: str  # one of PROTOCOL_VERSIONS, possibly raised (see cipher_policy)
    cipher_list: Optional[str]  # for TLS <= 1.2; None: TLS 1.2 and older are off
    tls13_suites: Optional[str]  # TLS 1.3 suites, in order of preference
    notes: Tuple[str, ...] = ()


def openssl_names(go_names):
    """
    Split Go names into OpenSSL (TLS 1.2 list, TLS 1.3 list).

    @raise ConfigError: a name is not one of Go's.
    """
    tls12, tls13 = [], []
    for name in go_names:
        key = name.strip().upper()
        if key in TLS12_SUITES:
            target, bucket = TLS12_SUITES[key], tls12
        elif key in TLS13_SUITES:
            target, bucket = TLS13_SUITES[key], tls13
        else:
            raise ConfigError(
                "http.tls.ciphersuites: unknown cipher suite {!r} (use Go's names, "
                "e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 or TLS_AES_128_GCM_SHA256)".format(name)
            )
        if target not in bucket:
            bucket.append(target)
    return tls12, tls13


def cipher_policy(minimumtls="tls1.2", ciphersuites=()):
    """
    The OpenSSL settings for C{minimumtls} and C{ciphersuites} (Go names).

    When OpenSSL needs its security level lowered (TLS 1.0/1.1 handshakes
    are signed with SHA-1, which level 1 and up refuse) the cipher list ends
    with ``@SECLEVEL=0``. When the list names TLS 1.3 suites only, TLS 1.2
    and older are switched off (nothing else is allowed), and the minimum is
    raised to tls1.3.

    @raise ConfigError: unknown version or cipher name.
    """
    if minimumtls not in PROTOCOL_VERSIONS:
        raise ConfigError(
            "http.tls.minimumtls: {!r} is not one of {}".format(minimumtls, ", ".join(PROTOCOL_VERSIONS))
        )
    legacy = minimumtls in LEGACY_VERSIONS
    notes = []
    if ciphersuites:
        tls12, tls13 = openssl_names(ciphersuites)
    else:
        tls12 = list(DEFAULT_TLS12) + (list(LEGACY_TLS10) if legacy else [])
        tls13 = []
    if not tls13:
        tls13 = list(DEFAULT_TLS13)
    cipher_list = None
    if tls12:
        cipher_list = ":".join(tls12) + (":@SECLEVEL=0" if legacy else "")
    elif minimumtls != "tls1.3":
        notes.append(
            "http.tls.ciphersuites names only TLS 1.3 suites: TLS 1.2 and older are disabled"
        )
        minimumtls = "tls1.3"
    return CipherPolicy(
        minimum=minimumtls,
        cipher_list=cipher_list,
        tls13_suites=":".join(tls13) if tls13 else None,
        notes=tuple(notes),
    )
