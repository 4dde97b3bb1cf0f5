"""
Manifest parsing and validation: OCI image manifest and index, Docker
schema 2 manifest and manifest list, artifacts (``artifactType``).

Manifests are stored byte for byte; this module only reads them, to check
them on push, to find what they reference, and to derive the media type a
stored manifest is served with (Distribution derives it from the body's
``mediaType`` the same way, so a tree written by either serves alike).
"""

import json

from spectroreg.registry.digests import parse_digest
from spectroreg.registry.errors import RegistryError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

IMAGE_TYPES = frozenset([OCI_MANIFEST, DOCKER_MANIFEST])
INDEX_TYPES = frozenset([OCI_INDEX, DOCKER_LIST])
MANIFEST_TYPES = IMAGE_TYPES | INDEX_TYPES

# Accept header value clients send when they take any of ours.
ALL_TYPES = tuple(sorted(MANIFEST_TYPES))

MAX_MANIFEST_SIZE = 4 * 1024 * 1024


class Descriptor:
    """A content descriptor as found in a manifest."""

    __slots__ = ("media_type", "digest", "size", "artifact_type", "annotations", "raw")

    def __init__(self, media_type, digest, size, artifact_type=None, annotations=None, raw=None):
        self.media_type = media_type
        self.digest = digest
        self.size = size
        self.artifact_type = artifact_type
        self.annotations = annotations
        self.raw = raw

    def __repr__(self):
        return "Descriptor({!r}, {!r}, {!r})".format(self.media_type, str(self.digest), self.size)


class Manifest:
    """
    What a parsed manifest says.

    @ivar media_type: the effective media type (str).
    @ivar config: L{Descriptor} or None (indexes have none).
    @ivar layers: list of L{Descriptor} (blobs that must exist), not
        counting foreign layers (those with ``urls``).
    @ivar manifests: list of L{Descriptor} (manifests that must exist).
    @ivar subject: L{Descriptor} or None.
    @ivar artifact_type: for referrers: ``artifactType``, else the config's
        media type for image manifests, else None.
    @ivar annotations: dict or None.
    """

    def __init__(self, media_type, config, layers, manifests, subject, artifact_type, annotations):
        self.media_type = media_type
        self.config = config
        self.layers = layers
        self.manifests = manifests
        self.subject = subject
        self.artifact_type = artifact_type
        self.annotations = annotations

    def references(self):
        """Blobs (config and layers) the manifest needs in its repository."""
        found = []
        if self.config is not None:
            found.append(self.config)
        found.extend(self.layers)
        return found


def _invalid(detail):
    return RegistryError("MANIFEST_INVALID", detail=detail)


def _normalise_type(content_type):
    if content_type is None:
        return None
    if isinstance(content_type, bytes):
        content_type = content_type.decode("latin-1")
    value = content_type.split(";", 1)[0].strip().lower()
    return value or None


def _descriptor(value, where):
    if not isinstance(value, dict):
        raise _invalid("{}: descriptor must be an object".format(where))
    media_type = value.get("mediaType")
    if not isinstance(media_type, str) or not media_type:
        raise _invalid("{}: mediaType missing".format(where))
    digest_value = value.get("digest")
    if not isinstance(digest_value, str):
        raise _invalid("{}: digest missing".format(where))
    try:
        digest = parse_digest(digest_value)
    except RegistryError:
        raise _invalid("{}: invalid digest {!r}".format(where, digest_value))
    size = value.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise _invalid("{}: size must be a non-negative integer".format(where))
    artifact_type = value.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise _invalid("{}: artifactType must be a string".format(where))
    annotations = value.get("annotations")
    if annotations is not None and not isinstance(annotations, dict):
        raise _invalid("{}: annotations must be an object".format(where))
    return Descriptor(media_type, digest, size, artifact_type, annotations, value)


def load_json(body):
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _invalid("manifest is not valid JSON")
    if not isinstance(document, dict):
        raise _invalid("manifest must be a JSON object")
    return document


def media_type_of(body):
    """
    The media type a stored manifest is served with: its ``mediaType``, or
    for an OCI manifest without one, index or image by its shape (what
    Distribution does).
    """
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return OCI_MANIFEST
    if not isinstance(document, dict):
        return OCI_MANIFEST
    media_type = document.get("mediaType")
    if isinstance(media_type, str) and media_type:
        return media_type
    if document.get("schemaVersion") == 1:
        return DOCKER_SCHEMA1_SIGNED if "signatures" in document else DOCKER_SCHEMA1
    if "manifests" in document and "config" not in document:
        return OCI_INDEX
    return OCI_MANIFEST


def parse_manifest(body, content_type=None):
    """
    Validate a pushed manifest.

    @param body: the bytes as received.
    @param content_type: the request's Content-Type (str/bytes) or None.
    @return: L{Manifest}.
    @raise RegistryError: MANIFEST_INVALID.
    """
    document = load_json(body)
    declared = _normalise_type(content_type)
    if declared in ("application/json", "application/octet-stream", "text/plain"):
        declared = None
    body_type = document.get("mediaType")
    if body_type is not None and (not isinstance(body_type, str) or not body_type):
        raise _invalid("mediaType must be a string")
    if document.get("schemaVersion") != 2:
        raise _invalid("schemaVersion must be 2")
    if body_type and declared and body_type != declared:
        raise _invalid("mediaType {!r} does not match Content-Type {!r}".format(body_type, declared))
    media_type = body_type or declared
    if media_type is None:
        media_type = OCI_INDEX if ("manifests" in document and "config" not in document) else OCI_MANIFEST
    if media_type not in MANIFEST_TYPES:
        raise _invalid("unsupported manifest media type {!r}".format(media_type))
    if media_type in (DOCKER_MANIFEST, DOCKER_LIST) and not body_type:
        raise _invalid("a Docker schema 2 manifest must carry its mediaType")

    artifact_type = document.get("artifactType")
    if artifact_type is not None and (not isinstance(artifact_type, str) or not artifact_type):
        raise _invalid("artifactType must be a string")
    if artifact_type is not None and media_type not in (OCI_MANIFEST, OCI_INDEX):
        raise _invalid("artifactType is only allowed in OCI manifests")
    annotations = document.get("annotations")
    if annotations is not None and not isinstance(annotations, dict):
        raise _invalid("annotations must be an object")
    subject = None
    if document.get("subject") is not None:
        if media_type not in (OCI_MANIFEST, OCI_INDEX):
            raise _invalid("subject is only allowed in OCI manifests")
        subject = _descriptor(document["subject"], "subject")

    config = None
    layers = []
    manifests = []
    if media_type in IMAGE_TYPES:
        if "config" not in document:
            raise _invalid("config missing")
        config = _descriptor(document["config"], "config")
        raw_layers = document.get("layers", [])
        if media_type == DOCKER_MANIFEST and "layers" not in document:
            raise _invalid("layers missing")
        if not isinstance(raw_layers, list):
            raise _invalid("layers must be a list")
        for position, raw in enumerate(raw_layers):
            layer = _descriptor(raw, "layers[{}]".format(position))
            urls = raw.get("urls")
            if urls:
                if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
                    raise _invalid("layers[{}]: urls must be a list of strings".format(position))
                continue  # foreign layer: not stored here
            layers.append(layer)
        if artifact_type is None:
            artifact_type = config.media_type
    else:
        raw_manifests = document.get("manifests")
        if not isinstance(raw_manifests, list):
            raise _invalid("manifests must be a list")
        for position, raw in enumerate(raw_manifests):
            manifests.append(_descriptor(raw, "manifests[{}]".format(position)))
    return Manifest(media_type, config, layers, manifests, subject, artifact_type, annotations)
