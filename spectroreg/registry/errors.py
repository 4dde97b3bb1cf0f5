"""
The registry's error codes: one place holding each OCI error code with its
message and HTTP status, and the exception type that carries them.

Every failure a client can cause is a ``RegistryError``; the API turns it
into ``{"errors": [{"code", "message", "detail"}]}`` with its status
(``spectroreg.api.errors``). The registry layer raises these too, so the
logic underneath needs no knowledge of HTTP beyond the status number.
"""

import json

# code -> (message, HTTP status); the messages are Distribution's.
CODES = {
    "BLOB_UNKNOWN": ("blob unknown to registry", 404),
    "BLOB_UPLOAD_INVALID": ("blob upload invalid", 400),
    "BLOB_UPLOAD_UNKNOWN": ("blob upload unknown to registry", 404),
    "DIGEST_INVALID": ("provided digest did not match uploaded content", 400),
    "MANIFEST_BLOB_UNKNOWN": ("manifest references a manifest or blob unknown to registry", 400),
    "MANIFEST_INVALID": ("manifest invalid", 400),
    "MANIFEST_UNKNOWN": ("manifest unknown", 404),
    "NAME_INVALID": ("invalid repository name", 400),
    "NAME_UNKNOWN": ("repository name not known to registry", 404),
    "SIZE_INVALID": ("provided length did not match content length", 400),
    "UNAUTHORIZED": ("authentication required", 401),
    "DENIED": ("requested access to the resource is denied", 403),
    "UNSUPPORTED": ("The operation is unsupported.", 405),
    "TOOMANYREQUESTS": ("too many requests", 429),
    "UNAVAILABLE": ("service unavailable", 503),
    "UNKNOWN": ("unknown error", 500),
}


class RegistryError(Exception):
    """
    A failure with an OCI error code.

    @ivar code: one of L{CODES}.
    @ivar status: the HTTP status (the code's default unless given).
    @ivar detail: JSON-able detail for the client, or None.
    @ivar headers: extra (name, value) response headers (str).
    """

    def __init__(self, code, detail=None, status=None, message=None, headers=()):
        default_message, default_status = CODES[code]
        super().__init__("{}: {}".format(code, detail if detail is not None else default_message))
        self.code = code
        self.message = message or default_message
        self.status = status or default_status
        self.detail = detail
        self.headers = tuple(headers)

    def body(self):
        """The OCI error document (bytes)."""
        return error_body(self.code, self.message, self.detail)


def error_body(code, message, detail=None):
    entry = {"code": code, "message": message}
    entry["detail"] = detail if detail is not None else {}
    return json.dumps({"errors": [entry]}).encode("utf-8")


def blob_unknown(digest=None):
    return RegistryError("BLOB_UNKNOWN", detail=str(digest) if digest else None)


def manifest_unknown(reference=None):
    return RegistryError("MANIFEST_UNKNOWN", detail=str(reference) if reference else None)


def upload_unknown(upload_id=None):
    return RegistryError("BLOB_UPLOAD_UNKNOWN", detail=upload_id)


def name_unknown(name):
    return RegistryError("NAME_UNKNOWN", detail={"name": name})


def unsupported(detail=None, status=None):
    return RegistryError("UNSUPPORTED", detail=detail, status=status)


def readonly():
    return RegistryError("UNSUPPORTED", detail="registry is in read-only mode")
