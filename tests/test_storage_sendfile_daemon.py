"""
Blob downloads from the real daemon with filesystem storage, over plain TCP
(sent with sendfile) and over TLS (where sendfile would put unencrypted bytes
on the wire: the streaming producer must be used).
"""

import hashlib
import os
import ssl

from twisted.trial import unittest

from tests.support.daemon import minimal_config, start_daemon
from tests.support.images import Blob
from tests.support.paths import socket_path
from tests.support.pushing import push_blob
from tests.test_tls_server import PKI

NAME = "sendfile/blobs"


class _Downloads:
    def _storage(self):
        return {"filesystem": {"rootdirectory": os.path.abspath(self.mktemp())}}

    def _check_downloads(self, daemon):
        data = os.urandom(5 * 1024 * 1024 + 7)
        blob = Blob(data, "application/octet-stream")
        push_blob(daemon, NAME, blob)
        empty = Blob(b"", "application/octet-stream")
        push_blob(daemon, NAME, empty)
        path = "/v2/{}/blobs/{}".format(NAME, blob.digest)
        connection = daemon.connection(timeout=30)
        try:
            # One keep-alive connection: whole, a Range, then another request.
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read()
            self.assertEqual(response.status, 200)
            self.assertEqual(hashlib.sha256(body).hexdigest(), hashlib.sha256(data).hexdigest())
            connection.request("GET", path, headers={"Range": "bytes=4097-3000000"})
            response = connection.getresponse()
            body = response.read()
            self.assertEqual(response.status, 206)
            self.assertEqual(response.getheader("Content-Range"), "bytes 4097-3000000/{}".format(len(data)))
            self.assertEqual(body, data[4097:3000001])
            connection.request("HEAD", path)
            response = connection.getresponse()
            self.assertEqual(response.status, 200)
            self.assertEqual(response.getheader("Content-Length"), str(len(data)))
            self.assertEqual(response.read(), b"")
            connection.request("GET", "/v2/{}/blobs/{}".format(NAME, empty.digest))
            response = connection.getresponse()
            self.assertEqual((response.status, response.read()), (200, b""))
            connection.request("GET", "/v2/")
            response = connection.getresponse()
            response.read()
            self.assertEqual(response.status, 200)
        finally:
            connection.close()
        # Bytes sent are counted in the access log as before.
        daemon.wait_for_log("http.response.written={}".format(len(data)))
        missing = daemon.request("GET", "/v2/{}/blobs/sha256:{}".format(NAME, "0" * 64))
        self.assertEqual(missing.status, 404)


class PlainDownloadTests(_Downloads, unittest.TestCase):
    def test_downloads(self):
        daemon = start_daemon(self, minimal_config(storage=self._storage()))
        self._check_downloads(daemon)


class UnixSocketDownloadTests(_Downloads, unittest.TestCase):
    """A stream socket that is not TCP: the kernel sends to it all the same."""

    def test_downloads(self):
        path = socket_path(self)
        config = minimal_config(storage=self._storage(), http={"addr": path, "net": "unix"})
        daemon = start_daemon(self, config, listen=False, unix_socket=path)
        self._check_downloads(daemon)


class TLSDownloadTests(_Downloads, unittest.TestCase):
    def test_downloads(self):
        pki = PKI(os.path.abspath(self.mktemp()))
        root = pki.ca("Root")
        root_path = pki.write_ca("root.pem", root)
        cert_path, key_path = pki.write_pair("server", pki.leaf(root, "localhost"))
        config = minimal_config(storage=self._storage(),
                                http={"tls": {"certificate": cert_path, "key": key_path}})
        context = ssl.create_default_context(cafile=root_path)
        context.check_hostname = False
        daemon = start_daemon(self, config, scheme="https", ssl_context=context)
        self._check_downloads(daemon)


class SlowTLSReaderTests(unittest.TestCase):
    """A TLS client that reads slowly: the daemon's memory stays bounded."""

    def test_memory_bounded(self):
        import socket
        import time

        from tests.support.reference import read_status_bytes

        pki = PKI(os.path.abspath(self.mktemp()))
        root = pki.ca("Root")
        root_path = pki.write_ca("root.pem", root)
        cert_path, key_path = pki.write_pair("server", pki.leaf(root, "localhost"))
        config = minimal_config(storage={"filesystem": {"rootdirectory": os.path.abspath(self.mktemp())}},
                                http={"tls": {"certificate": cert_path, "key": key_path}})
        context = ssl.create_default_context(cafile=root_path)
        context.check_hostname = False
        daemon = start_daemon(self, config, scheme="https", ssl_context=context)
        blob = Blob(os.urandom(48 * 1024 * 1024), "application/octet-stream")
        push_blob(daemon, NAME, blob)
        pid = daemon.process.pid
        baseline = read_status_bytes(pid, "VmRSS")

        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # before the handshake
        raw.settimeout(30)
        raw.connect((daemon.host, daemon.port))
        connection = context.wrap_socket(raw, server_hostname="localhost")
        try:
            connection.sendall("GET /v2/{}/blobs/{} HTTP/1.1\r\nHost: x\r\n\r\n".format(
                NAME, blob.digest).encode())
            received = 0
            highest = baseline
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                received += len(connection.recv(65536))
                highest = max(highest, read_status_bytes(pid, "VmRSS"))
                time.sleep(0.05)
        finally:
            connection.close()
        # The reader took a few MiB of 48: the rest stayed on disk, not in memory.
        self.assertLess(received, 24 * 1024 * 1024)
        self.assertLess(highest - baseline, 16 * 1024 * 1024,
                        "RSS grew from {} to {}".format(baseline, highest))
