"""
Switching between Distribution 2.8 and spectroreg on the same data.

A tree written by Debian's ``docker-registry`` is served by spectroreg, and
a tree written by spectroreg is served by ``docker-registry``: skopeo pulls
back the same digests either way. The same images pushed into each server
leave the same files under ``docker/registry/v2`` with byte-identical
``link`` files and blob data.
"""

import hashlib
import json
import os

from twisted.trial import unittest

from tests.support import images
from tests.support.paths import snapshot
from tests.support.rawhttp import add_query, download, path_of, request
from tests.support.reference import garbage_collect
from tests.support.registries import start_registry
from tests.support.skopeo import Skopeo

LAYOUT_ROOT = ("docker", "registry", "v2")
# Paths one server may have and the other not: uploads in flight (and Go's
# private hash states) and spectroreg's own referrers index.
IGNORED_PARTS = ("_uploads", "_referrers")
ACCEPT = (images.OCI_MANIFEST, images.OCI_INDEX, images.DOCKER_MANIFEST, images.DOCKER_LIST)


def tree_files(root):
    """{relative path: bytes} of every file under ``ROOT/docker/registry/v2``."""
    return snapshot(os.path.join(root, *LAYOUT_ROOT))


def comparable(files):
    return {path: data for path, data in files.items()
            if not any(part in IGNORED_PARTS for part in path.split(os.sep))}


class CompatibilityTests(unittest.TestCase):
    """Each test writes a tree with one server and reads it with the other."""

    def setUp(self):
        self.work = os.path.abspath(self.mktemp())
        os.makedirs(self.work)
        self.skopeo = Skopeo(os.path.join(self.work, "skopeo"))
        self.image = images.Image("compat-image")
        self.index = images.Index("compat-index")
        self.docker_list = images.Index("compat-docker", flavour="docker")
        self.sources = {
            "oci-image": ("oci:" + images.write_oci_layout(
                os.path.join(self.work, "image"), self.image, "v1") + ":v1", self.image),
            "oci-index": ("oci:" + images.write_oci_layout(
                os.path.join(self.work, "index"), self.index, "multi") + ":multi", self.index),
            "docker-list": ("dir:" + images.write_dir_layout(
                os.path.join(self.work, "docker-list"), self.docker_list), self.docker_list),
        }
        self.started = 0

    def start(self, kind, root):
        self.started += 1
        server = start_registry(kind, root, os.path.join(self.work, "{}-{}".format(kind, self.started)))
        self.addCleanup(server.kill)
        return server

    def push_all(self, server):
        """Push the three test artifacts into C{server} (all under ``compat/…``)."""
        for name, (source, _) in sorted(self.sources.items()):
            self.skopeo.copy(source, "docker://{}/compat/{}:v1".format(server.netloc, name),
                             all_images=True)

    def assert_pulls_back(self, server, label):
        """Every artifact pulls back from C{server} with the digests it was built with."""
        for name, (_, artifact) in sorted(self.sources.items()):
            reference = "docker://{}/compat/{}:v1".format(server.netloc, name)
            out = os.path.join(self.work, "pulled-{}-{}".format(label, name))
            self.skopeo.copy(reference, "dir:" + out, all_images=True)
            top, blobs = images.read_dir_layout(out)
            self.assertEqual(images.sha256_digest(top), artifact.digest,
                             "{}: top manifest of {} differs".format(label, name))
            self.assertEqual(sorted(blobs), sorted(b.digest for b in artifact.all_blobs()),
                             "{}: blobs of {} differ".format(label, name))
            self.assertIn("v1", self.skopeo.list_tags("docker://{}/compat/{}".format(
                server.netloc, name)))

    def hand_over(self, writer, reader):
        """C{writer} writes a tree, stops; C{reader} serves the same root directory."""
        root = os.path.join(self.work, "root")
        first = self.start(writer, root)
        self.push_all(first)
        first.stop()
        second = self.start(reader, root)
        self.assert_pulls_back(second, "{}-to-{}".format(writer, reader))
        return root, second

    def test_distribution_tree_served_by_spectroreg(self):
        """A tree written by docker-registry pulls back through spectroreg, same digests."""
        self.hand_over("docker-registry", "spectroreg")

    def test_spectroreg_tree_served_by_distribution(self):
        """A tree written by spectroreg pulls back through docker-registry, same digests."""
        self.hand_over("spectroreg", "docker-registry")

    def test_switch_back_and_forth(self):
        """spectroreg adds to a Distribution tree; Distribution then serves old and new."""
        root, spectroreg = self.hand_over("docker-registry", "spectroreg")
        extra = images.Image("compat-extra", layer_sizes=(8192, 16384))
        self.skopeo.copy("oci:" + images.write_oci_layout(
            os.path.join(self.work, "extra"), extra, "v1") + ":v1",
            "docker://{}/compat/extra:v1".format(spectroreg.netloc))
        # Same layers under a second repository: a mount, not a new upload.
        self.skopeo.copy(self.sources["oci-image"][0],
                         "docker://{}/compat/oci-image:again".format(spectroreg.netloc))
        spectroreg.stop()
        distribution = self.start("docker-registry", root)
        self.assert_pulls_back(distribution, "back")
        out = os.path.join(self.work, "pulled-extra")
        self.skopeo.copy("docker://{}/compat/extra:v1".format(distribution.netloc), "dir:" + out)
        top, blobs = images.read_dir_layout(out)
        self.assertEqual(top, extra.manifest.data)
        self.assertEqual(sorted(blobs), sorted(b.digest for b in extra.all_blobs()))
        self.assertEqual(sorted(self.skopeo.list_tags(
            "docker://{}/compat/oci-image".format(distribution.netloc))), ["again", "v1"])

    def test_distribution_garbage_collect_on_spectroreg_tree(self):
        """Distribution's offline GC on a tree spectroreg wrote keeps what is referenced.

        Two images share their first layer; one is deleted through
        spectroreg. After ``docker-registry garbage-collect`` spectroreg serves
        the other intact, and the deleted image's own blobs are gone.
        """
        root = os.path.join(self.work, "root")
        kept = images.Image("compat-gc", layer_sizes=(8192, 16384))
        dropped = images.Image("compat-gc", layer_sizes=(8192, 32768))
        self.assertEqual(kept.layers[0].digest, dropped.layers[0].digest)
        spectroreg = self.start("spectroreg", root)
        for artifact, tag in ((kept, "kept"), (dropped, "dropped")):
            source = "oci:" + images.write_oci_layout(
                os.path.join(self.work, "gc-" + tag), artifact, tag) + ":" + tag
            self.skopeo.copy(source, "docker://{}/compat/gc:{}".format(spectroreg.netloc, tag))
        self.skopeo.delete("docker://{}/compat/gc:dropped".format(spectroreg.netloc))
        spectroreg.stop()
        output = garbage_collect(root, os.path.join(self.work, "gc"))
        self.assertIn("3 blobs and 0 manifests eligible for deletion", output)
        spectroreg = self.start("spectroreg", root)
        out = os.path.join(self.work, "pulled-gc")
        self.skopeo.copy("docker://{}/compat/gc:kept".format(spectroreg.netloc), "dir:" + out)
        top, blobs = images.read_dir_layout(out)
        self.assertEqual(top, kept.manifest.data)
        self.assertEqual(sorted(blobs), sorted(b.digest for b in kept.all_blobs()))
        gone = [dropped.manifest, dropped.config, dropped.layers[1]]
        for blob in gone:
            hexdigest = blob.digest.split(":", 1)[1]
            self.assertFalse(os.path.exists(os.path.join(
                root, "docker", "registry", "v2", "blobs", "sha256", hexdigest[:2], hexdigest)),
                "{} survived garbage collection".format(blob.digest))
            status = request(spectroreg, "HEAD", "/v2/compat/gc/blobs/" + blob.digest).status
            self.assertEqual(status, 404, "HEAD of collected blob {}".format(blob.digest))
        self.assertEqual(self.skopeo.list_tags("docker://{}/compat/gc".format(spectroreg.netloc)),
                         ["kept"])

    def assert_same_answers(self, servers):
        """Catalog, tag lists and manifest heads agree between the two servers."""

        def answers(server):
            found = {"catalog": json.loads(request(server, "GET", "/v2/_catalog").body)}
            for name, (_, artifact) in sorted(self.sources.items()):
                tags = request(server, "GET", "/v2/compat/{}/tags/list".format(name))
                found[name + " tags"] = (tags.status, json.loads(tags.body))
                for reference in ("v1", artifact.digest):
                    head = request(server, "HEAD", "/v2/compat/{}/manifests/{}".format(
                        name, reference), headers={"Accept": ", ".join(ACCEPT)})
                    found["{} HEAD {}".format(name, reference)] = (
                        head.status, head.header("Content-Type"),
                        head.header("Docker-Content-Digest"), head.header("Content-Length"))
            return found

        reference, ours = answers(servers["docker-registry"]), answers(servers["spectroreg"])
        self.assertEqual(ours, reference)

    def assert_same_trees(self, roots, when):
        reference, ours = (tree_files(roots[kind]) for kind in ("docker-registry", "spectroreg"))
        self.assertTrue(reference, "docker-registry wrote nothing")
        only_reference = sorted(set(comparable(reference)) - set(comparable(ours)))
        only_ours = sorted(set(comparable(ours)) - set(comparable(reference)))
        self.assertEqual((only_reference, only_ours), ([], []),
                         "{}: paths only in docker-registry's tree / only in spectroreg's".format(when))
        different = sorted(path for path in comparable(reference)
                           if reference[path] != ours[path])
        self.assertEqual(different, [], "{}: files whose bytes differ".format(when))
        # Once every push has completed nothing of the uploads is left behind.
        leftovers = sorted(path for path in ours if "_uploads" in path.split(os.sep))
        self.assertEqual(leftovers, [], "{}: upload files left in spectroreg's tree".format(when))

    def test_same_layout_on_disk(self):
        """The same pushes and deletes leave the same paths and byte-identical files."""
        roots, servers = {}, {}
        for kind in ("docker-registry", "spectroreg"):
            roots[kind] = os.path.join(self.work, "tree-" + kind)
            servers[kind] = self.start(kind, roots[kind])
            self.push_all(servers[kind])
        self.assert_same_trees(roots, "after the pushes")
        self.assert_same_answers(servers)
        for kind, server in servers.items():
            self.skopeo.delete("docker://{}/compat/oci-image:v1".format(server.netloc))
            self.skopeo.delete("docker://{}/compat/oci-index@{}".format(
                server.netloc, self.index.images[0].digest))
        self.assert_same_trees(roots, "after deleting an image and an index's instance")
        for server in servers.values():
            server.stop()


class UploadHandOverTests(unittest.TestCase):
    """An upload started by one kind of server, finished by the other on the same tree.

    Both servers share ``http.secret`` and sign the upload state in each
    ``Location`` (``_state``) the same way, so the other kind resumes the
    upload: GET status 204 with the stored Range, the rest PATCHed, the PUT
    with the digest finishes it.
    """

    def hand_over(self, first_kind, second_kind):
        work = os.path.abspath(self.mktemp())
        root = os.path.join(work, "root")
        data = images.seeded_bytes("hand-over", 300 * 1024 + 7)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        half = len(data) // 2
        first = start_registry(first_kind, root, os.path.join(work, "first"))
        self.addCleanup(first.kill)
        started = request(first, "POST", "/v2/hand/over/blobs/uploads/")
        self.assertEqual(started.status, 202, started.describe())
        patched = request(first, "PATCH", path_of(started.header("Location")), data[:half],
                          {"Content-Type": "application/octet-stream"})
        self.assertEqual(patched.status, 202, patched.describe())
        location = path_of(patched.header("Location"))
        self.assertIn("_state=", location)
        first.stop()

        second = start_registry(second_kind, root, os.path.join(work, "second"))
        self.addCleanup(second.kill)
        status = request(second, "GET", location)
        self.assertEqual((status.status, status.header("Range")), (204, "0-{}".format(half - 1)),
                         status.describe())
        location = path_of(status.header("Location"))
        rest = request(second, "PATCH", location, data[half:], {
            "Content-Range": "{}-{}".format(half, len(data) - 1),
            "Content-Type": "application/octet-stream"})
        self.assertEqual(rest.status, 202, rest.describe())
        done = request(second, "PUT", add_query(path_of(rest.header("Location")), digest=digest))
        self.assertEqual(done.status, 201, done.describe())
        self.assertEqual(download(second, "/v2/hand/over/blobs/" + digest)[:3],
                         (200, len(data), digest))

    def test_distribution_upload_resumed_by_spectroreg(self):
        self.hand_over("docker-registry", "spectroreg")

    def test_spectroreg_upload_resumed_by_distribution(self):
        self.hand_over("spectroreg", "docker-registry")
