"""
Manifests as Go reads them: the same edge cases pushed into spectroreg and
into Debian's ``docker-registry`` (Distribution 2.8), and a tree holding
every kind of manifest spectroreg accepts read by Distribution's offline
garbage collector and served by Distribution.

Distribution derives a stored manifest's type from its body; spectroreg
validates a pushed manifest as that same derived type, so a body is never
checked as one type and served as another. It also refuses what Go cannot
read (``NaN``, ``Infinity``, annotations that are not strings), which
would otherwise make the garbage collector abort over the whole tree.
"""

import hashlib
import json
import os

from twisted.trial import unittest

from tests.support.rawhttp import add_query, path_of, request
from tests.support.reference import garbage_collect
from tests.support.registries import start_registry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST])

REPOSITORY = "kinds/app"
REFUSED = 400


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def encode(document):
    return document if isinstance(document, bytes) else json.dumps(document).encode("utf-8")


class Content:
    """Blobs pushed into a registry and descriptors for them."""

    def __init__(self, server):
        self.server = server
        self.config = self.blob(b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}')
        self.layer = self.blob(b"layer bytes, not really a tar")
        self.empty = self.blob(b"{}")

    def blob(self, data):
        """Push C{data} the way every registry takes it (POST, then PUT with the body)."""
        response = request(self.server, "POST", "/v2/{}/blobs/uploads/".format(REPOSITORY))
        assert response.status == 202, response.describe()
        response = request(self.server, "PUT", add_query(path_of(response.header("location")), digest=sha256(data)),
                           data)
        assert response.status == 201, response.describe()
        return {"digest": sha256(data), "size": len(data)}

    def descriptor(self, media_type, blob, **extra):
        value = {"mediaType": media_type, "digest": blob["digest"], "size": blob["size"]}
        value.update(extra)
        return value

    def put(self, reference, body, content_type):
        headers = {"Content-Type": content_type} if content_type else {}
        return request(self.server, "PUT", "/v2/{}/manifests/{}".format(REPOSITORY, reference), body, headers)

    def served_type(self, reference):
        response = request(self.server, "GET", "/v2/{}/manifests/{}".format(REPOSITORY, reference), b"",
                           {"Accept": ACCEPT})
        assert response.status == 200, response.describe()
        return response.header("content-type")


def edge_cases(content):
    """
    (name, body, Content-Type, spectroreg's outcome, Distribution's outcome):
    an outcome is the type the manifest is served with, or REFUSED.
    """
    config = content.descriptor(OCI_CONFIG, content.config)
    layer = content.descriptor(OCI_LAYER, content.layer)
    docker_config = content.descriptor(DOCKER_CONFIG, content.config)
    docker_layer = content.descriptor(DOCKER_LAYER, content.layer)
    image = encode({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer]})
    response = content.put(sha256(image), image, OCI_MANIFEST)
    assert response.status == 201, response.describe()
    child = {"mediaType": OCI_MANIFEST, "digest": sha256(image), "size": len(image)}
    both = {"schemaVersion": 2, "config": config, "layers": [layer], "manifests": [child]}
    return [
        # Checked as an index, would be served as an image manifest.
        ("both-as-index", both, OCI_INDEX, REFUSED, REFUSED),
        ("both-as-image", both, OCI_MANIFEST, REFUSED, REFUSED),
        ("both-typed-image", dict(both, mediaType=OCI_MANIFEST), OCI_MANIFEST, REFUSED, REFUSED),
        ("both-typed-index", dict(both, mediaType=OCI_INDEX), OCI_INDEX, REFUSED, REFUSED),
        ("untyped-index", {"schemaVersion": 2, "manifests": [child]}, OCI_INDEX, OCI_INDEX, OCI_INDEX),
        ("untyped-empty-index", {"schemaVersion": 2, "manifests": []}, OCI_INDEX, OCI_INDEX, OCI_INDEX),
        # Distribution takes it as an index and serves it as an image manifest.
        ("untyped-index-without-manifests", {"schemaVersion": 2}, OCI_INDEX, REFUSED, OCI_MANIFEST),
        ("untyped-image", {"schemaVersion": 2, "config": config, "layers": [layer]}, OCI_MANIFEST,
         OCI_MANIFEST, OCI_MANIFEST),
        ("untyped-image-null-type", {"schemaVersion": 2, "mediaType": None, "config": config, "layers": [layer]},
         OCI_MANIFEST, OCI_MANIFEST, OCI_MANIFEST),
        ("untyped-image-sent-as-index", {"schemaVersion": 2, "config": config, "layers": [layer]}, OCI_INDEX,
         REFUSED, REFUSED),
        ("untyped-index-sent-as-image", {"schemaVersion": 2, "manifests": [child]}, OCI_MANIFEST, REFUSED, REFUSED),
        ("image-sent-as-index", {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer]},
         OCI_INDEX, REFUSED, REFUSED),
        ("index-sent-as-image", {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [child]}, OCI_MANIFEST,
         REFUSED, REFUSED),
        ("docker-sent-as-oci", {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": docker_config,
                                "layers": [docker_layer]}, OCI_MANIFEST, REFUSED, REFUSED),
        ("untyped-docker", {"schemaVersion": 2, "config": docker_config, "layers": [docker_layer]},
         DOCKER_MANIFEST, REFUSED, REFUSED),
        ("docker", {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": docker_config,
                    "layers": [docker_layer]}, DOCKER_MANIFEST, DOCKER_MANIFEST, DOCKER_MANIFEST),
        ("docker-list-sent-as-oci-index", {"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [child]},
         OCI_INDEX, REFUSED, REFUSED),
        # Both an image and an index: refused here whatever the type.
        ("docker-with-manifests", {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": docker_config,
                                   "layers": [docker_layer], "manifests": [child]}, DOCKER_MANIFEST,
         REFUSED, DOCKER_MANIFEST),
        ("docker-list-with-layers", {"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [child],
                                     "layers": [layer]}, DOCKER_LIST, REFUSED, DOCKER_LIST),
        # What Go cannot read.
        ("nan-annotation", b'{"schemaVersion": 2, "mediaType": "' + OCI_MANIFEST.encode() + b'", "config": '
         + encode(config) + b', "layers": [], "annotations": {"x": NaN}}', OCI_MANIFEST, REFUSED, REFUSED),
        ("object-annotation", {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer],
                               "annotations": {"x": {"y": 1}}}, OCI_MANIFEST, REFUSED, REFUSED),
        ("float-size", {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config,
                        "layers": [dict(layer, size=1.5)]}, OCI_MANIFEST, REFUSED, REFUSED),
        ("float-schema-version", {"schemaVersion": 2.0, "mediaType": OCI_MANIFEST, "config": config,
                                  "layers": [layer]}, OCI_MANIFEST, REFUSED, REFUSED),
        ("numeric-architecture", {"schemaVersion": 2, "mediaType": OCI_INDEX,
                                  "manifests": [dict(child, platform={"architecture": 1, "os": "linux"})]},
         OCI_INDEX, REFUSED, REFUSED),
        # Read by Go as "" and -1, but not what the image spec allows.
        ("null-annotation", {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer],
                             "annotations": {"x": None}}, OCI_MANIFEST, REFUSED, OCI_MANIFEST),
        ("negative-size", {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config,
                           "layers": [dict(layer, size=-1)]}, OCI_MANIFEST, REFUSED, OCI_MANIFEST),
    ]


class ManifestEdgeCasesMixin:
    """The same pushes against one registry kind; C{column} picks its expected outcome."""

    kind = None
    column = None

    def test_edge_cases(self):
        work = os.path.abspath(self.mktemp())
        server = start_registry(self.kind, None, os.path.join(work, self.kind))
        self.addCleanup(server.kill)
        content = Content(server)
        mismatches = []
        for case in edge_cases(content):
            name, document, content_type, expected = case[0], case[1], case[2], case[self.column]
            response = content.put(name, encode(document), content_type)
            if response.status == 201:
                outcome = content.served_type(name)
            elif 400 <= response.status < 500:
                outcome = REFUSED
            else:
                outcome = response.describe()
            if outcome != expected:
                mismatches.append("{}: expected {}, got {} ({})".format(
                    name, expected, outcome, response.body[:200]))
        self.assertEqual(mismatches, [])


class SpectroregManifestEdgeCases(ManifestEdgeCasesMixin, unittest.TestCase):
    kind = "spectroreg"
    column = 3


class DistributionManifestEdgeCases(ManifestEdgeCasesMixin, unittest.TestCase):
    """Proves the table's Distribution column (the reference the other column departs from)."""

    kind = "docker-registry"
    column = 4


def accepted_kinds(content):
    """(reference, body, Content-Type) for every kind of manifest spectroreg accepts."""
    config = content.descriptor(OCI_CONFIG, content.config)
    layer = content.descriptor(OCI_LAYER, content.layer, annotations={"org.opencontainers.image.title": "l"})
    foreign = {"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
               "digest": sha256(b"foreign"), "size": 7, "urls": ["https://example.com/foreign"]}
    empty = content.descriptor(OCI_EMPTY, content.empty, data="e30=")
    image = encode({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer, foreign],
                    "annotations": {"org.opencontainers.image.created": "2026-12-02T00:00:00Z", "x": ""}})
    untyped_image = encode({"schemaVersion": 2, "config": config, "layers": [layer]})
    docker = encode({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                     "config": content.descriptor(DOCKER_CONFIG, content.config),
                     "layers": [content.descriptor(DOCKER_LAYER, content.layer),
                                {"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                                 "digest": sha256(b"foreign"), "size": 7,
                                 "urls": ["https://example.com/foreign"]}]})
    platform = {"architecture": "arm64", "os": "linux", "os.version": "6.1", "os.features": ["f"],
                "variant": "v8", "features": ["g"]}
    image_descriptor = {"mediaType": OCI_MANIFEST, "digest": sha256(image), "size": len(image)}
    index = encode({"schemaVersion": 2, "mediaType": OCI_INDEX,
                    "manifests": [dict(image_descriptor, platform=platform, annotations={"a": "b"}),
                                  {"mediaType": OCI_MANIFEST, "digest": sha256(untyped_image),
                                   "size": len(untyped_image)}],
                    "annotations": {"a": "b"}})
    untyped_index = encode({"schemaVersion": 2, "manifests": [image_descriptor]})
    empty_index = encode({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
    docker_list = encode({"schemaVersion": 2, "mediaType": DOCKER_LIST,
                          "manifests": [{"mediaType": DOCKER_MANIFEST, "digest": sha256(docker), "size": len(docker),
                                         "platform": {"architecture": "arm", "os": "linux", "variant": "v7",
                                                      "features": ["sse4"], "os.features": []}}]})
    artifact = encode({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example+type",
                       "config": empty, "layers": [layer]})
    referrer = encode({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.sig",
                       "config": empty, "layers": [], "subject": image_descriptor,
                       "annotations": {"org.example.signed": "yes"}})
    dangling = encode({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": empty, "layers": [],
                       "subject": {"mediaType": OCI_MANIFEST, "digest": sha256(b"nowhere"), "size": 7}})
    index_referrer = encode({"schemaVersion": 2, "mediaType": OCI_INDEX, "artifactType": "application/vnd.example.sbom",
                             "manifests": [], "subject": image_descriptor})
    # Children before their indexes; some by tag, some by digest only.
    return [
        ("image", image, OCI_MANIFEST),
        (sha256(untyped_image), untyped_image, OCI_MANIFEST),
        ("docker", docker, DOCKER_MANIFEST),
        ("index", index, OCI_INDEX),
        ("untyped-index", untyped_index, OCI_INDEX),
        (sha256(empty_index), empty_index, OCI_INDEX),
        ("docker-list", docker_list, DOCKER_LIST),
        ("artifact", artifact, OCI_MANIFEST),
        (sha256(referrer), referrer, OCI_MANIFEST),
        ("dangling-subject", dangling, OCI_MANIFEST),
        (sha256(index_referrer), index_referrer, OCI_INDEX),
    ]


def refused_kinds(content):
    """(tag, body, Content-Type) of manifests Go cannot read, or that are two types at once."""
    config = encode(content.descriptor(OCI_CONFIG, content.config))
    layer = content.descriptor(OCI_LAYER, content.layer)
    head = b'{"schemaVersion": 2, "mediaType": "' + OCI_MANIFEST.encode() + b'", "config": ' + config

    def image(**extra):
        document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": content.descriptor(OCI_CONFIG, content.config), "layers": [layer]}
        document.update(extra)
        return encode(document)

    return [
        ("nan", head + b', "layers": [], "annotations": {"x": NaN}}', OCI_MANIFEST),
        ("infinity", head + b', "layers": [], "annotations": {"x": Infinity}}', OCI_MANIFEST),
        ("minus-infinity", head + b', "layers": [], "x": -Infinity}', OCI_MANIFEST),
        ("out-of-range", head + b', "layers": [], "annotations": {"x": 1e400}}', OCI_MANIFEST),
        ("object-annotation", image(annotations={"x": {"y": 1}}), OCI_MANIFEST),
        ("number-annotation", image(annotations={"x": 1}), OCI_MANIFEST),
        ("layer-annotation", image(layers=[dict(layer, annotations={"x": [1]})]), OCI_MANIFEST),
        ("huge-size", image(layers=[dict(layer, size=2 ** 63)]), OCI_MANIFEST),
        ("newline-digest", image(layers=[dict(layer, digest=layer["digest"] + "\n")]), OCI_MANIFEST),
        ("bad-data", image(config=content.descriptor(OCI_EMPTY, content.empty, data="{}")), OCI_MANIFEST),
        ("subject-nan", head + b', "layers": [], "subject": {"mediaType": "' + OCI_MANIFEST.encode()
         + b'", "digest": "' + sha256(b"x").encode() + b'", "size": 1, "annotations": {"x": NaN}}}', OCI_MANIFEST),
        ("both", encode({"schemaVersion": 2, "config": content.descriptor(OCI_CONFIG, content.config),
                         "layers": [layer], "manifests": []}), OCI_INDEX),
    ]


class GarbageCollectTests(unittest.TestCase):
    """Distribution's garbage collector and server read every manifest spectroreg accepts."""

    timeout = 600

    def test_garbage_collect_reads_every_kind(self):
        work = os.path.abspath(self.mktemp())
        root = os.path.join(work, "root")
        os.makedirs(root)
        server = start_registry("spectroreg", root, os.path.join(work, "spectroreg"))
        self.addCleanup(server.kill)
        content = Content(server)
        served = {}
        for reference, body, content_type in accepted_kinds(content):
            response = content.put(reference, body, content_type)
            self.assertEqual(response.status, 201, "{}: {}".format(reference, response.describe()))
            served[sha256(body)] = content.served_type(sha256(body))
            self.assertEqual(served[sha256(body)], content_type, reference)
        for tag, body, content_type in refused_kinds(content):
            response = content.put(tag, body, content_type)
            self.assertEqual((response.status, response.error_codes()), (400, ["MANIFEST_INVALID"]),
                             "{}: {}".format(tag, response.describe()))
        server.stop()

        output = garbage_collect(root, workdir=os.path.join(work, "gc"), dry_run=True)
        for digest in served:
            self.assertIn("marking manifest {}".format(digest), output)

        reference = start_registry("docker-registry", root, os.path.join(work, "docker-registry"))
        self.addCleanup(reference.kill)
        for digest, media_type in sorted(served.items()):
            response = request(reference, "GET", "/v2/{}/manifests/{}".format(REPOSITORY, digest), b"",
                               {"Accept": ACCEPT})
            self.assertEqual((response.status, response.header("content-type")), (200, media_type), digest)
