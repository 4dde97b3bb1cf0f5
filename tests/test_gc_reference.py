"""
``spectroreg garbage-collect`` against Debian's ``docker-registry
garbage-collect`` (Distribution 2.8) on the same tree.

Images A and B share layers; B is deleted; C is only reachable by digest
(untagged); a blob nobody references sits in another repository. Both
collectors' dry runs must name exactly the same blobs, with and without
``--delete-untagged``; after a real run A pulls back intact with skopeo
and what only B (and C) used is gone. On the filesystem and on S3 (moto).
"""

import os
import re
import subprocess
import sys

import yaml
from twisted.trial import unittest

from tests.support.daemon import REPO_ROOT, start_daemon
from tests.support.images import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Blob, Image, canonical_json, seeded_bytes
from tests.support.pushing import push_blob, put_manifest
from tests.support.reference import clean_environment, reference_config
from tests.support.requirements import require_binary
from tests.support.skopeo import Skopeo

ELIGIBLE = re.compile(r"^blob eligible for deletion: (sha256:[0-9a-f]{64})$", re.M)
REPOSITORY = "team/app"


def image_sharing(seed, shared, own_sizes):
    """An OCI image whose layers are C{shared} (L{Blob}s) then new ones of C{own_sizes}."""
    own = [Blob(seeded_bytes("{}-{}".format(seed, n), size), OCI_LAYER) for n, size in enumerate(own_sizes)]
    config = Blob(canonical_json({"architecture": "amd64", "os": "linux", "seed": seed}), OCI_CONFIG)
    layers = list(shared) + own
    manifest = Blob(canonical_json({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.descriptor(),
        "layers": [layer.descriptor() for layer in layers],
    }), OCI_MANIFEST)
    return manifest, config, own, layers


def eligible(output):
    return sorted(set(ELIGIBLE.findall(output)))


class GarbageCollectReferenceMixin:
    """Subclasses provide C{storage_section()}, C{blob_stored(digest)}."""

    def setUp(self):
        require_binary("docker-registry")
        require_binary("skopeo")
        self.work = os.path.abspath(self.mktemp())
        os.makedirs(self.work)

    def config(self):
        config = reference_config(None, delete=True)
        # Blobs are served by the registry itself (no redirect to the storage).
        config["storage"] = dict(self.storage_section(), delete={"enabled": True}, redirect={"disable": True},
                                 maintenance={"uploadpurging": {"enabled": False}})
        return config

    def write(self, name, config):
        path = os.path.join(self.work, name)
        with open(path, "w") as f:
            yaml.safe_dump(config, f)
        return path

    def ours(self, *flags):
        path = self.write("spectroreg-gc.yml", self.config())
        completed = subprocess.run(
            [sys.executable, "-m", "spectroreg", "garbage-collect"] + list(flags) + [path],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO_ROOT, timeout=120,
            env=clean_environment({"PYTHONPATH": REPO_ROOT}))
        self.assertEqual(completed.returncode, 0, completed.stderr.decode())
        return completed.stdout.decode()

    def reference(self, *flags):
        path = self.write("docker-registry-gc.yml", self.config())
        completed = subprocess.run(
            [require_binary("docker-registry"), "garbage-collect"] + list(flags) + [path],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=self.work, timeout=120,
            env=clean_environment())
        self.assertEqual(completed.returncode, 0, completed.stdout.decode())
        return completed.stdout.decode()

    def populate(self):
        daemon = start_daemon(self, self.config())
        a = Image("gc-a", layer_sizes=(3000, 5000, 7000))
        for blob in a.blobs():
            push_blob(daemon, REPOSITORY, blob)
        put_manifest(daemon, REPOSITORY, "a", a.manifest)
        b_manifest, b_config, b_own, b_layers = image_sharing("gc-b", a.layers[:2], (4000, 6000))
        for blob in [b_config] + b_layers:
            push_blob(daemon, REPOSITORY, blob)
        put_manifest(daemon, REPOSITORY, "b", b_manifest)
        c_manifest, c_config, c_own, c_layers = image_sharing("gc-c", a.layers[2:], (2500,))
        for blob in [c_config] + c_layers:
            push_blob(daemon, REPOSITORY, blob)
        put_manifest(daemon, REPOSITORY, c_manifest.digest, c_manifest)
        orphan = Blob(seeded_bytes("gc-orphan", 1234), OCI_LAYER)
        push_blob(daemon, "team/other", orphan)
        response = daemon.request("DELETE", "/v2/{}/manifests/{}".format(REPOSITORY, b_manifest.digest))
        self.assertEqual(response.status, 202, response.body)
        daemon.stop()
        b_only = [b_manifest, b_config] + b_own
        c_only = [c_manifest, c_config] + c_own
        return a, b_only, c_only, orphan

    def pull(self, image):
        daemon = start_daemon(self, self.config())
        skopeo = Skopeo(os.path.join(self.work, "skopeo"))
        out = os.path.join(self.work, "pulled")
        skopeo.copy("docker://{}/{}:a".format(daemon.netloc, REPOSITORY), "oci:{}:a".format(out))
        stored = sorted(os.listdir(os.path.join(out, "blobs", "sha256")))
        self.assertEqual(stored, sorted(b.digest.split(":")[1] for b in image.all_blobs()))
        for blob in image.all_blobs():
            with open(os.path.join(out, "blobs", "sha256", blob.digest.split(":")[1]), "rb") as f:
                self.assertEqual(f.read(), blob.data)
        daemon.stop()

    def test_same_blobs_as_distribution(self):
        a, b_only, c_only, orphan = self.populate()
        expected = sorted(blob.digest for blob in b_only + [orphan])
        reference = eligible(self.reference("--dry-run"))
        self.assertEqual(reference, expected)
        self.assertEqual(eligible(self.ours("--dry-run")), reference)

        expected_untagged = sorted(blob.digest for blob in b_only + c_only + [orphan])
        reference = eligible(self.reference("--dry-run", "--delete-untagged"))
        self.assertEqual(reference, expected_untagged)
        self.assertEqual(eligible(self.ours("--dry-run", "--delete-untagged")), reference)

        # Dry runs delete nothing.
        for blob in a.all_blobs() + b_only + c_only + [orphan]:
            self.assertTrue(self.blob_stored(blob.digest), blob.digest)

        output = self.ours()
        self.assertEqual(eligible(output), expected)
        for blob in b_only + [orphan]:
            self.assertFalse(self.blob_stored(blob.digest), blob.digest)
        for blob in a.all_blobs() + c_only:
            self.assertTrue(self.blob_stored(blob.digest), blob.digest)
        # B's layer links went with its blobs.
        self.assertFalse(self.stored("/docker/registry/v2/repositories/{}/_layers/sha256/{}/link".format(
            REPOSITORY, b_only[2].digest.split(":")[1])))
        self.pull(a)

        self.assertEqual(eligible(self.ours("--delete-untagged")), sorted(b.digest for b in c_only))
        for blob in c_only:
            self.assertFalse(self.blob_stored(blob.digest), blob.digest)
        self.assertFalse(self.stored("/docker/registry/v2/repositories/{}/_manifests/revisions/sha256/{}/link".format(
            REPOSITORY, c_only[0].digest.split(":")[1])))
        self.pull(a)
        # Nothing is left for Distribution to collect.
        self.assertEqual(eligible(self.reference("--dry-run", "--delete-untagged")), [])

    def blob_stored(self, digest):
        hex_ = digest.split(":")[1]
        return self.stored("/docker/registry/v2/blobs/sha256/{}/{}/data".format(hex_[:2], hex_))


class FilesystemGarbageCollectTests(GarbageCollectReferenceMixin, unittest.TestCase):
    def storage_section(self):
        return {"filesystem": {"rootdirectory": os.path.join(self.work, "root")}}

    def stored(self, path):
        return os.path.exists(os.path.join(self.work, "root") + path)


class S3GarbageCollectTests(GarbageCollectReferenceMixin, unittest.TestCase):
    def setUp(self):
        GarbageCollectReferenceMixin.setUp(self)
        from tests.support.moto import fresh_bucket, registry_s3_config

        self.server, self.bucket = fresh_bucket(self)
        self.section = registry_s3_config("spectroreg", self.server, self.bucket, 0)["storage"]["s3"]

    def storage_section(self):
        return {"s3": dict(self.section)}

    def stored(self, path):
        key = self.section["rootdirectory"].strip("/") + path
        return key in self.server.keys(self.bucket)
