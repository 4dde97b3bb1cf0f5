"""
The API's named routes, matched on the path segments after ``/v2``.

A repository name may contain ``/`` and even a component called ``blobs``
or ``manifests``, so a path is parsed from the right: the name ends where
the last ``/blobs/``, ``/manifests/``, ``/tags/`` or ``/referrers/`` begins.
"""

from spectroreg.registry.errors import RegistryError
from spectroreg.registry.names import check_name

BASE = "base"
CATALOG = "catalog"
TAGS = "tags"
MANIFEST = "manifest"
BLOB = "blob"
UPLOAD_START = "upload_start"
UPLOAD = "upload"
REFERRERS = "referrers"

METHODS = {
    BASE: ("GET", "HEAD"),
    CATALOG: ("GET", "HEAD"),
    TAGS: ("GET", "HEAD"),
    MANIFEST: ("GET", "HEAD", "PUT", "DELETE"),
    BLOB: ("GET", "HEAD", "DELETE"),
    UPLOAD_START: ("POST",),
    UPLOAD: ("GET", "HEAD", "PATCH", "PUT", "DELETE"),
    REFERRERS: ("GET", "HEAD"),
}


class Route:
    """
    A matched route.

    @ivar name: one of the route names above.
    @ivar repository: the repository name (str) or None.
    @ivar argument: the reference, digest or upload id (str), or None.
    """

    __slots__ = ("name", "repository", "argument")

    def __init__(self, name, repository=None, argument=None):
        self.name = name
        self.repository = repository
        self.argument = argument

    def __eq__(self, other):
        if not isinstance(other, Route):
            return NotImplemented
        return (self.name, self.repository, self.argument) == (other.name, other.repository, other.argument)

    def __repr__(self):
        return "Route({!r}, {!r}, {!r})".format(self.name, self.repository, self.argument)


class RouteMatch:
    """
    The outcome of matching one request's path, kept in its request context
    so that the path is matched once per request.

    @ivar route: the L{Route}, or None when no route matches (or on error).
    @ivar error: the L{RegistryError} matching raised (an invalid name), or None.
    """

    __slots__ = ("route", "error")

    def __init__(self, route=None, error=None):
        self.route = route
        self.error = error


def _named(name, segments, argument=None):
    repository = "/".join(segments)
    check_name(repository)
    return Route(name, repository, argument)


def match(segments):
    """
    Match the segments (list of str) after ``/v2``.

    @return: a L{Route}, or None when no route matches.
    @raise RegistryError: NAME_INVALID for a route whose name is invalid.
    """
    if segments in ([], [""]):
        return Route(BASE)
    if segments == ["_catalog"]:
        return Route(CATALOG)
    count = len(segments)
    if count >= 3 and segments[-2:] == ["tags", "list"]:
        return _named(TAGS, segments[:-2])
    if count >= 4 and segments[-3:-1] == ["blobs", "uploads"]:
        if segments[-1] == "":
            return _named(UPLOAD_START, segments[:-3])
        return _named(UPLOAD, segments[:-3], segments[-1])
    if count >= 3 and segments[-2:] == ["blobs", "uploads"]:
        return _named(UPLOAD_START, segments[:-2])
    if count >= 3 and segments[-2] in ("manifests", "blobs", "referrers"):
        name = {"manifests": MANIFEST, "blobs": BLOB, "referrers": REFERRERS}[segments[-2]]
        return _named(name, segments[:-2], segments[-1])
    return None


def no_route():
    return RegistryError("NAME_UNKNOWN", detail="no such endpoint")
