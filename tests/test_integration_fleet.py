"""
Three daemons, one registry: one shared filesystem root (and again one
moto bucket; and each again with Distribution 2.8 as one of the three) and
one Redis
(Debian's redis-server, storage.cache.blobdescriptor: redis) behind Debian's
haproxy in round robin, as docs/scaling.md configures them. skopeo pushes
and pulls through the balancer, uploads hop instances between PATCHes,
deletes and re-tags through one instance are seen by the others on the
very next request, and Redis stopped mid-run changes nothing but speed.
"""

import hashlib
import json
import os
import threading
import time
from urllib.parse import urlsplit

from twisted.trial import unittest

from tests.support import images
from tests.support.daemon import start_daemon
from tests.support.haproxy import HAProxy
from tests.support.rawhttp import request
from tests.support.redis import start_redis
from tests.support.reference import start_reference
from tests.support.moto import fresh_bucket, registry_s3_config
from tests.support.skopeo import Skopeo, SkopeoError

NAMES = ("a", "b", "c")


def path_of(location):
    parts = urlsplit(location)
    return parts.path + ("?" + parts.query if parts.query else "")


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class FleetMixin(object):
    """The fleet's tests; subclasses say where the shared storage is."""

    # Instances that are Debian's docker-registry (Distribution 2.8) instead.
    distribution = ()

    def storage(self):
        raise NotImplementedError()

    def setUp(self):
        self.work = os.path.abspath(self.mktemp())
        os.makedirs(self.work)
        self.redis = start_redis(self)
        storage = self.storage()
        storage.update({"delete": {"enabled": True}, "cache": {"blobdescriptor": "redis"}})
        config = {
            "version": "0.1",
            "log": {"level": "info"},
            "storage": storage,
            "redis": {"addr": self.redis.addr, "dialtimeout": "500ms", "readtimeout": "500ms",
                      "writetimeout": "500ms"},
            "http": {"secret": "one-secret-for-the-whole-fleet"},
        }
        self.daemons = {}
        self.ours = []
        for name in NAMES:
            if name in self.distribution:
                # Distribution 2.8 reads the same configuration.
                theirs = dict(config, http=dict(config["http"], addr="127.0.0.1:0"))
                workdir = os.path.join(self.work, name)
                os.makedirs(workdir)
                self.daemons[name] = start_reference(workdir=workdir, config=theirs)
                self.addCleanup(self.daemons[name].kill)
            else:
                self.daemons[name] = start_daemon(self, config, name=name, timeout=30.0,
                                                  workdir=os.path.join(self.work, name))
                self.ours.append(self.daemons[name])
        self.balancer = HAProxy(self.work, [(name, daemon.netloc) for name, daemon in self.daemons.items()])
        self.addCleanup(self.balancer.stop)
        self.balancer.start()
        self.skopeo = Skopeo(os.path.join(self.work, "skopeo"))
        self.wait_all_up()

    def wait_all_up(self):
        """haproxy's first checks have passed: three requests reach three instances."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            served = {request(self.balancer, "GET", "/v2/").headers.get("x-served-by") for _ in NAMES}
            if served == set(NAMES):
                return
            time.sleep(0.2)
        self.fail("haproxy does not reach every instance")

    def ref(self, repository, tag):
        return "docker://{}/{}:{}".format(self.balancer.netloc, repository, tag)

    def push(self, artifact, repository, tag):
        path = os.path.join(self.work, "in-" + tag)
        images.write_oci_layout(path, artifact, tag)
        self.skopeo.copy("oci:{}:{}".format(path, tag), self.ref(repository, tag), all_images=True)

    def pull_and_check(self, artifact, repository, tag):
        out = os.path.join(self.work, "out-" + tag)
        self.skopeo.copy(self.ref(repository, tag), "oci:{}:{}".format(out, tag), all_images=True)
        descriptor, blobs = images.read_oci_layout(out, tag)
        self.assertEqual(descriptor["digest"], artifact.digest)
        expected = {blob.digest: blob.data for blob in artifact.all_blobs()}
        self.assertEqual(sorted(blobs), sorted(expected))
        for digest, data in expected.items():
            self.assertTrue(blobs[digest] == data, "content of {} differs".format(digest))

    def test_skopeo_multi_arch_through_the_balancer(self):
        index = images.Index("fleet-index")
        self.push(index, "team/multi", "multi")
        self.pull_and_check(index, "team/multi", "multi")
        # Every instance serves every manifest of it, straight away.
        for daemon in self.daemons.values():
            for manifest in index.manifests():
                response = request(daemon, "HEAD", "/v2/team/multi/manifests/" + manifest.digest,
                                   headers={"Accept": manifest.media_type})
                self.assertEqual(response.status, 200)

    def test_upload_hops_instances(self):
        chunks = [os.urandom(64 * 1024) for _ in range(4)]
        data = b"".join(chunks)
        started = request(self.balancer, "POST", "/v2/hop/blobs/uploads/")
        self.assertEqual(started.status, 202)
        served = [started.headers["x-served-by"]]
        location = path_of(started.headers["location"])
        offset = 0
        for chunk in chunks:
            response = request(self.balancer, "PATCH", location, chunk, headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": "{}-{}".format(offset, offset + len(chunk) - 1)})
            self.assertEqual(response.status, 202, response.body)
            served.append(response.headers["x-served-by"])
            location = path_of(response.headers["location"])
            offset += len(chunk)
        separator = "&" if "?" in location else "?"
        done = request(self.balancer, "PUT", location + separator + "digest=" + sha256(data))
        self.assertEqual(done.status, 201, done.body)
        served.append(done.headers["x-served-by"])
        self.assertEqual(set(served), set(NAMES))  # every instance took part
        for daemon in self.daemons.values():
            got = request(daemon, "GET", "/v2/hop/blobs/" + sha256(data))
            self.assertEqual(got.status, 200)
            self.assertTrue(got.body == data)

    def put_manifest(self, daemon, repository, tag, config, layer):
        for blob in (config, layer):
            # POST then PUT: Distribution 2.8 has no single-POST upload.
            started = request(daemon, "POST", "/v2/{}/blobs/uploads/".format(repository))
            self.assertEqual(started.status, 202, started.body)
            location = path_of(started.headers["location"])
            separator = "&" if "?" in location else "?"
            response = request(daemon, "PUT", location + separator + "digest=" + sha256(blob), blob,
                               headers={"Content-Type": "application/octet-stream"})
            self.assertEqual(response.status, 201, response.body)
        body = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config),
                       "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(layer),
                        "size": len(layer)}],
        }).encode()
        response = request(daemon, "PUT", "/v2/{}/manifests/{}".format(repository, tag), body,
                           headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        self.assertEqual(response.status, 201, response.body)
        return sha256(body)

    def test_delete_and_retag_seen_at_once(self):
        a, b, c = (self.daemons[name] for name in NAMES)
        first = self.put_manifest(a, "seen", "v1", b"{}", b"layer one")
        layer = sha256(b"layer one")
        for daemon in (b, c):  # each has read it (and Redis holds it)
            self.assertEqual(request(daemon, "HEAD", "/v2/seen/blobs/" + layer).status, 200)
            self.assertEqual(request(daemon, "GET", "/v2/seen/manifests/v1", headers={
                "Accept": "application/vnd.oci.image.manifest.v1+json"}).headers["docker-content-digest"], first)
        # Re-tag through c: a and b answer with the new manifest at once.
        second = self.put_manifest(c, "seen", "v1", b"{}", b"layer two")
        for daemon in (a, b):
            self.assertEqual(request(daemon, "GET", "/v2/seen/manifests/v1", headers={
                "Accept": "application/vnd.oci.image.manifest.v1+json"}).headers["docker-content-digest"], second)
        # Delete through a: b and c no longer have it, on their next request.
        self.assertEqual(request(a, "DELETE", "/v2/seen/blobs/" + layer).status, 202)
        for daemon in (b, c):
            self.assertEqual(request(daemon, "HEAD", "/v2/seen/blobs/" + layer).status, 404)
            self.assertEqual(request(daemon, "GET", "/v2/seen/blobs/" + layer).status, 404)
        self.assertEqual(request(b, "DELETE", "/v2/seen/manifests/" + first).status, 202)
        for daemon in (a, c):
            self.assertEqual(request(daemon, "HEAD", "/v2/seen/manifests/" + first).status, 404)

    def test_redis_stopped_mid_run(self):
        image = images.Image("fleet-before")
        self.push(image, "outage/app", "before")
        self.redis.stop()
        after = images.Index("fleet-after")
        self.push(after, "outage/app", "after")
        self.pull_and_check(image, "outage/app", "before")
        self.pull_and_check(after, "outage/app", "after")
        layer = image.blobs()[-1].digest
        a, b = self.daemons["a"], self.daemons["b"]
        self.assertEqual(request(a, "DELETE", "/v2/outage/app/blobs/" + layer).status, 202)
        self.assertEqual(request(b, "HEAD", "/v2/outage/app/blobs/" + layer).status, 404)
        for daemon in self.ours:
            self.assertEqual(daemon.log_text().count("is unavailable"), 1, daemon.log_text()[-3000:])
            self.assertNotIn("Traceback", daemon.log_text())

    def test_instance_killed_in_the_middle_of_a_push(self):
        index = images.Index("fleet-killed", layer_sizes=(512 * 1024, 2 * 1024 * 1024))
        victim = self.daemons["b"]
        outcome = []

        def push():
            try:
                self.push(index, "killed/app", "v1")
                outcome.append(None)
            except SkopeoError as failure:
                outcome.append(failure)

        pusher = threading.Thread(target=push)
        pusher.start()
        deadline = time.monotonic() + 60
        while "PATCH" not in victim.log_text() and "PUT" not in victim.log_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertLess(time.monotonic(), deadline, "the push never reached instance b")
        victim.kill()
        pusher.join(300)
        self.assertFalse(pusher.is_alive())
        if outcome[0] is not None:
            # The client retries the push; the balancer sends it to the others.
            self.push(index, "killed/app", "v1")
        self.pull_and_check(index, "killed/app", "v1")


class MixedKindsMixin(FleetMixin):
    """A fleet of both kinds: spectroreg and Distribution 2.8 as instance c."""

    distribution = ("c",)

    def test_upload_hops_between_kinds(self):
        """Each PATCH to the other kind, both ways round, straight to the instances."""
        ours = self.daemons[next(n for n in NAMES if n not in self.distribution)]
        theirs = self.daemons[self.distribution[0]]
        sizes = (64 * 1024, 6 * 1024 * 1024 + 1, 3000, 1, 200 * 1024)
        for turns in ((ours, theirs), (theirs, ours)):
            data = os.urandom(sum(sizes))
            started = request(turns[0], "POST", "/v2/kinds/blobs/uploads/")
            self.assertEqual(started.status, 202, started.body)
            location = path_of(started.headers["location"])
            offset = 0
            for number, size in enumerate(sizes):
                server = turns[(number + 1) % 2]
                response = request(server, "PATCH", location, data[offset:offset + size], headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": "{}-{}".format(offset, offset + size - 1)})
                self.assertEqual(response.status, 202, (number, response.body))
                offset += size
                self.assertEqual(response.headers["range"], "0-{}".format(offset - 1))
                location = path_of(response.headers["location"])
            separator = "&" if "?" in location else "?"
            done = request(turns[len(sizes) % 2], "PUT", location + separator + "digest=" + sha256(data))
            self.assertEqual(done.status, 201, done.body)
            for daemon in self.daemons.values():
                got = request(daemon, "GET", "/v2/kinds/blobs/" + sha256(data))
                self.assertEqual(got.status, 200)
                self.assertTrue(got.body == data)


class FilesystemFleetTests(FleetMixin, unittest.TestCase):
    def storage(self):
        return {"filesystem": {"rootdirectory": os.path.join(self.work, "root")}}


class S3FleetTests(FleetMixin, unittest.TestCase):
    def storage(self):
        server, bucket = fresh_bucket(self)
        config = registry_s3_config("spectroreg", server, bucket, 0)
        return {"s3": config["storage"]["s3"], "redirect": {"disable": True},
                "maintenance": {"uploadpurging": {"enabled": False}}}


class MixedFleetTests(MixedKindsMixin, unittest.TestCase):
    """
    Distribution 2.8 beside two spectroreg daemons: one root, one Redis.
    Deletes and re-tags through either kind are seen by the other at once
    (the shared cache's layout is the same), and an upload moves between the
    kinds between requests: both sign the upload state in each Location
    (``_state``) the same way with the shared ``http.secret``.
    """

    def storage(self):
        return {"filesystem": {"rootdirectory": os.path.join(self.work, "root")}}


class MixedS3FleetTests(MixedKindsMixin, unittest.TestCase):
    """
    The mixed fleet on one moto bucket: an upload in flight is an S3
    multipart upload on its ``data`` key in both kinds, so each continues
    and finishes the other's.
    """

    def storage(self):
        return S3FleetTests.storage(self)
