"""
Pushing deterministic images, indexes and referrers to a running daemon
over blocking HTTP (``RegistryDaemon.request``), for tests that then look
at the registry some other way (a browser, the catalog).
"""

import json

from tests.support.images import OCI_MANIFEST, Blob, canonical_json


def _check(response, expected, what):
    if response.status not in expected:
        raise AssertionError("{}: {} {}".format(what, response.status, response.body[:500]))
    return response


def push_blob(daemon, name, blob, headers=None):
    path = "/v2/{}/blobs/uploads/?digest={}".format(name, blob.digest)
    hdrs = dict(headers or {})
    hdrs["Content-Type"] = "application/octet-stream"
    _check(daemon.request("POST", path, hdrs, blob.data), (201,), "blob " + blob.digest)


def put_manifest(daemon, name, reference, manifest, headers=None):
    hdrs = dict(headers or {})
    hdrs["Content-Type"] = manifest.media_type
    _check(daemon.request("PUT", "/v2/{}/manifests/{}".format(name, reference), hdrs, manifest.data),
           (201,), "manifest {}:{}".format(name, reference))


def push_image(daemon, name, tag, image, headers=None):
    """An L{tests.support.images.Image}: its blobs, then its manifest under C{tag}."""
    for blob in image.blobs():
        push_blob(daemon, name, blob, headers)
    put_manifest(daemon, name, tag, image.manifest, headers)


def push_index(daemon, name, tag, index, headers=None):
    """An L{tests.support.images.Index}: every image by digest, then the index under C{tag}."""
    for image in index.images:
        for blob in image.blobs():
            push_blob(daemon, name, blob, headers)
        put_manifest(daemon, name, image.digest, image.manifest, headers)
    put_manifest(daemon, name, tag, index.manifest, headers)


def push_referrer(daemon, name, subject, artifact_type, payload, annotations=None, headers=None):
    """
    An OCI artifact whose subject is C{subject} (a L{Blob} holding a manifest).
    @return: the referrer's manifest L{Blob}.
    """
    empty = Blob(b"{}", "application/vnd.oci.empty.v1+json")
    layer = Blob(payload, "application/json")
    push_blob(daemon, name, empty, headers)
    push_blob(daemon, name, layer, headers)
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": empty.descriptor(),
        "layers": [layer.descriptor()],
        "subject": subject.descriptor(),
    }
    if annotations:
        document["annotations"] = annotations
    manifest = Blob(canonical_json(document), OCI_MANIFEST)
    put_manifest(daemon, name, manifest.digest, manifest, headers)
    return manifest


def tags_of(daemon, name, headers=None):
    response = daemon.request("GET", "/v2/{}/tags/list".format(name), headers or {})
    if response.status != 200:
        return None
    return json.loads(response.body.decode("utf-8")).get("tags") or []


__all__ = ["push_blob", "put_manifest", "push_image", "push_index", "push_referrer", "tags_of"]
