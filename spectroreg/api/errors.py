"""
Turning any failure into an HTTP answer: the single place where a
``RegistryError`` (or an authentication failure) becomes the OCI error JSON
with its status and headers, and anything unexpected becomes a logged 500.
"""

from twisted.logger import Logger

from spectroreg.auth.interfaces import TooManyRequests, Unauthorized
from spectroreg.registry.errors import RegistryError

log = Logger()

JSON = "application/json; charset=utf-8"


def as_registry_error(exception, authenticator=None):
    """
    The L{RegistryError} to answer C{exception} with, or None when it is not
    a client's mistake (the caller logs it and answers 500).
    """
    if isinstance(exception, RegistryError):
        return exception
    if isinstance(exception, Unauthorized):
        headers = list(authenticator.challenge()) if authenticator is not None else []
        return RegistryError("UNAUTHORIZED", detail=exception.message or None, headers=headers)
    if isinstance(exception, TooManyRequests):
        retry = int(max(1, round(exception.retry_after)))
        return RegistryError("TOOMANYREQUESTS", detail="retry after {} seconds".format(retry),
                             headers=[("Retry-After", str(retry))])
    return None


def internal_error():
    return RegistryError("UNKNOWN", status=500)
