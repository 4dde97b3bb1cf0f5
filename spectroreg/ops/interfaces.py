"""The seams between the API and the operations parts (metrics, events, health)."""

from zope.interface import Attribute, Interface


class IRequestObserver(Interface):
    """Told about every API request; feeds the per-request metrics."""

    def request_done(request, route, method):
        """
        The API has answered C{request} (a finished twisted.web request, or
        one whose client went away).

        @param route: the route name (L{spectroreg.api.routes}) or None when
            no route matched.
        @param method: the request method (str).
        """

    def upload_started(request):
        """An upload body starts streaming into storage for C{request}; it
        counts as in progress until the request finishes or is lost."""


class IStorageObserver(Interface):
    """Told about every storage driver operation (latency and errors)."""

    def observe(driver, operation, seconds, failed):
        """
        @param driver: the driver name (inmemory, filesystem, s3).
        @param operation: the operation (get_content, stat, write, ...).
        @param seconds: how long it took.
        @param failed: whether it failed with anything but "not found".
        """

    def now():
        """A monotonic time in seconds, for L{observe}'s C{seconds}."""


class IEventSink(Interface):
    """Where registry events (Distribution's notification events) go."""

    def write(event):
        """
        Take one event (a dict in Distribution's event format). Never blocks,
        never raises, never waits for the network.
        """


class IRegistryEvents(Interface):
    """The API's calls when something happened to content (after it succeeded)."""

    def manifest_pushed(request, route, digest, media_type, size, manifest):
        """A manifest was stored (by tag or digest: C{route.argument})."""

    def manifest_pulled(request, route, record):
        """A manifest was served (C{record}: digest, media_type, size, body)."""

    def manifest_deleted(request, route, digest):
        """A manifest revision was deleted."""

    def tag_deleted(request, route, tag):
        """A tag was removed."""

    def blob_pushed(request, route, descriptor):
        """An upload was committed as blob C{descriptor}."""

    def blob_pulled(request, route, descriptor):
        """A blob was served (or redirected to)."""

    def blob_mounted(request, route, descriptor, source):
        """A blob was linked from repository C{source} (None: found by digest)."""

    def blob_deleted(request, route, digest):
        """A blob was unlinked from the repository."""


class IHealth(Interface):
    """The state of the health checks."""

    failing = Attribute("dict: check name -> error text, for every failing check")

    def healthy():
        """Whether every check passes (cheap: called for every request)."""
