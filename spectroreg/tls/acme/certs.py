"""
Keys, certificates and TLS contexts for the ACME source.

Everything here is pure (no I/O) and works on cryptography 38 and 50 and on
pyOpenSSL 23 and 26: keys are EC P-256 everywhere, so the TLS-ALPN-01
certificate, the self-signed fallback and the issued certificate share one
key type (under TLS 1.2 the certificate is picked before ALPN is seen).
"""

import datetime
import hashlib
import re
from dataclasses import dataclass
from typing import List, Tuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from spectroreg.config.tlsnames import PROTOCOL_VERSIONS

UTC = datetime.timezone.utc

# RFC 8737: id-pe-acmeIdentifier.
ACME_IDENTIFIER_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31")

_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----\r?\n?", re.DOTALL
)


def generate_key():
    """A new EC P-256 private key (cryptography)."""
    return ec.generate_private_key(ec.SECP256R1())


def key_to_pem(key) -> bytes:
    """
    PEM of C{key} in the ``EC PRIVATE KEY`` form, which is what Go's autocert
    writes and reads back.
    """
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def load_key(pem: bytes):
    return serialization.load_pem_private_key(pem, password=None)


def utc_from_seconds(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, UTC)


def not_before(cert) -> datetime.datetime:
    value = getattr(cert, "not_valid_before_utc", None)
    if value is None:  # cryptography < 42: naive UTC
        value = cert.not_valid_before.replace(tzinfo=UTC)
    return value


def not_after(cert) -> datetime.datetime:
    value = getattr(cert, "not_valid_after_utc", None)
    if value is None:
        value = cert.not_valid_after.replace(tzinfo=UTC)
    return value


def dns_names(cert) -> List[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [name.lower() for name in san.value.get_values_for_type(x509.DNSName)]


def make_csr_der(key, host: str) -> bytes:
    """A DER CSR for C{host} (SAN only: CAs ignore the subject)."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.DER)


def _self_signed(key, host: str, valid_from, valid_until, extensions=()):
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(valid_until)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(key, hashes.SHA256())


def fallback_bundle(host: str, now: datetime.datetime) -> "Bundle":
    """
    A self-signed certificate for C{host}, served until the CA's arrives, so
    the port answers from the start (clients see an untrusted certificate
    rather than a refused connection).
    """
    key = generate_key()
    cert = _self_signed(
        key,
        host,
        now - datetime.timedelta(minutes=5),
        now + datetime.timedelta(days=7),
        [(x509.BasicConstraints(ca=False, path_length=None), True)],
    )
    return Bundle(key=key, chain=[cert], fallback=True)


def tls_alpn_challenge(host: str, key_authorization: str):
    """
    The RFC 8737 challenge certificate for C{host}: its SAN is exactly that
    one name and it carries the critical acmeIdentifier extension holding the
    DER OCTET STRING of sha256(keyAuthorization).

    @return: (cryptography private key, cryptography certificate)
    """
    digest = hashlib.sha256(key_authorization.encode("ascii")).digest()
    key = generate_key()
    now = datetime.datetime.now(UTC)
    cert = _self_signed(
        key,
        host,
        now - datetime.timedelta(days=1),
        now + datetime.timedelta(days=7),
        [(x509.UnrecognizedExtension(ACME_IDENTIFIER_OID, b"\x04\x20" + digest), True)],
    )
    return key, cert


def split_pem(data: bytes) -> List[Tuple[str, bytes]]:
    """The PEM blocks of C{data} as (type, block bytes), in order."""
    return [(m.group(1).decode("ascii"), m.group(0)) for m in _PEM_BLOCK.finditer(data)]


@dataclass
class Bundle:
    """A private key and its certificate chain, leaf first."""

    key: object
    chain: List[object]
    fallback: bool = False

    @property
    def leaf(self):
        return self.chain[0]

    @property
    def not_before(self) -> datetime.datetime:
        return not_before(self.leaf)

    @property
    def not_after(self) -> datetime.datetime:
        return not_after(self.leaf)

    def covers(self, host: str) -> bool:
        return host.lower() in dns_names(self.leaf)

    def key_matches(self) -> bool:
        def spki(public_key):
            return public_key.public_bytes(
                serialization.Encoding.DER,
                serialization.PublicFormat.SubjectPublicKeyInfo,
            )

        return spki(self.key.public_key()) == spki(self.leaf.public_key())

    def usable_for(self, host: str, now: datetime.datetime) -> bool:
        """Whether this bundle may be served for C{host} at C{now}."""
        return (
            self.covers(host)
            and self.key_matches()
            and self.not_before <= now + datetime.timedelta(minutes=5)
            and now < self.not_after
        )

    def to_pem(self) -> bytes:
        """Go autocert's cache entry: the key PEM followed by the chain PEM."""
        return key_to_pem(self.key) + b"".join(
            cert.public_bytes(serialization.Encoding.PEM) for cert in self.chain
        )

    @classmethod
    def from_pem(cls, data: bytes) -> "Bundle":
        """
        Parse a cache entry (key first, then the chain, as autocert writes).
        @raise ValueError: when it is not one.
        """
        blocks = split_pem(data)
        if not blocks or "PRIVATE KEY" not in blocks[0][0]:
            raise ValueError("does not start with a private key")
        key = load_key(blocks[0][1])
        chain = [
            x509.load_pem_x509_certificate(block)
            for kind, block in blocks[1:]
            if kind == "CERTIFICATE"
        ]
        if not chain:
            raise ValueError("holds no certificate")
        return cls(key=key, chain=chain)

    @classmethod
    def from_key_and_chain(cls, key, chain_pem: bytes) -> "Bundle":
        chain = [
            x509.load_pem_x509_certificate(block)
            for kind, block in split_pem(chain_pem)
            if kind == "CERTIFICATE"
        ]
        if not chain:
            raise ValueError("the CA sent no certificate")
        return cls(key=key, chain=chain)


def renewal_time(valid_from: datetime.datetime, valid_until: datetime.datetime, margin: float = 0.0):
    """
    When to renew a certificate: at 2/3 of its lifetime or 30 days before it
    expires, whichever is sooner. The 30-day rule only applies while it falls
    after the first third of the lifetime (certificates of 45 days or more):
    a short-lived certificate (a few days, or seconds on a test CA) renews at
    2/3 rather than in a loop.

    @param margin: seconds that must be left before expiry when renewal
        starts (room for a failed attempt, its retry delay and the retry);
        earlier when needed, but never in the first third of the lifetime.
    """
    lifetime = valid_until - valid_from
    at = valid_from + lifetime * 2 / 3
    month_before = valid_until - datetime.timedelta(days=30)
    if month_before >= valid_from + lifetime / 3:
        at = min(at, month_before)
    if margin > 0:
        room = valid_until - datetime.timedelta(seconds=margin)
        at = min(at, max(room, valid_from + lifetime / 3))
    return at




def to_openssl(key=None, cert=None):
    """pyOpenSSL C{PKey}/C{X509} for cryptography objects (pyOpenSSL 23 needs them)."""
    from OpenSSL import crypto

    result = []
    if key is not None:
        result.append(crypto.PKey.from_cryptography_key(key))
    if cert is not None:
        result.append(crypto.X509.from_cryptography(cert))
    return result[0] if len(result) == 1 else tuple(result)


def build_context(bundle: Bundle, minimumtls: str = "tls1.2", alpn_select=None, configure=None):
    """
    A new server C{OpenSSL.SSL.Context} presenting C{bundle}.

    A fresh context is built for every certificate: pyOpenSSL >= 26.2 refuses
    changes to a context once a connection used it.

    @param alpn_select: installed as the ALPN select callback; it must be on
        every context because after an SNI switch OpenSSL asks the new one.
    @param configure: called with the context last, for the listener's own
        settings (cipher suites, client CAs).
    """
    from OpenSSL import SSL

    context = SSL.Context(SSL.TLS_METHOD)
    context.set_options(
        SSL.OP_NO_SSLv2 | SSL.OP_NO_SSLv3 | SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE
    )
    version = PROTOCOL_VERSIONS.get((minimumtls or "tls1.2").lower(), "TLS1_2_VERSION")
    context.set_min_proto_version(getattr(SSL, version))
    context.use_privatekey(to_openssl(key=bundle.key))
    context.use_certificate(to_openssl(cert=bundle.leaf))
    for cert in bundle.chain[1:]:
        context.add_extra_chain_cert(to_openssl(cert=cert))
    context.check_privatekey()
    if alpn_select is not None:
        context.set_alpn_select_callback(alpn_select)
    if configure is not None:
        configure(context)
    return context
