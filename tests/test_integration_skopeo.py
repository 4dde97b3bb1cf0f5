"""
The real daemon, driven by Debian's skopeo over real HTTP.

Images made by ``tests.support.images`` (a three-layer image, a
three-platform index, their Docker schema 2 twins) are copied into a
registry on 127.0.0.1 and back out, and every digest is compared with what
was built. The same tests run against spectroreg on filesystem and
in-memory storage, and against Debian's ``docker-registry`` (which proves
the tests themselves).
"""

import json
import os
import socket
import ssl
import threading
import time

import bcrypt
from twisted.trial import unittest

from tests.support import images
from tests.support.rawhttp import request
from tests.support.registries import start_registry
from tests.support.skopeo import Skopeo, SkopeoError


class SkopeoRoundTripMixin(object):
    """Copy in, copy out, compare digests. Subclasses set C{kind} and C{storage}."""

    kind = None
    storage = "filesystem"

    def setUp(self):
        self.work = os.path.abspath(self.mktemp())
        os.makedirs(self.work)
        self.root = os.path.join(self.work, "root") if self.storage == "filesystem" else None
        self.skopeo = Skopeo(os.path.join(self.work, "skopeo"))
        self.server = self.start_server()

    def start_server(self, delete=True, name="server", htpasswd=None):
        server = start_registry(self.kind, self.root, os.path.join(self.work, name), delete=delete,
                                htpasswd=htpasswd)
        self.addCleanup(server.kill)
        return server

    def ref(self, repository, tag=None, server=None):
        server = server or self.server
        return "docker://{}/{}{}".format(server.netloc, repository, ":" + tag if tag else "")

    def oci(self, artifact, tag):
        path = os.path.join(self.work, "in-{}".format(artifact.digest[7:19]))
        if not os.path.exists(path):
            images.write_oci_layout(path, artifact, tag)
        return "oci:{}:{}".format(path, tag)

    def assert_oci_layout_holds(self, path, tag, artifact):
        """The layout at C{path} holds exactly C{artifact}'s bytes under C{tag}."""
        descriptor, blobs = images.read_oci_layout(path, tag)
        self.assertEqual(descriptor["digest"], artifact.digest)
        self.assertEqual(descriptor["mediaType"], artifact.media_type)
        expected = {blob.digest: blob.data for blob in artifact.all_blobs()}
        self.assertEqual(sorted(blobs), sorted(expected))
        for digest, data in expected.items():
            self.assertTrue(blobs[digest] == data, "content of {} differs".format(digest))

    def assert_blobs_on_disk(self, artifact):
        """With filesystem storage every blob sits at Distribution's path."""
        if self.root is None:
            return
        for blob in artifact.all_blobs():
            hexdigest = blob.digest.split(":", 1)[1]
            path = os.path.join(self.root, "docker", "registry", "v2", "blobs", "sha256",
                                hexdigest[:2], hexdigest, "data")
            with open(path, "rb") as f:
                self.assertTrue(f.read() == blob.data, "{} differs on disk".format(path))

    def test_multi_layer_image_round_trip(self):
        """A three-layer OCI image goes in and comes back out with the same digests."""
        image = images.Image("skopeo-image")
        self.skopeo.copy(self.oci(image, "v1"), self.ref("library/app", "v1"))
        out = os.path.join(self.work, "out")
        self.skopeo.copy(self.ref("library/app", "v1"), "oci:{}:v1".format(out))
        self.assert_oci_layout_holds(out, "v1", image)
        raw = self.skopeo.inspect_raw(self.ref("library/app", "v1"))
        self.assertEqual(raw, image.manifest.data)
        by_digest = self.skopeo.inspect_raw(self.ref("library/app") + "@" + image.digest)
        self.assertEqual(by_digest, image.manifest.data)
        self.assert_blobs_on_disk(image)

    def test_multi_arch_index_round_trip(self):
        """A three-platform OCI index copied with --all keeps every digest both ways."""
        index = images.Index("skopeo-index")
        self.skopeo.copy(self.oci(index, "multi"), self.ref("team/multi", "multi"), all_images=True)
        out = os.path.join(self.work, "out")
        self.skopeo.copy(self.ref("team/multi", "multi"), "oci:{}:multi".format(out),
                         all_images=True)
        self.assert_oci_layout_holds(out, "multi", index)
        self.assertEqual(self.skopeo.inspect_raw(self.ref("team/multi", "multi")),
                         index.manifest.data)
        for image in index.images:
            raw = self.skopeo.inspect_raw(self.ref("team/multi") + "@" + image.digest)
            self.assertEqual(raw, image.manifest.data)
        self.assert_blobs_on_disk(index)

    def test_docker_schema2_round_trip(self):
        """Docker schema 2 manifests and manifest lists are stored and served byte for byte."""
        image = images.Image("skopeo-docker", flavour="docker")
        index = images.Index("skopeo-docker-list", flavour="docker")
        image_dir = images.write_dir_layout(os.path.join(self.work, "d-image"), image)
        list_dir = images.write_dir_layout(os.path.join(self.work, "d-list"), index)
        self.skopeo.copy("dir:" + image_dir, self.ref("docker/image", "v2"))
        self.skopeo.copy("dir:" + list_dir, self.ref("docker/list", "v2"), all_images=True)
        for artifact, repository in ((image, "docker/image"), (index, "docker/list")):
            out = os.path.join(self.work, "out-" + repository.replace("/", "-"))
            self.skopeo.copy(self.ref(repository, "v2"), "dir:" + out, all_images=True)
            top, blobs = images.read_dir_layout(out)
            self.assertEqual(top, artifact.manifest.data)
            self.assertEqual(sorted(blobs), sorted(b.digest for b in artifact.all_blobs()))
            inspected = self.skopeo.inspect(self.ref(repository, "v2")) if artifact is image else None
            if inspected is not None:
                self.assertEqual(inspected["Digest"], image.digest)
                self.assertEqual(inspected["Layers"], [layer.digest for layer in image.layers])

    def test_convert_to_schema2(self):
        """skopeo --format v2s2 pushes a converted manifest; what it pushed is what is served."""
        image = images.Image("skopeo-convert")
        self.skopeo.copy(self.oci(image, "v1"), self.ref("convert/me", "v1"), format="v2s2")
        raw = self.skopeo.inspect_raw(self.ref("convert/me", "v1"))
        manifest = json.loads(raw)
        self.assertEqual(manifest["mediaType"], images.DOCKER_MANIFEST)
        self.assertEqual([layer["digest"] for layer in manifest["layers"]],
                         [layer.digest for layer in image.layers])
        inspected = self.skopeo.inspect(self.ref("convert/me", "v1"))
        self.assertEqual(inspected["Digest"], images.sha256_digest(raw))
        out = os.path.join(self.work, "out")
        self.skopeo.copy(self.ref("convert/me", "v1"), "dir:" + out)
        top, blobs = images.read_dir_layout(out)
        self.assertEqual(top, raw)
        for layer in image.layers:
            self.assertTrue(blobs[layer.digest] == layer.data)

    def test_tags_and_cross_repository_copy(self):
        """Several tags list in order; a registry-to-registry copy mounts and keeps digests."""
        image = images.Image("skopeo-tags", layer_sizes=(4096, 8192))
        for tag in ("v1", "latest", "1.0.0", "beta_2"):
            self.skopeo.copy(self.oci(image, "src"), self.ref("tags/repo", tag))
        self.assertEqual(sorted(self.skopeo.list_tags(self.ref("tags/repo"))),
                         ["1.0.0", "beta_2", "latest", "v1"])
        self.skopeo.copy(self.ref("tags/repo", "v1"), self.ref("tags/other", "copied"))
        self.assertEqual(self.skopeo.inspect_raw(self.ref("tags/other", "copied")),
                         image.manifest.data)
        self.assertEqual(self.skopeo.list_tags(self.ref("tags/other")), ["copied"])

    def test_concurrent_pushes_sharing_layers(self):
        """Four skopeo pushes at once, sharing a layer, two into one repository: all intact."""
        artifacts = [images.Image("skopeo-shared", layer_sizes=(768 * 1024, 64 * 1024 + number))
                     for number in range(4)]
        self.assertEqual(len({a.layers[0].digest for a in artifacts}), 1)
        targets = ["shared/one:v1", "shared/two:v1", "shared/same:a", "shared/same:b"]
        errors = []

        def push(artifact, target):
            try:
                self.skopeo.copy(self.oci(artifact, "v1"), "docker://{}/{}".format(
                    self.server.netloc, target))
            except Exception as e:
                errors.append(e)

        for artifact in artifacts:
            self.oci(artifact, "v1")  # written before the threads start
        threads = [threading.Thread(target=push, args=pair) for pair in zip(artifacts, targets)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        self.assertEqual(errors, [])
        for number, (artifact, target) in enumerate(zip(artifacts, targets)):
            out = os.path.join(self.work, "out-{}".format(number))
            self.skopeo.copy("docker://{}/{}".format(self.server.netloc, target),
                             "oci:{}:v1".format(out))
            self.assert_oci_layout_holds(out, "v1", artifact)
        self.assertEqual(sorted(self.skopeo.list_tags(self.ref("shared/same"))), ["a", "b"])

    def test_delete(self):
        """skopeo delete removes the manifest: its tags go and it no longer pulls."""
        image = images.Image("skopeo-delete", layer_sizes=(4096,))
        keep = images.Image("skopeo-keep", layer_sizes=(4096,))
        self.skopeo.copy(self.oci(image, "v1"), self.ref("del/repo", "gone"))
        self.skopeo.copy(self.oci(keep, "v1"), self.ref("del/repo", "kept"))
        self.skopeo.delete(self.ref("del/repo", "gone"))
        self.assertEqual(self.skopeo.list_tags(self.ref("del/repo")), ["kept"])
        with self.assertRaises(SkopeoError) as raised:
            self.skopeo.inspect_raw(self.ref("del/repo") + "@" + image.digest)
        self.assertIn("manifest unknown", raised.exception.stderr.lower())
        self.assertEqual(self.skopeo.inspect_raw(self.ref("del/repo", "kept")), keep.manifest.data)

    def test_delete_disabled(self):
        """With deletes disabled, skopeo delete fails and the image still pulls."""
        self.server.kill()
        self.server = self.start_server(delete=False, name="nodelete")
        image = images.Image("skopeo-nodelete", layer_sizes=(4096,))
        self.skopeo.copy(self.oci(image, "v1"), self.ref("del/locked", "v1"))
        with self.assertRaises(SkopeoError) as raised:
            self.skopeo.delete(self.ref("del/locked", "v1"))
        self.assertIn("405", raised.exception.stderr + raised.exception.stdout)
        self.assertEqual(self.skopeo.inspect_raw(self.ref("del/locked", "v1")), image.manifest.data)


class SpectroregFilesystemSkopeoTests(SkopeoRoundTripMixin, unittest.TestCase):
    kind = "spectroreg"
    storage = "filesystem"


class SpectroregInMemorySkopeoTests(SkopeoRoundTripMixin, unittest.TestCase):
    kind = "spectroreg"
    storage = "inmemory"


class ReferenceFilesystemSkopeoTests(SkopeoRoundTripMixin, unittest.TestCase):
    """The same tests against Distribution 2.8: proof that they test the right thing."""

    kind = "docker-registry"
    storage = "filesystem"


class AuthenticatedSkopeoMixin(object):
    """skopeo with credentials against htpasswd auth (bcrypt), in and out."""

    kind = None

    def setUp(self):
        self.work = os.path.abspath(self.mktemp())
        os.makedirs(self.work)
        self.skopeo = Skopeo(os.path.join(self.work, "skopeo"))
        htpasswd = os.path.join(self.work, "htpasswd")
        hashed = bcrypt.hashpw(b"s3cret-pass", bcrypt.gensalt(rounds=5)).decode()
        with open(htpasswd, "w") as f:
            f.write("# test users\npusher:{}\n".format(hashed))
        self.server = start_registry(self.kind, os.path.join(self.work, "root"),
                                     os.path.join(self.work, "server"), htpasswd=htpasswd)
        self.addCleanup(self.server.kill)

    def test_credentials_required_and_accepted(self):
        """Anonymous and wrong-password pushes fail with 401; the right one round-trips."""
        challenge = request(self.server, "GET", "/v2/")
        self.assertEqual(challenge.status, 401)
        self.assertEqual(challenge.header("WWW-Authenticate"), 'Basic realm="spectroreg-tests"')
        image = images.Image("skopeo-auth", layer_sizes=(4096, 8192))
        source = "oci:{}:v1".format(images.write_oci_layout(
            os.path.join(self.work, "image"), image, "v1"))
        target = "docker://{}/private/app:v1".format(self.server.netloc)
        for credentials in ({}, {self.server.netloc: ("pusher", "wrong")}):
            self.skopeo.set_credentials(credentials)
            with self.assertRaises(SkopeoError) as raised:
                self.skopeo.copy(source, target)
            self.assertIn("unauthorized", raised.exception.stderr.lower())
        self.skopeo.set_credentials({self.server.netloc: ("pusher", "s3cret-pass")})
        self.skopeo.copy(source, target)
        out = os.path.join(self.work, "out")
        self.skopeo.copy(target, "oci:{}:v1".format(out))
        descriptor, blobs = images.read_oci_layout(out, "v1")
        self.assertEqual(descriptor["digest"], image.digest)
        self.assertEqual(sorted(blobs), sorted(b.digest for b in image.all_blobs()))
        self.assertEqual(self.skopeo.list_tags("docker://{}/private/app".format(
            self.server.netloc)), ["v1"])


class SpectroregAuthenticatedSkopeoTests(AuthenticatedSkopeoMixin, unittest.TestCase):
    kind = "spectroreg"


class ReferenceAuthenticatedSkopeoTests(AuthenticatedSkopeoMixin, unittest.TestCase):
    kind = "docker-registry"


class PlainHTTPTLSProbeMixin(object):
    """A TLS handshake on the plain-HTTP port is refused at once.

    Clients told a registry is insecure (skopeo and podman with
    ``--tls-verify=false``, Docker's ``insecure-registries``, containerd)
    try HTTPS first and fall back to HTTP only when the server refuses the
    TLS handshake. Distribution answers a TLS record with a 400 at once; a
    server that waits for a request line instead makes every client command
    wait for its header timeout.
    """

    kind = None

    def test_tls_client_hello_refused_promptly(self):
        work = os.path.abspath(self.mktemp())
        server = start_registry(self.kind, None, work)
        self.addCleanup(server.kill)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        started = time.monotonic()
        raw = socket.create_connection((server.host, server.port), timeout=10)
        try:
            with self.assertRaises((ssl.SSLError, OSError)):
                context.wrap_socket(raw, server_hostname="127.0.0.1")
        finally:
            raw.close()
        elapsed = time.monotonic() - started
        self.assertLess(elapsed, 2.0, "TLS ClientHello answered after {:.1f}s".format(elapsed))
        # And the port still serves plain HTTP.
        self.assertEqual(request(server, "GET", "/v2/").status, 200)


class SpectroregTLSProbeTests(PlainHTTPTLSProbeMixin, unittest.TestCase):
    kind = "spectroreg"


class ReferenceTLSProbeTests(PlainHTTPTLSProbeMixin, unittest.TestCase):
    kind = "docker-registry"
