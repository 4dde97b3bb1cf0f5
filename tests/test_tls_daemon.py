"""
The real daemon with ``http.tls`` (chain, client CAs, minimumtls) and
htpasswd, driven by Debian's curl and openssl s_client.
"""

import os
import ssl
import subprocess
import time

from twisted.trial import unittest

from tests.support.daemon import minimal_config, start_daemon
from tests.support.requirements import require_binary
from tests.test_auth_daemon import write_htpasswd
from tests.test_tls_server import PKI


class TLSDaemonTests(unittest.TestCase):
    def setUp(self):
        self.curl = require_binary("curl")
        self.openssl = require_binary("openssl")
        self.pki = pki = PKI(os.path.abspath(self.mktemp()))
        root = pki.ca("Root")
        self.intermediate = pki.ca("Intermediate", issuer=root)
        self.root_path = pki.write_ca("root.pem", root)
        self.cert_path, self.key_path = pki.write_pair(
            "server", pki.leaf(self.intermediate, "localhost"), chain=[self.intermediate]
        )
        client_ca, other_ca = pki.ca("Client CA"), pki.ca("Other CA")
        self.client_ca_path = pki.write_ca("clients.pem", client_ca)
        self.good = pki.write_pair("good", pki.leaf(client_ca, "alice", client=True))
        self.bad = pki.write_pair("bad", pki.leaf(other_ca, "mallory", client=True))
        self.htpasswd = os.path.join(pki.directory, "htpasswd")
        write_htpasswd(self.htpasswd, {"alice": "wonderland"})
        config = minimal_config(
            http={
                "tls": {
                    "certificate": self.cert_path,
                    "key": self.key_path,
                    "clientcas": self.client_ca_path,  # the scalar form
                    "minimumtls": "tls1.2",
                }
            },
            auth={"htpasswd": {"realm": "tls realm", "path": self.htpasswd}},
        )
        probe = ssl.create_default_context(cafile=self.root_path)
        probe.check_hostname = False
        probe.load_cert_chain(*self.good)
        self.daemon = start_daemon(self, config, scheme="https", ssl_context=probe)

    def curl_run(self, *args):
        port = self.daemon.port
        argv = [
            self.curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
            "--resolve", "localhost:{}:127.0.0.1".format(port),
        ] + list(args) + ["https://localhost:{}/v2/".format(port)]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        return result.returncode, result.stdout, result.stderr

    def test_curl_client_certificates_and_basic_auth(self):
        cert, key = self.good
        # Only the root is trusted: the intermediate must come from the server.
        code, status, err = self.curl_run("--cacert", self.root_path, "--cert", cert, "--key", key,
                                          "-u", "alice:wonderland")
        self.assertEqual((code, status), (0, "200"), err)
        code, status, err = self.curl_run("--cacert", self.root_path, "--cert", cert, "--key", key)
        self.assertEqual((code, status), (0, "401"), err)
        code, status, err = self.curl_run("--cacert", self.root_path, "--cert", cert, "--key", key,
                                          "-u", "alice:wrong")
        self.assertEqual((code, status), (0, "401"), err)
        # No client certificate, or one from another CA: no HTTP answer at all.
        code, status, err = self.curl_run("--cacert", self.root_path, "-u", "alice:wonderland")
        self.assertNotEqual(code, 0)
        self.assertEqual(status, "000")
        bad_cert, bad_key = self.bad
        code, status, err = self.curl_run("--cacert", self.root_path, "--cert", bad_cert, "--key", bad_key,
                                          "-u", "alice:wonderland")
        self.assertNotEqual(code, 0)
        self.assertEqual(status, "000")

    def s_client(self, *flags):
        cert, key = self.good
        argv = [self.openssl, "s_client", "-connect", "127.0.0.1:{}".format(self.daemon.port),
                "-servername", "localhost", "-CAfile", self.root_path, "-cert", cert, "-key", key,
                "-cipher", "DEFAULT:@SECLEVEL=0", "-showcerts"] + list(flags)
        result = subprocess.run(argv, input=b"", capture_output=True, timeout=30)
        return result.returncode, (result.stdout + result.stderr).decode("utf-8", "replace")

    def test_s_client_versions_and_chain(self):
        code, output = self.s_client("-tls1_1")
        self.assertNotEqual(code, 0, output)
        code, output = self.s_client("-tls1_2")
        self.assertEqual(code, 0, output)
        self.assertIn("Protocol  : TLSv1.2", output)
        self.assertIn("Verify return code: 0 (ok)", output)
        self.assertEqual(output.count("-----BEGIN CERTIFICATE-----"), 2)
        self.assertIn("CN = Intermediate", output)

    def test_sighup_swaps_certificate(self):
        new_leaf = self.pki.leaf(self.intermediate, "localhost")
        self.pki.write_pair("server", new_leaf, chain=[self.intermediate])
        self.daemon.reload()
        wanted = "{:X}".format(new_leaf.certificate.serial_number)
        deadline = time.monotonic() + 10
        while True:
            code, output = self.s_client()
            if code == 0 and self._serial(output) == wanted:
                break
            self.assertLess(time.monotonic(), deadline, output)
            time.sleep(0.1)
        self.assertTrue(self.daemon.running)

    def _serial(self, output):
        begin = output.index("-----BEGIN CERTIFICATE-----")
        end = output.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
        from cryptography import x509

        certificate = x509.load_pem_x509_certificate(output[begin:end].encode())
        return "{:X}".format(certificate.serial_number)
