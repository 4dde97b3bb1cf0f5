"""
Let's Encrypt through the real daemon (``python -m spectroreg serve``)
against Debian's pebble: certificates obtained by TLS-ALPN-01 on the
registry's own TLS port and by HTTP-01 on its plain HTTP listener, images
pushed and pulled by skopeo verifying against pebble's root only, and a
restart that reuses the cache.
"""

import hashlib
import http.client
import os
import ssl
import time

from twisted.internet import reactor, task, threads

from tests.support.asynctest import async_test
from tests.support.daemon import daemon_for
from tests.support.images import Image, write_oci_layout
from tests.support.skopeo import Skopeo
from tests.test_acme_pebble import PebbleWorld, https_get, serial_of


def pull(port, root_pem, image, repository="acme/app", tag="1.0", connection=None):
    """
    Pull C{image} over TLS verified against C{root_pem} with the name
    ``localhost`` (a new connection unless one is given); check every byte.
    @return: the serial number of the certificate the server presented.
    """
    own = connection is None
    if own:
        context = ssl.create_default_context(cadata=root_pem.decode("ascii"))
        connection = http.client.HTTPSConnection("localhost", port, context=context, timeout=10)
    try:
        def get(path, accept=None):
            connection.request("GET", path, headers={"Accept": accept} if accept else {})
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise AssertionError("GET {} answered {}".format(path, response.status))
            return body

        manifest = get("/v2/{}/manifests/{}".format(repository, tag), image.manifest.media_type)
        if manifest != image.manifest.data:
            raise AssertionError("manifest differs")
        for blob in image.blobs():
            data = get("/v2/{}/blobs/{}".format(repository, blob.digest))
            if "sha256:" + hashlib.sha256(data).hexdigest() != blob.digest:
                raise AssertionError("blob {} differs".format(blob.digest))
        return serial_of(connection.sock.getpeercert(True))
    finally:
        if own:
            connection.close()


class DaemonWorld(PebbleWorld):
    """PebbleWorld plus the daemon: config, start, push, wait for a trusted certificate."""

    timeout = 180

    def daemon_config(self, **letsencrypt):
        values = {
            "cachefile": self.cachefile,
            "email": "admin@example.com",
            "hosts": ["localhost"],
            "directoryurl": self.pebble.directory_url,
            "httpaddr": "127.0.0.1:{}".format(self.http_port),
        }
        values.update(letsencrypt)
        return {
            "version": "0.1",
            "storage": {"inmemory": None},
            "http": {"addr": "127.0.0.1:{}".format(self.tls_port), "tls": {"letsencrypt": values}},
        }

    def make_daemon(self, config):
        # pebble's API certificate comes from a throw-away CA: trusted the
        # way docs/letsencrypt.md tells users to trust a private ACME CA.
        return daemon_for(
            self,
            config,
            port=self.tls_port,
            scheme="https",
            env={"SSL_CERT_FILE": self.pebble.api_ca_file},
            name="registry",
        )

    async def wait_for_certificate(self, root, seconds=30, daemon=None):
        """The leaf DER once the daemon serves a certificate chaining to C{root}."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                status, _, der = await threads.deferToThread(https_get, self.tls_port, "localhost", root, "/v2/")
                return status, der
            except Exception as e:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        "no trusted certificate after {} s ({!r}); log:\n{}".format(
                            seconds, e, daemon.log_text() if daemon else ""
                        )
                    )
            await task.deferLater(reactor, 0.25, lambda: None)

    async def push(self, root, image):
        certs_dir = os.path.abspath(self.mktemp())
        os.makedirs(certs_dir)
        with open(os.path.join(certs_dir, "ca.crt"), "wb") as f:
            f.write(root)
        skopeo = Skopeo(os.path.abspath(self.mktemp()))
        layout = write_oci_layout(os.path.abspath(self.mktemp()), image, "1.0")
        await threads.deferToThread(
            skopeo.run, "copy", "--preserve-digests", "--dest-cert-dir", certs_dir, "--retry-times", "0",
            "oci:{}:1.0".format(layout), "docker://localhost:{}/acme/app:1.0".format(self.tls_port),
        )


class DaemonACMETests(DaemonWorld):
    @async_test
    async def test_tls_alpn_push_pull_restart(self):
        await self.start_world()
        daemon = self.make_daemon(self.daemon_config(challenges=["tls-alpn-01"]))
        started = time.monotonic()
        await daemon.start_async(timeout=20)
        root = await self.pebble.root_pem()
        status, der = await self.wait_for_certificate(root, daemon=daemon)
        self.assertEqual(status, b"HTTP/1.1 200 OK")
        print("\ndaemon start to a trusted certificate: {:.2f} s".format(time.monotonic() - started))

        # skopeo trusts only pebble's root (cert dir), verifies TLS, pushes and pulls
        certs_dir = os.path.abspath(self.mktemp())
        os.makedirs(certs_dir)
        with open(os.path.join(certs_dir, "ca.crt"), "wb") as f:
            f.write(root)
        skopeo = Skopeo(os.path.abspath(self.mktemp()))
        image = Image("acme")
        layout = write_oci_layout(os.path.abspath(self.mktemp()), image, "1.0")
        reference = "docker://localhost:{}/acme/app:1.0".format(self.tls_port)
        await threads.deferToThread(
            skopeo.run, "copy", "--preserve-digests", "--dest-cert-dir", certs_dir,
            "--retry-times", "0", "oci:{}:1.0".format(layout), reference,
        )
        pulled = os.path.abspath(self.mktemp())
        await threads.deferToThread(
            skopeo.run, "copy", "--src-cert-dir", certs_dir, "--retry-times", "0", reference, "dir:" + pulled
        )
        with open(os.path.join(pulled, "manifest.json"), "rb") as f:
            self.assertEqual(f.read(), image.manifest.data)
        for blob in image.blobs():
            with open(os.path.join(pulled, blob.digest.split(":", 1)[1]), "rb") as f:
                self.assertEqual(f.read(), blob.data)

        # restart: the cached certificate is served, pebble sees no new order
        orders = self.pebble.orders()
        self.assertEqual(orders, 1)
        await daemon.stop_async()
        await daemon.start_async(timeout=20)
        status, _, der_again = await threads.deferToThread(https_get, self.tls_port, "localhost", root)
        self.assertEqual(status, b"HTTP/1.1 200 OK")
        self.assertEqual(serial_of(der_again), serial_of(der))
        await task.deferLater(reactor, 1.0, lambda: None)
        self.assertEqual(self.pebble.orders(), orders)
        self.assertEqual(sorted(os.listdir(self.cachefile)), ["acme_account+key", "localhost"])

    @async_test
    async def test_ca_down_at_start(self):
        """
        pebble is down when the daemon starts: it serves with its self-signed
        certificate, retries, and gets its certificate once pebble is up.
        """
        await self.start_world(start_pebble=False)
        daemon = self.make_daemon(self.daemon_config())
        await daemon.start_async(timeout=20)
        status, _, der = await threads.deferToThread(https_get, self.tls_port, "localhost", None)
        self.assertEqual(status, b"HTTP/1.1 200 OK")
        await task.deferLater(reactor, 1.0, lambda: None)
        self.assertIn("retrying in 10 s, serving a self-signed certificate", daemon.log_text())
        await self.pebble.start()
        root = await self.pebble.root_pem()
        status, der_real = await self.wait_for_certificate(root, seconds=30, daemon=daemon)
        self.assertEqual(status, b"HTTP/1.1 200 OK")
        self.assertNotEqual(serial_of(der_real), serial_of(der))

    @async_test
    async def test_http01_listener(self):
        await self.start_world()
        daemon = self.make_daemon(self.daemon_config(challenges=["http-01"]))
        await daemon.start_async(timeout=20)
        root = await self.pebble.root_pem()
        status, _ = await self.wait_for_certificate(root, daemon=daemon)
        self.assertEqual(status, b"HTTP/1.1 200 OK")
        self.assertIn("http-01", daemon.log_text())

        def plain_get():
            connection = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=5)
            try:
                connection.request("GET", "/v2/", headers={"Host": "localhost"})
                response = connection.getresponse()
                response.read()
                return response.status, response.getheader("Location")
            finally:
                connection.close()

        status, location = await threads.deferToThread(plain_get)
        self.assertEqual(status, 301)
        self.assertTrue(location.startswith("https://localhost"), location)
