"""
What repositories hold, as Distribution 2.8 answers it: cross-repository
mounts (only of a blob the ``from`` repository still links; an empty or
invalid ``from`` starts a plain upload), and which repositories the catalog
and the tags list know (one holding only blobs, only an upload, only an
untagged manifest, or whose tags were all deleted). The same requests go
to Debian's ``docker-registry`` and to spectroreg, on filesystem storage.
"""

import hashlib
import json
import os

from twisted.trial import unittest

from tests.support.rawhttp import add_query, path_of, request
from tests.support.registries import start_registry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def manifest(config):
    return json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config),
                   "size": len(config)},
        "layers": [],
    }, sort_keys=True).encode("utf-8")


class RepositoriesMixin:
    kind = None

    def setUp(self):
        work = os.path.abspath(self.mktemp())
        self.root = os.path.join(work, "root")
        self.server = start_registry(self.kind, self.root, os.path.join(work, self.kind))
        self.addCleanup(self.server.kill)

    def call(self, method, path, body=b"", headers=None):
        return request(self.server, method, path, body, headers)

    def push_blob(self, name, data):
        # POST then PUT: Distribution 2.8 does not finish a single POST ?digest=.
        response = self.call("POST", "/v2/{}/blobs/uploads/".format(name))
        self.assertEqual(response.status, 202, response.describe())
        response = self.call("PUT", add_query(path_of(response.header("location")), digest=sha(data)), data)
        self.assertEqual(response.status, 201, response.describe())
        return sha(data)

    def push_manifest(self, name, reference, body):
        response = self.call("PUT", "/v2/{}/manifests/{}".format(name, reference), body,
                             {"Content-Type": OCI_MANIFEST})
        self.assertEqual(response.status, 201, response.describe())

    def assert_plain_upload(self, response):
        self.assertEqual(response.status, 202, response.describe())
        self.assertIn("/blobs/uploads/", response.header("location"))
        self.assertEqual(response.header("range"), "0-0")

    def test_mount_needs_a_linking_repository(self):
        data = self.push_blob("leaky/app", b"leaky data")
        self.assertEqual(self.call("DELETE", "/v2/leaky/app/blobs/" + data).status, 202)
        for target, query in [("attacker/new", "mount=" + data),
                              ("attacker/from", "mount={}&from=leaky/app".format(data))]:
            self.assert_plain_upload(self.call("POST", "/v2/{}/blobs/uploads/?{}".format(target, query)))
            self.assertEqual(self.call("GET", "/v2/{}/blobs/{}".format(target, data)).status, 404)
        shared = self.push_blob("src/one", b"shared data")
        for target, source in [("empty/from", ""), ("invalid/from", "NOT..VALID"), ("absent/from", "src/two")]:
            response = self.call("POST", "/v2/{}/blobs/uploads/?mount={}&from={}".format(target, shared, source))
            self.assert_plain_upload(response)
            self.assertEqual(self.call("GET", "/v2/{}/blobs/{}".format(target, shared)).status, 404)
        response = self.call("POST", "/v2/mounted/blobs/uploads/?mount={}&from=src/one".format(shared))
        self.assertEqual(response.status, 201, response.describe())
        self.assertEqual(response.header("docker-content-digest"), shared)
        response = self.call("GET", "/v2/mounted/blobs/" + shared)
        self.assertEqual((response.status, response.body), (200, b"shared data"))

    def test_catalog_and_tags_list(self):
        self.push_blob("blobs/only", b"blob")
        response = self.call("POST", "/v2/mounted/only/blobs/uploads/?mount={}&from=blobs/only".format(sha(b"blob")))
        self.assertEqual(response.status, 201, response.describe())
        self.call("POST", "/v2/upload/only/blobs/uploads/")
        self.push_blob("image/app", b"config")
        self.push_manifest("image/app", "v1", manifest(b"config"))
        self.push_blob("untagged/app", b"config")
        self.push_manifest("untagged/app", sha(manifest(b"config")), manifest(b"config"))
        self.push_blob("emptied/app", b"config")
        self.push_manifest("emptied/app", "v1", manifest(b"config"))
        response = self.call("DELETE", "/v2/emptied/app/manifests/" + sha(manifest(b"config")))
        self.assertEqual(response.status, 202, response.describe())
        deleted = self.push_blob("deleted/blob", b"gone")
        self.assertEqual(self.call("DELETE", "/v2/deleted/blob/blobs/" + deleted).status, 202)

        response = self.call("GET", "/v2/_catalog")
        self.assertEqual(response.status, 200)
        self.assertEqual(json.loads(response.body)["repositories"],
                         ["blobs/only", "deleted/blob", "emptied/app", "image/app", "mounted/only", "untagged/app"])
        expected = {
            "blobs/only": (404, "NAME_UNKNOWN"),
            "mounted/only": (404, "NAME_UNKNOWN"),
            "upload/only": (404, "NAME_UNKNOWN"),
            "untagged/app": (404, "NAME_UNKNOWN"),
            "deleted/blob": (404, "NAME_UNKNOWN"),
            "never/pushed": (404, "NAME_UNKNOWN"),
            "image/app": (200, ["v1"]),
            # The tags directory stays on a filesystem (Distribution: "tags": null).
            "emptied/app": (200, []),
        }
        for name, answer in sorted(expected.items()):
            response = self.call("GET", "/v2/{}/tags/list".format(name))
            if response.status == 200:
                got = (200, json.loads(response.body)["tags"] or [])
            else:
                got = (response.status, (response.error_codes() or [None])[0])
            self.assertEqual(got, answer, name)


class DistributionRepositoriesTests(RepositoriesMixin, unittest.TestCase):
    """The reference: proves the test."""

    kind = "docker-registry"


class SpectroregRepositoriesTests(RepositoriesMixin, unittest.TestCase):
    kind = "spectroreg"
