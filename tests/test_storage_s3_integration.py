"""
The daemon on S3 (moto): skopeo round trips, and buckets handed between
Debian's ``docker-registry`` (Distribution 2.8) and spectroreg both ways.

- With signature checking on and ``storage.redirect.disable: true``:
  spectroreg streams every blob itself.
- On a moto without signature checking (moto's presigned GETs fail with a
  500 when it checks signatures), with redirects as Distribution does them:
  skopeo follows the 307 to the presigned S3 URL.
- A bucket written by one server is served by the other with the same
  digests, and both write the same keys (uploads aside).
"""

import os

from twisted.trial import unittest

from tests.support import images
from tests.support.moto import fresh_bucket, start_moto, start_registry_s3
from tests.support.requirements import require_binary
from tests.support.skopeo import Skopeo

IGNORED = ("_uploads", "_referrers")


class S3RegistryTests(unittest.TestCase):
    timeout = 300

    def setUp(self):
        require_binary("skopeo")
        self.work = os.path.abspath(self.mktemp())
        os.makedirs(self.work)
        self.skopeo = Skopeo(os.path.join(self.work, "skopeo"))
        # A multi-architecture index: its images, their configs and layers
        # (skopeo --all), so one copy exercises everything.
        self.index = images.Index("s3-index")
        self.sources = {
            "index": ("oci:" + images.write_oci_layout(
                os.path.join(self.work, "index"), self.index, "multi") + ":multi", self.index),
        }
        self.started = 0

    def start(self, kind, server, bucket, **options):
        self.started += 1
        registry = start_registry_s3(
            kind, server, bucket, os.path.join(self.work, "{}-{}".format(kind, self.started)),
            **options)
        self.addCleanup(registry.kill)
        return registry

    def push_all(self, registry):
        for name, (source, _) in sorted(self.sources.items()):
            self.skopeo.copy(source, "docker://{}/s3/{}:v1".format(registry.netloc, name),
                             all_images=True)

    def assert_pulls_back(self, registry, label):
        for name, (_, artifact) in sorted(self.sources.items()):
            out = os.path.join(self.work, "pulled-{}-{}".format(label, name))
            self.skopeo.copy("docker://{}/s3/{}:v1".format(registry.netloc, name), "dir:" + out,
                             all_images=True)
            top, blobs = images.read_dir_layout(out)
            self.assertEqual(images.sha256_digest(top), artifact.digest, (label, name))
            self.assertEqual(sorted(blobs), sorted(b.digest for b in artifact.all_blobs()),
                             (label, name))

    def test_round_trip_signed_without_redirects(self):
        """Signature checking on; spectroreg streams blobs from S3 itself."""
        server, bucket = fresh_bucket(self)
        registry = self.start("spectroreg", server, bucket, redirect=False)
        self.push_all(registry)
        self.assert_pulls_back(registry, "signed")
        keys = server.keys(bucket)
        self.assertTrue(all(key.startswith("registry/docker/registry/v2/") for key in keys), keys)
        # Every upload finished: nothing of them is left, nor any multipart upload.
        self.assertEqual([k for k in keys if "/_uploads/" in k], [])
        self.assertEqual(server.uploads(bucket), [])

    def test_buckets_move_between_servers(self):
        """
        docker-registry writes, spectroreg serves (redirects on), and the
        reverse; both write the same keys with the same bytes.
        """
        server = start_moto(auth=False, workdir=self.work)
        self.addCleanup(server.stop)
        buckets = {}
        for writer, reader in (("docker-registry", "spectroreg"),
                               ("spectroreg", "docker-registry")):
            bucket = server.create_bucket()
            buckets[writer] = bucket
            first = self.start(writer, server, bucket)
            self.push_all(first)
            first.stop()
            second = self.start(reader, server, bucket)
            self.assert_pulls_back(second, "{}-to-{}".format(writer, reader))
            second.stop()
        s3 = server.s3()

        def contents(bucket):
            return {
                key: s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                for key in server.keys(bucket)
                if not any(part in IGNORED for part in key.split("/"))
            }

        theirs, ours = contents(buckets["docker-registry"]), contents(buckets["spectroreg"])
        self.assertTrue(theirs)
        self.assertEqual(sorted(set(theirs) ^ set(ours)), [])
        self.assertEqual(sorted(k for k in theirs if theirs[k] != ours[k]), [])
