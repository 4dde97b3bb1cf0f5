"""
Building the listener's ``OpenSSL.SSL.Context`` objects from ``http.tls``.

A L{ContextPolicy} holds everything that is the same for every certificate a
listener serves: the minimum protocol version, cipher suites, client
certificate mode and client CAs. C{policy.build(key, chain)} makes a new,
never-used context for one certificate: the file-based source and the ACME
source both build their contexts this way, so every handshake gets the same
protocol settings whatever certificate it is given.

Contexts are never changed once built (pyOpenSSL >= 26.2 forbids changing a
used one): reloading builds new ones. The certificate objects are
C{cryptography} ones; pyOpenSSL < 24 needs its own types, converted here.
"""

import re
from dataclasses import dataclass
from typing import Optional, Tuple

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto

from spectroreg.config import tlsnames
from spectroreg.config.errors import ConfigError
from spectroreg.tls.ciphers import cipher_policy

_PROTOCOLS = {name: getattr(SSL, constant) for name, constant in tlsnames.PROTOCOL_VERSIONS.items()}

DEFAULT_CLIENT_AUTH = tlsnames.DEFAULT_CLIENT_AUTH


def _client_auth_mode(name):
    # Go's ClientAuthType: does it demand a certificate, does it verify one?
    demands = name.startswith("require")
    verifies = name in tlsnames.VERIFYING_CLIENT_AUTH
    return (SSL.VERIFY_PEER | (SSL.VERIFY_FAIL_IF_NO_PEER_CERT if demands else 0), verifies)


# Distribution v3's names (Go's tls.ClientAuthType) -> (verify mode, verifies?)
CLIENT_AUTH_MODES = {name: _client_auth_mode(name) for name in tlsnames.CLIENT_AUTH_MODES}

_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.DOTALL
)

# OpenSSL's SSL_OP_PRIORITIZE_CHACHA (not named by pyOpenSSL): with the
# server's order, ChaCha20 moves to the front for a client that lists it
# first (one without AES instructions), as Go does.
_OP_PRIORITIZE_CHACHA = 0x00200000

_OPTIONS = (
    _OP_PRIORITIZE_CHACHA
    | SSL.OP_NO_SSLv2
    | SSL.OP_NO_SSLv3
    | SSL.OP_NO_COMPRESSION
    | SSL.OP_CIPHER_SERVER_PREFERENCE
    | SSL.OP_SINGLE_ECDH_USE
    | SSL.OP_NO_RENEGOTIATION
)


def _accept_any(connection, certificate, errno, depth, ok):
    # request-client-cert / require-any-client-cert: Go does not verify.
    return True


def _openssl_call(method, value, convert):
    """Give C{value} (a cryptography object) to C{method}; older pyOpenSSL wants its own types."""
    try:
        return method(value)
    except TypeError:
        return method(convert(value))


def _as_x509(certificate):
    return crypto.X509.from_cryptography(certificate)


def _as_pkey(key):
    return crypto.PKey.from_cryptography_key(key)


def read_file(path, what):
    """Blocking: the bytes of C{path}, or a ConfigError naming it."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as error:
        raise ConfigError(
            "{}: cannot read {}: {}".format(what, path, error.strerror or error)
        ) from None


def parse_certificates(data, path, what):
    """Every PEM certificate in C{data}, in order (C{cryptography} objects)."""
    certificates = []
    for block in _PEM_CERTIFICATE.findall(data):
        try:
            certificates.append(x509.load_pem_x509_certificate(block))
        except ValueError as error:
            raise ConfigError("{}: bad certificate in {}: {}".format(what, path, error)) from None
    if not certificates:
        raise ConfigError("{}: no PEM certificate in {}".format(what, path))
    return certificates


def parse_private_key(data, path, what):
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigError(
            "{}: the private key in {} is encrypted; give an unencrypted key".format(what, path)
        ) from None
    except ValueError:
        raise ConfigError("{}: no usable PEM private key in {}".format(what, path)) from None


def _public_der(key):
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_key_pair(certificate_path, key_path):
    """
    Blocking: read and check ``http.tls.certificate`` (leaf first, then the
    chain) and ``http.tls.key``.

    @return: (private key, [leaf, intermediates...]) as C{cryptography} objects.
    @raise ConfigError: naming the file that is unreadable, malformed or
        does not match.
    """
    chain = parse_certificates(
        read_file(certificate_path, "http.tls.certificate"), certificate_path, "http.tls.certificate"
    )
    key = parse_private_key(read_file(key_path, "http.tls.key"), key_path, "http.tls.key")
    if _public_der(chain[0].public_key()) != _public_der(key.public_key()):
        raise ConfigError(
            "http.tls.key: the key in {} does not match the certificate in {}".format(
                key_path, certificate_path
            )
        )
    return key, chain


def load_client_cas(paths):
    """Blocking: every CA certificate in the ``http.tls.clientcas`` files."""
    cas = []
    for path in paths:
        cas.extend(parse_certificates(read_file(path, "http.tls.clientcas"), path, "http.tls.clientcas"))
    return tuple(cas)


@dataclass(frozen=True)
class ContextPolicy:
    """The protocol settings every context of one listener shares."""

    minimum: str = "tls1.2"
    cipher_list: Optional[str] = None
    tls13_suites: Optional[str] = None
    client_auth: Optional[str] = None  # a CLIENT_AUTH_MODES key, or None: no client certificates
    client_cas: Tuple[x509.Certificate, ...] = ()
    notes: Tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, tls_settings, client_cas=None):
        """
        Blocking (reads the client CA files unless C{client_cas} is given).

        @raise ConfigError: bad version, cipher name, client auth mode or CA file.
        """
        ciphers = cipher_policy(tls_settings.minimumtls, tls_settings.ciphersuites)
        notes = list(ciphers.notes)
        mode = tls_settings.clientauth
        if mode is not None and mode not in CLIENT_AUTH_MODES:
            raise ConfigError(
                "http.tls.clientauth: {!r} is not one of {}".format(mode, ", ".join(CLIENT_AUTH_MODES))
            )
        if tls_settings.clientcas:
            if client_cas is None:
                client_cas = load_client_cas(tls_settings.clientcas)
            mode = mode or DEFAULT_CLIENT_AUTH
        else:
            # As in Distribution: without clientcas, clientauth has no effect.
            if mode is not None:
                notes.append("http.tls.clientauth has no effect without http.tls.clientcas")
            mode, client_cas = None, ()
        return cls(
            minimum=ciphers.minimum,
            cipher_list=ciphers.cipher_list,
            tls13_suites=ciphers.tls13_suites,
            client_auth=mode,
            client_cas=tuple(client_cas),
            notes=tuple(notes),
        )

    def build(self, key, chain):
        """
        A new server context presenting C{chain} (leaf first) with C{key}.

        @param key: a C{cryptography} private key.
        @param chain: C{cryptography} certificates, leaf first.
        @raise ConfigError: OpenSSL refused a setting.
        """
        context = SSL.Context(SSL.TLS_METHOD)
        context.set_options(_OPTIONS)
        context.set_min_proto_version(_PROTOCOLS[self.minimum])
        try:
            if self.cipher_list is not None:
                context.set_cipher_list(self.cipher_list.encode("ascii"))
            if self.tls13_suites is not None:
                _set_tls13_suites(context, self.tls13_suites.encode("ascii"))
        except SSL.Error as error:
            raise ConfigError(
                "http.tls.ciphersuites: not supported by this OpenSSL: {}".format(error)
            ) from None
        _openssl_call(context.use_certificate, chain[0], _as_x509)
        for certificate in chain[1:]:
            _openssl_call(context.add_extra_chain_cert, certificate, _as_x509)
        _openssl_call(context.use_privatekey, key, _as_pkey)
        context.check_privatekey()
        # Needed for session resumption when client certificates are verified.
        context.set_session_id(b"spectroreg")
        if self.client_auth is not None:
            verify_mode, verifies = CLIENT_AUTH_MODES[self.client_auth]
            store = context.get_cert_store()
            for ca in self.client_cas:
                store.add_cert(_as_x509(ca))
                _openssl_call(context.add_client_ca, ca, _as_x509)
            context.set_verify(verify_mode, None if verifies else _accept_any)
            context.set_verify_depth(10)
        return context


def _set_tls13_suites(context, suites):
    setter = getattr(context, "set_tls13_ciphersuites", None)
    if setter is not None:
        setter(suites)
        return
    # pyOpenSSL 23 (Debian 12) has no wrapper; the binding it ships does.
    from OpenSSL._util import lib

    if not lib.SSL_CTX_set_ciphersuites(context._context, suites):
        raise SSL.Error([("", "SSL_CTX_set_ciphersuites", suites.decode("ascii"))])
