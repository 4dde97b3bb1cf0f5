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

import hashlib
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


# Chunk sizes that take every path of both kinds' multipart handling with
# parts of 5 MiB: small parts left by a PATCH (completed and restarted by
# the next writer), parts above the minimum, a part exactly at it.
HOP_CHUNKS = (100 * 1024 + 7, 6 * 1024 * 1024 + 1, 3000, 5 * 1024 * 1024, 1, 2 * 1024 * 1024)


class UploadHandOverOnS3Tests(unittest.TestCase):
    """
    Distribution 2.8 and spectroreg, both running on one bucket with the same
    ``http.secret``, take turns on one upload: each PATCH goes to the other
    kind, whose writer continues the multipart upload the other one left in
    flight (the upload's ``data`` is an S3 multipart upload in both), then
    the PUT with the digest finishes it and every server reads the blob.
    """

    timeout = 300

    def setUp(self):
        self.work = os.path.abspath(self.mktemp())
        os.makedirs(self.work)
        self.server, self.bucket = fresh_bucket(self)
        self.servers = {}
        for kind in ("spectroreg", "docker-registry"):
            self.servers[kind] = start_registry_s3(
                kind, self.server, self.bucket, os.path.join(self.work, kind), redirect=False,
                chunksize=5 * 1024 * 1024)
            self.addCleanup(self.servers[kind].kill)

    def hop(self, first, second, chunks=HOP_CHUNKS):
        from tests.support.rawhttp import add_query, download, path_of, request

        data = images.seeded_bytes("s3-hop-" + first, sum(chunks))
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        turns = [self.servers[first], self.servers[second]]
        started = request(turns[0], "POST", "/v2/hop/over/blobs/uploads/")
        self.assertEqual(started.status, 202, started.describe())
        location = path_of(started.header("Location"))
        offset = 0
        for number, size in enumerate(chunks):
            server = turns[(number + 1) % 2]
            status = request(server, "GET", location)
            expected = "0-{}".format(max(offset - 1, 0))
            self.assertEqual((status.status, status.header("Range")), (204, expected),
                             (server.name, number, status.describe()))
            response = request(server, "PATCH", path_of(status.header("Location")),
                               data[offset:offset + size], {
                                   "Content-Range": "{}-{}".format(offset, offset + size - 1),
                                   "Content-Type": "application/octet-stream"})
            self.assertEqual(response.status, 202, (server.name, number, response.describe(),
                                                    server.log_text()[-3000:]))
            offset += size
            self.assertEqual(response.header("Range"), "0-{}".format(offset - 1))
            location = path_of(response.header("Location"))
        finisher = turns[len(chunks) % 2]
        done = request(finisher, "PUT", add_query(location, digest=digest))
        self.assertEqual(done.status, 201, (finisher.name, done.describe(),
                                            finisher.log_text()[-3000:]))
        for server in self.servers.values():
            self.assertEqual(download(server, "/v2/hop/over/blobs/" + digest)[:3],
                             (200, len(data), digest), server.name)
        self.assertEqual([k for k in self.server.keys(self.bucket) if "/_uploads/" in k], [])
        self.assertEqual(self.server.uploads(self.bucket), [])

    def test_distribution_upload_continued_and_finished_by_spectroreg(self):
        self.hop("docker-registry", "spectroreg")

    def test_spectroreg_upload_continued_and_finished_by_distribution(self):
        self.hop("spectroreg", "docker-registry")
