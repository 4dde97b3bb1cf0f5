"""
``bench/floors.py`` runs end to end with tiny sizes: a TLS sender and a
receiving process on 127.0.0.1, and the fsyncs. The figures themselves are
not checked (the machine is shared), only that each was measured.
"""

import os
import re
import subprocess
import sys

from twisted.trial import unittest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO_ROOT, "bench", "floors.py")


class FloorsTests(unittest.TestCase):
    def test_measures_tls_and_fsync(self):
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        completed = subprocess.run(
            [sys.executable, SCRIPT, "--size", "8M", "--count", "5", "--dir", directory],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120,
        )
        output = completed.stdout.decode("utf-8", "replace")
        self.assertEqual(completed.returncode, 0, output)
        # The daemon's context: AES-128-GCM first, as Distribution negotiates;
        # sent as our TLS layer does (memory BIO), then by OpenSSL on the socket.
        for way in ("memory BIO", "socket BIO"):
            self.assertRegex(output, r"TLS over 127\.0\.0\.1 \(TLS_AES_128_GCM_SHA256, 256 KiB writes, {}\): "
                                     r"\d+ MB/s; CPU per GB: sender \d+\.\d{{3}} s, receiver \(Python ssl\) "
                                     r"\d+\.\d{{3}} s".format(way))
        for name in ("small file, no fsync", "small file, fsync", "mkdir, fsync of the directory"):
            self.assertRegex(output, r"{} under {}: \d+ us CPU, \d+ us".format(re.escape(name), re.escape(directory)))
        # Its work directory is gone.
        self.assertEqual(os.listdir(directory), [])
