"""
Registry events in Distribution's notification format (``Event`` in its
``notifications/event.go``): what the API reports after a push, pull, mount
or delete succeeded, turned into one dict per event and handed to an
L{IEventSink}. Building an event reads only the request and what the
handler already has: no storage access, no I/O.
"""

import datetime
import functools
import socket
import uuid

from twisted.logger import Logger
from zope.interface import implementer

from spectroreg.ops.interfaces import IRegistryEvents
from spectroreg.web.interfaces import IRequestContext
from spectroreg.web.urls import URLBuilder

log = Logger(namespace="spectroreg.notifications")

EVENTS_MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"

PUSH = "push"
PULL = "pull"
MOUNT = "mount"
DELETE = "delete"


def timestamp(seconds):
    """RFC 3339 UTC with microseconds, as Go's time.Time marshals."""
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def envelope(events):
    """The JSON-ready envelope POSTed to an endpoint."""
    return {"events": list(events)}


def _text(value):
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value


def _peer(request):
    try:
        address = request.getClientAddress()
    except AttributeError:
        return ""
    host = getattr(address, "host", None)
    if host is None:
        return ""
    if ":" in host:
        return "[{}]:{}".format(host, address.port)
    return "{}:{}".format(host, address.port)


def _actor(request):
    user = IRequestContext(request).user()
    return {"name": user} if user is not None else {}


def _guarded(method):
    """An event that cannot be built is logged; the request it reports on is not disturbed."""

    @functools.wraps(method)
    def wrapper(self, request, route, *args):
        try:
            method(self, request, route, *args)
        except Exception:
            log.failure("building a {what} event for {repository}", what=method.__name__,
                        repository=getattr(route, "repository", None))

    return wrapper


def _is_tag(reference):
    return reference is not None and ":" not in reference


@implementer(IRegistryEvents)
class RegistryEvents:
    """
    Builds events for C{sink}.

    @param sink: an L{IEventSink} (the endpoints).
    @param http_settings: for URLs (``http.host``, ``relativeurls``).
    @param reactor: IReactorTime for timestamps.
    @param source_addr: this registry's address as events name it
        (``hostname:port``).
    @param include_references: list a manifest's references in its events
        (``notifications.events.includereferences``).
    """

    def __init__(self, sink, http_settings, reactor, source_addr=None, include_references=False,
                 new_id=None):
        self._sink = sink
        self._http = http_settings
        self._reactor = reactor
        self._new_id = new_id or (lambda: str(uuid.uuid4()))
        self._source = {
            "addr": source_addr or socket.gethostname(),
            "instanceID": self._new_id(),
        }
        self._include_references = include_references

    # -- the parts of every event ---------------------------------------------

    def _request_record(self, request):
        context = IRequestContext(request)
        record = context.event_request
        if record is None:
            record = {
                "id": self._new_id(),
                "addr": _peer(request),
                "host": _text(request.getHeader(b"host")),
                "method": _text(request.method),
                "useragent": _text(request.getHeader(b"user-agent")),
            }
            # Every event of one request carries the same request id.
            context.event_request = record
        return record

    def _event(self, request, action, target):
        return {
            "id": self._new_id(),
            "timestamp": timestamp(self._reactor.seconds()),
            "action": action,
            "target": target,
            "request": self._request_record(request),
            "actor": _actor(request),
            "source": self._source,
        }

    def _url(self, request, repository, kind, digest):
        return URLBuilder(request, self._http).url(repository, kind, str(digest))

    def _write(self, request, action, target):
        self._sink.write(self._event(request, action, target))

    def _content(self, request, route, kind, media_type, digest, size):
        return {
            "mediaType": media_type,
            "digest": str(digest),
            "size": size,
            "length": size,
            "repository": route.repository,
            "url": self._url(request, route.repository, kind, digest),
        }

    # -- IRegistryEvents ---------------------------------------------------------

    @_guarded
    def manifest_pushed(self, request, route, digest, media_type, size, manifest=None):
        target = self._content(request, route, "manifests", media_type, digest, size)
        if _is_tag(route.argument):
            target["tag"] = route.argument
        if self._include_references and manifest is not None:
            target["references"] = _references(manifest)
        self._write(request, PUSH, target)

    @_guarded
    def manifest_pulled(self, request, route, record):
        target = self._content(request, route, "manifests", record.media_type, record.digest, record.size)
        if _is_tag(route.argument):
            target["tag"] = route.argument
        if self._include_references:
            from spectroreg.registry.manifests import parse_manifest

            try:
                target["references"] = _references(parse_manifest(record.body, record.media_type))
            except Exception:
                target["references"] = []
        self._write(request, PULL, target)

    @_guarded
    def manifest_deleted(self, request, route, digest):
        self._write(request, DELETE, {"digest": str(digest), "repository": route.repository})

    @_guarded
    def tag_deleted(self, request, route, tag):
        self._write(request, DELETE, {"repository": route.repository, "tag": tag})

    @_guarded
    def blob_pushed(self, request, route, descriptor):
        self._write(request, PUSH, self._blob(request, route, descriptor))

    @_guarded
    def blob_pulled(self, request, route, descriptor):
        self._write(request, PULL, self._blob(request, route, descriptor))

    @_guarded
    def blob_mounted(self, request, route, descriptor, source):
        target = self._blob(request, route, descriptor)
        if source:
            target["fromRepository"] = source
        self._write(request, MOUNT, target)

    @_guarded
    def blob_deleted(self, request, route, digest):
        self._write(request, DELETE, {"digest": str(digest), "repository": route.repository})

    def _blob(self, request, route, descriptor):
        return self._content(request, route, "blobs", descriptor.media_type, descriptor.digest, descriptor.size)


def _references(manifest):
    found = list(manifest.references()) + list(manifest.manifests or ())
    return [_descriptor(d) for d in found]


def _descriptor(descriptor):
    return {"mediaType": descriptor.media_type, "digest": str(descriptor.digest), "size": descriptor.size}


@implementer(IRegistryEvents)
class NullEvents:
    """No endpoints configured: events are not even built."""

    def manifest_pushed(self, request, route, digest, media_type, size, manifest=None):
        pass

    def manifest_pulled(self, request, route, record):
        pass

    def manifest_deleted(self, request, route, digest):
        pass

    def tag_deleted(self, request, route, tag):
        pass

    def blob_pushed(self, request, route, descriptor):
        pass

    def blob_pulled(self, request, route, descriptor):
        pass

    def blob_mounted(self, request, route, descriptor, source):
        pass

    def blob_deleted(self, request, route, digest):
        pass


NULL_EVENTS = NullEvents()
