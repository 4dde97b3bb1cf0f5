"""
The registry's domain errors: every failure a client can cause is a
``RegistryError`` carrying an OCI error code and a detail for the client.

Nothing here knows of HTTP: which status, message and headers answer an
error is decided in one place above, ``spectroreg.api.errors``. Failures
whose answer needs more than the code carry it as data in their own type
(L{UploadOffsetMismatch} knows the upload's size, for the Range header).
"""


class RegistryError(Exception):
    """
    A failure with an OCI error code.

    @ivar code: an OCI error code (``BLOB_UNKNOWN``, ``MANIFEST_INVALID``, ...).
    @ivar detail: JSON-able detail for the client, or None.
    """

    def __init__(self, code, detail=None):
        super().__init__("{}: {}".format(code, detail) if detail is not None else code)
        self.code = code
        self.detail = detail


class UploadOffsetMismatch(RegistryError):
    """
    A chunk does not start where the upload ends.

    @ivar offset: where the client said its bytes start.
    @ivar size: the bytes the upload holds.
    """

    def __init__(self, offset, size):
        super().__init__("BLOB_UPLOAD_INVALID", "chunk starts at {}, upload has {} bytes".format(offset, size))
        self.offset = offset
        self.size = size


class ManifestTooLarge(RegistryError):
    """A manifest over L{spectroreg.registry.manifests.MAX_MANIFEST_SIZE}."""

    def __init__(self):
        super().__init__("MANIFEST_INVALID", "manifest exceeds 4 MiB")


def blob_unknown(digest=None):
    return RegistryError("BLOB_UNKNOWN", detail=str(digest) if digest else None)


def manifest_unknown(reference=None):
    return RegistryError("MANIFEST_UNKNOWN", detail=str(reference) if reference else None)


def upload_unknown(upload_id=None):
    return RegistryError("BLOB_UPLOAD_UNKNOWN", detail=upload_id)


def name_unknown(name):
    return RegistryError("NAME_UNKNOWN", detail={"name": name})


def unsupported(detail=None):
    return RegistryError("UNSUPPORTED", detail=detail)


def readonly():
    return RegistryError("UNSUPPORTED", detail="registry is in read-only mode")
