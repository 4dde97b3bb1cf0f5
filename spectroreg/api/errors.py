"""
Turning any failure into an HTTP answer: the single place where an OCI
error code gets its message and status, where the registry's domain errors
(``spectroreg.registry.errors``) and authentication failures become an
L{APIError} (status, OCI error JSON, headers), and anything unexpected
becomes a logged 500.
"""

from twisted.logger import Logger

from spectroreg.auth.interfaces import TooManyRequests, Unauthorized
from spectroreg.registry.errors import ManifestTooLarge, RegistryError, UploadOffsetMismatch
from spectroreg.web.errordoc import error_body

log = Logger()

JSON = "application/json; charset=utf-8"

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


class APIError(Exception):
    """
    An error answer: an OCI error code with its HTTP status and headers.

    Raised by the API itself where it decides an answer the code alone does
    not give (a 416 for a bad Range), and made by L{as_api_error} from the
    registry's domain errors.

    @ivar code: one of L{CODES}.
    @ivar status: the HTTP status (the code's default unless given).
    @ivar message: the code's message unless given.
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


def _upload_range(error):
    # Where the client should resume: what the upload holds (Distribution's Range).
    return [("Range", "0-{}".format(max(error.size - 1, 0)))]


# Domain errors answered otherwise than their code's default:
# type -> (status, headers of the error).
_TYPED = (
    (UploadOffsetMismatch, 416, _upload_range),
    (ManifestTooLarge, 413, lambda error: ()),
)


def from_registry_error(error):
    """The L{APIError} answering the domain error C{error} (a L{RegistryError})."""
    for kind, status, headers in _TYPED:
        if isinstance(error, kind):
            return APIError(error.code, detail=error.detail, status=status, headers=headers(error))
    return APIError(error.code, detail=error.detail)


def as_api_error(exception, authenticator=None):
    """
    The L{APIError} to answer C{exception} with, or None when it is not
    a client's mistake (the caller logs it and answers 500).
    """
    if isinstance(exception, APIError):
        return exception
    if isinstance(exception, RegistryError):
        return from_registry_error(exception)
    if isinstance(exception, Unauthorized):
        headers = list(authenticator.challenge()) if authenticator is not None else []
        return APIError("UNAUTHORIZED", detail=exception.message or None, headers=headers)
    if isinstance(exception, TooManyRequests):
        retry = int(max(1, round(exception.retry_after)))
        return APIError("TOOMANYREQUESTS", detail="retry after {} seconds".format(retry),
                        headers=[("Retry-After", str(retry))])
    return None


def internal_error():
    return APIError("UNKNOWN", status=500)


__all__ = ["APIError", "CODES", "JSON", "as_api_error", "error_body", "from_registry_error", "internal_error"]
