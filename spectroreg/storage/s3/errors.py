"""The error an S3 request ends with, and which of them are worth retrying."""

from spectroreg.storage.errors import StorageError

# S3 error codes that say "try again later", whatever the HTTP status.
RETRIABLE_CODES = frozenset({
    "SlowDown",
    "InternalError",
    "ServiceUnavailable",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "ExpiredToken",
    "OperationAborted",
    "Throttling",
    "ThrottlingException",
})


class S3Error(StorageError):
    """
    An S3 request failed.

    @ivar code: S3's error code (C{"NoSuchKey"}, C{"SlowDown"}, ...) or None
        when the request never got an answer.
    @ivar status: the HTTP status, or None.
    @ivar retriable: whether the same request may succeed later (a 5xx, a
        throttle, a dropped connection): callers may report it as a
        temporary failure.
    """

    def __init__(self, message, path=None, code=None, status=None, retriable=False):
        super().__init__(message, path)
        self.code = code
        self.status = status
        self.retriable = retriable


def is_retriable(status, code):
    """Whether an answer with HTTP C{status} and S3 error C{code} is worth retrying."""
    if code in RETRIABLE_CODES:
        return True
    return status is not None and (status >= 500 or status == 429)


def not_found(error):
    """Whether C{error} says the object (or key) does not exist."""
    return isinstance(error, S3Error) and (
        error.code in ("NoSuchKey", "NotFound") or error.status == 404)
