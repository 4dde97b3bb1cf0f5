"""
Manifest parsing and validation: OCI image manifest and index, Docker
schema 2 manifest and manifest list, artifacts (``artifactType``).

Manifests are stored byte for byte; this module only reads them, to check
them on push, to find what they reference, and to derive the media type a
stored manifest is served with (Distribution derives it from the body's
``mediaType`` the same way, so a tree written by either serves alike).

A pushed manifest is read strictly, as Go clients and Distribution's
garbage collector will read it later: RFC 8259 JSON (no ``NaN`` or
``Infinity``, which Python's json accepts), and every field we or they read
of the type the OCI image spec gives it (a size is a non-negative 64-bit
integer, annotations map strings to strings, a platform's fields are
strings...). Its type is the one L{media_type_of} derives from the body,
the same function that decides how it is served: a ``Content-Type`` that
says otherwise, or a body that is both an image and an index, is refused.
"""

import base64
import binascii
import json
import math

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

# Go reads sizes as int64.
INT64_MAX = 2 ** 63 - 1


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
    value = content_type.split(";", 1)[0].strip().lower()
    return value or None


def _no_constant(name):
    raise ValueError("{} is not JSON".format(name))


def _finite_float(text):
    value = float(text)
    if math.isinf(value):
        # 1e400: Go refuses it as out of range.
        raise ValueError("number out of range")
    return value


def load_json(body):
    """
    A pushed manifest's JSON object, read as RFC 8259 reads it.

    @raise RegistryError: MANIFEST_INVALID.
    """
    try:
        document = json.loads(body.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite_float)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _invalid("manifest is not valid JSON")
    if not isinstance(document, dict):
        raise _invalid("manifest must be a JSON object")
    return document


# -- field types --------------------------------------------------------


def _optional(value, where, check):
    """C{check(value, where)} unless the field is absent (None or JSON null, as Go reads it)."""
    if value is None:
        return None
    return check(value, where)


def _string(value, where):
    if not isinstance(value, str):
        raise _invalid("{} must be a string".format(where))
    return value


def _nonempty_string(value, where):
    if not isinstance(value, str) or not value:
        raise _invalid("{} must be a non-empty string".format(where))
    return value


def _strings(value, where):
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _invalid("{} must be a list of strings".format(where))
    return value


def _string_map(value, where):
    if not isinstance(value, dict) or not all(isinstance(item, str) for item in value.values()):
        raise _invalid("{} must map strings to strings".format(where))
    return value


def _object(value, where):
    if not isinstance(value, dict):
        raise _invalid("{} must be an object".format(where))
    return value


def _list(value, where):
    if not isinstance(value, list):
        raise _invalid("{} must be a list".format(where))
    return value


def _size(value, where):
    # bool is an int in Python, not in JSON; Go reads size as an int64.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INT64_MAX:
        raise _invalid("{}: size must be a non-negative integer".format(where))
    return value


def _base64(value, where):
    _string(value, where)
    try:
        base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise _invalid("{} must be base64".format(where))
    return value


_PLATFORM_FIELDS = {
    "architecture": _string,
    "os": _string,
    "os.version": _string,
    "os.features": _strings,
    "variant": _string,
    "features": _strings,
}


def _platform(value, where):
    _object(value, where)
    for field, check in _PLATFORM_FIELDS.items():
        _optional(value.get(field), "{}.{}".format(where, field), check)
    return value


def _descriptor(value, where):
    _object(value, where)
    if value.get("mediaType") is None:
        raise _invalid("{}: mediaType missing".format(where))
    media_type = _nonempty_string(value["mediaType"], where + ".mediaType")
    digest_value = value.get("digest")
    if not isinstance(digest_value, str):
        raise _invalid("{}: digest missing".format(where))
    try:
        digest = parse_digest(digest_value)
    except RegistryError:
        raise _invalid("{}: invalid digest {!r}".format(where, digest_value))
    size = _size(value.get("size"), where)
    artifact_type = _optional(value.get("artifactType"), where + ".artifactType", _nonempty_string)
    annotations = _optional(value.get("annotations"), where + ".annotations", _string_map)
    _optional(value.get("urls"), where + ".urls", _strings)
    _optional(value.get("data"), where + ".data", _base64)
    _optional(value.get("platform"), where + ".platform", _platform)
    return Descriptor(media_type, digest, size, artifact_type, annotations, value)


def load_descriptor(content):
    """
    A stored descriptor (bytes of JSON, e.g. a referrers entry) as a dict,
    read and checked as a pushed manifest's descriptors are, so nothing
    written before these checks existed reaches a client.

    @raise ValueError: not JSON Go could read, or not a descriptor.
    """
    try:
        value = json.loads(content.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite_float)
        _descriptor(value, "descriptor")
    except (UnicodeDecodeError, RecursionError, RegistryError) as e:
        raise ValueError(str(e))
    return value


# -- the manifest -------------------------------------------------------


def _derived_type(document):
    """
    The type a manifest document is served with: its ``mediaType``, or
    for an OCI manifest without one, an index when it holds ``manifests``
    (Distribution's rule, so both serve a tree alike).
    """
    media_type = document.get("mediaType")
    if isinstance(media_type, str) and media_type:
        return media_type
    if document.get("schemaVersion") == 1:
        return DOCKER_SCHEMA1_SIGNED if "signatures" in document else DOCKER_SCHEMA1
    if document.get("manifests") is not None:
        return OCI_INDEX
    return OCI_MANIFEST


def media_type_of(body):
    """The media type a stored manifest is served with (see L{_derived_type})."""
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return OCI_MANIFEST
    if not isinstance(document, dict):
        return OCI_MANIFEST
    return _derived_type(document)


def _pushed_media_type(document, content_type):
    """
    The media type of a pushed manifest's C{document}, checked against the
    C{content_type} it was pushed with and against what it holds.
    @raise RegistryError: MANIFEST_INVALID.
    """
    schema_version = document.get("schemaVersion")
    if isinstance(schema_version, bool) or not isinstance(schema_version, int) or schema_version != 2:
        raise _invalid("schemaVersion must be 2")
    body_type = _optional(document.get("mediaType"), "mediaType", _nonempty_string)
    media_type = _derived_type(document)
    declared = _normalise_type(content_type)
    if declared in ("application/json", "application/octet-stream", "text/plain"):
        declared = None
    if declared is not None and declared != media_type:
        if body_type:
            raise _invalid("mediaType {!r} does not match Content-Type {!r}".format(body_type, declared))
        raise _invalid("Content-Type {!r} does not match the manifest, which is a {!r}".format(declared, media_type))
    if media_type not in MANIFEST_TYPES:
        raise _invalid("unsupported manifest media type {!r}".format(media_type))
    if media_type in IMAGE_TYPES and document.get("manifests") is not None:
        raise _invalid("an image manifest must not hold manifests")
    if media_type in INDEX_TYPES and (document.get("config") is not None or document.get("layers") is not None):
        raise _invalid("an index must not hold config or layers")
    return media_type


def parse_manifest(body, content_type=None):
    """
    Validate a pushed manifest.

    @param body: the bytes as received.
    @param content_type: the request's Content-Type (str) or None.
    @return: L{Manifest}; its C{media_type} is what L{media_type_of} says
        of the same body.
    @raise RegistryError: MANIFEST_INVALID.
    """
    document = load_json(body)
    media_type = _pushed_media_type(document, content_type)
    artifact_type = _optional(document.get("artifactType"), "artifactType", _nonempty_string)
    if artifact_type is not None and media_type not in (OCI_MANIFEST, OCI_INDEX):
        raise _invalid("artifactType is only allowed in OCI manifests")
    annotations = _optional(document.get("annotations"), "annotations", _string_map)
    subject = None
    if document.get("subject") is not None:
        if media_type not in (OCI_MANIFEST, OCI_INDEX):
            raise _invalid("subject is only allowed in OCI manifests")
        subject = _descriptor(document["subject"], "subject")

    config = None
    layers = []
    manifests = []
    if media_type in IMAGE_TYPES:
        if document.get("config") is None:
            raise _invalid("config missing")
        config = _descriptor(document["config"], "config")
        if media_type == DOCKER_MANIFEST and "layers" not in document:
            raise _invalid("layers missing")
        raw_layers = document.get("layers", [])
        _list(raw_layers, "layers")
        for position, raw in enumerate(raw_layers):
            layer = _descriptor(raw, "layers[{}]".format(position))
            if raw.get("urls"):
                continue  # foreign layer: not stored here
            layers.append(layer)
        if artifact_type is None:
            artifact_type = config.media_type
    else:
        raw_manifests = _list(document.get("manifests"), "manifests")
        for position, raw in enumerate(raw_manifests):
            manifests.append(_descriptor(raw, "manifests[{}]".format(position)))
    return Manifest(media_type, config, layers, manifests, subject, artifact_type, annotations)
