"""The Go → OpenSSL cipher suite table, and the policy built from minimumtls/ciphersuites."""

from OpenSSL import SSL
from twisted.internet import utils
from twisted.trial import unittest

from spectroreg.config.errors import ConfigError
from spectroreg.tls.ciphers import TLS12_SUITES, TLS13_SUITES, cipher_policy, openssl_names
from tests.support.asynctest import async_test
from tests.support.tlsmemory import connected
from tests.support.requirements import require_binary

# Go's legacy spellings: the standard (IANA) name has a _SHA256 suffix.
_ALIASES = {
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
}
# Suites Debian's OpenSSL 3 no longer ships (RC4, 3DES): known names, refused when used.
_GONE = {
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
}


class TableTests(unittest.TestCase):
    @async_test
    async def test_every_go_name_maps_to_openssl_suite_of_same_standard_name(self):
        """OpenSSL's own table (openssl ciphers -stdname) confirms each mapping."""
        openssl = require_binary("openssl")
        output = await utils.getProcessOutput(
            openssl, ("ciphers", "-stdname", "ALL:COMPLEMENTOFALL:@SECLEVEL=0"), env={}
        )
        standard = {}
        for line in output.decode().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[1] == "-":
                standard[parts[2]] = parts[0]
        for go_name, openssl_name in sorted(TLS12_SUITES.items()) + sorted(TLS13_SUITES.items()):
            if go_name in _GONE:
                continue
            self.assertEqual(
                standard.get(openssl_name), _ALIASES.get(go_name, go_name), (go_name, openssl_name)
            )

    def test_mapping_examples(self):
        tls12, tls13 = openssl_names(
            ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "tls_aes_128_gcm_sha256",
             "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"]
        )
        self.assertEqual(tls12, ["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-CHACHA20-POLY1305"])
        self.assertEqual(tls13, ["TLS_AES_128_GCM_SHA256"])

    def test_unknown_name_is_config_error(self):
        error = self.assertRaises(ConfigError, openssl_names, ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256"])
        self.assertIn("ECDHE-RSA-AES128-GCM-SHA256", str(error))
        self.assertIn("http.tls.ciphersuites", str(error))

    def test_gone_suites_refused_when_used(self):
        from tests.test_tls_server import PKI
        from spectroreg.tls.context import ContextPolicy
        from spectroreg.config.settings import TLSSettings

        pki = PKI(self.mktemp())
        leaf = pki.leaf(pki.ca("CA"))
        policy = ContextPolicy.from_settings(TLSSettings(ciphersuites=("TLS_RSA_WITH_RC4_128_SHA",)))
        error = self.assertRaises(ConfigError, policy.build, leaf.key, [leaf.certificate])
        self.assertIn("not supported", str(error))


class PolicyTests(unittest.SynchronousTestCase):
    def test_defaults(self):
        policy = cipher_policy()
        self.assertEqual(policy.minimum, "tls1.2")
        self.assertIn("ECDHE-ECDSA-AES128-GCM-SHA256", policy.cipher_list)
        self.assertNotIn("SECLEVEL", policy.cipher_list)
        self.assertNotIn("-SHA:", policy.cipher_list + ":")
        self.assertEqual(policy.tls13_suites,
                         "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256")

    def test_tls12_names_keep_the_tls13_defaults(self):
        policy = cipher_policy("tls1.2", ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",))
        self.assertEqual(policy.cipher_list, "ECDHE-RSA-AES128-GCM-SHA256")
        self.assertTrue(policy.tls13_suites.startswith("TLS_AES_128_GCM_SHA256:"))

    def test_old_versions_lower_security_level_and_add_cbc(self):
        for version in ("tls1.0", "tls1.1"):
            policy = cipher_policy(version)
            self.assertTrue(policy.cipher_list.endswith(":@SECLEVEL=0"))
            self.assertIn("ECDHE-RSA-AES128-SHA", policy.cipher_list)

    def test_only_tls13_names_disable_tls12(self):
        policy = cipher_policy("tls1.2", ("TLS_AES_256_GCM_SHA384",))
        self.assertEqual((policy.minimum, policy.cipher_list), ("tls1.3", None))
        self.assertEqual(policy.tls13_suites, "TLS_AES_256_GCM_SHA384")
        self.assertEqual(len(policy.notes), 1)

    def test_every_protocol_version_builds(self):
        for version in ("tls1.0", "tls1.1", "tls1.2", "tls1.3"):
            policy = cipher_policy(version, ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "TLS_CHACHA20_POLY1305_SHA256"))
            context = SSL.Context(SSL.TLS_METHOD)
            context.set_cipher_list(policy.cipher_list.encode())


class NegotiatedSuiteTests(unittest.SynchronousTestCase):
    """
    What a built server context negotiates over TLS 1.3 (a handshake in
    memory with a pyOpenSSL client offering the given suites in order).
    """

    def negotiate(self, client_suites):
        from tests.test_tls_server import PKI
        from spectroreg.config.settings import TLSSettings
        from spectroreg.tls.context import ContextPolicy, _set_tls13_suites

        pki = PKI(self.mktemp())
        leaf = pki.leaf(pki.ca("CA"))
        server_context = ContextPolicy.from_settings(TLSSettings()).build(leaf.key, [leaf.certificate])
        client_context = SSL.Context(SSL.TLS_METHOD)
        client_context.set_min_proto_version(SSL.TLS1_3_VERSION)
        _set_tls13_suites(client_context, client_suites.encode("ascii"))
        server, _ = connected(server_context, client_context)
        return server.get_cipher_name()

    def test_aes128_first_as_go(self):
        """What Python's ssl and OpenSSL clients offer first (AES-256) is not taken."""
        self.assertEqual(
            self.negotiate("TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"),
            "TLS_AES_128_GCM_SHA256",
        )

    def test_chacha_for_a_client_that_prefers_it(self):
        self.assertEqual(
            self.negotiate("TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"),
            "TLS_CHACHA20_POLY1305_SHA256",
        )

    def test_a_client_offering_only_aes256_gets_it(self):
        self.assertEqual(self.negotiate("TLS_AES_256_GCM_SHA384"), "TLS_AES_256_GCM_SHA384")
