"""
The TLS names Distribution's configuration accepts, in one table each:
protocol versions, client authentication modes and Go's cipher suite names
with OpenSSL's name for each.

A leaf module (it imports nothing): configuration validation checks names
against these tables and spectroreg.tls turns them into OpenSSL settings, so
neither package imports the other for them.
"""

# minimumtls value -> the pyOpenSSL constant's name (SSL.TLS1_2_VERSION, ...).
PROTOCOL_VERSIONS = {
    "tls1.0": "TLS1_VERSION",
    "tls1.1": "TLS1_1_VERSION",
    "tls1.2": "TLS1_2_VERSION",
    "tls1.3": "TLS1_3_VERSION",
}
# Below this, handshakes are signed with SHA-1 and current clients refuse them.
LEGACY_VERSIONS = ("tls1.0", "tls1.1")

# Distribution v3's clientauth names (Go's tls.ClientAuthType).
CLIENT_AUTH_MODES = (
    "request-client-cert",
    "require-any-client-cert",
    "verify-client-cert-if-given",
    "require-and-verify-client-cert",
)
# The modes that verify a certificate against http.tls.clientcas.
VERIFYING_CLIENT_AUTH = ("verify-client-cert-if-given", "require-and-verify-client-cert")
DEFAULT_CLIENT_AUTH = "require-and-verify-client-cert"

# Go's crypto/tls names (tls.CipherSuites() and tls.InsecureCipherSuites()),
# which is what Distribution accepts in http.tls.ciphersuites.
# Go name -> OpenSSL name, for TLS 1.0-1.2.
TLS12_SUITES = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    # Go's older spellings of the two above.
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    # Go's "insecure" list.
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA": "DES-CBC3-SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA": "ECDHE-RSA-DES-CBC3-SHA",
    "TLS_RSA_WITH_RC4_128_SHA": "RC4-SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA": "ECDHE-RSA-RC4-SHA",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA": "ECDHE-ECDSA-RC4-SHA",
}

# TLS 1.3 suites have the same names in Go and OpenSSL.
TLS13_SUITES = {
    "TLS_AES_128_GCM_SHA256": "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384": "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256": "TLS_CHACHA20_POLY1305_SHA256",
}

GO_CIPHER_SUITES = tuple(TLS12_SUITES) + tuple(TLS13_SUITES)
