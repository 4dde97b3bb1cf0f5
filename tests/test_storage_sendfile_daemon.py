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
