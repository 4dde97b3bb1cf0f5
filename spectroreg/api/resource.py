"""
The ``/v2`` resource: every endpoint of the OCI Distribution Spec 1.1 and
Distribution's catalog, on top of a ``spectroreg.registry.Registry``.

One leaf resource routes on ``request.postpath`` (the segments after
``v2``) with ``spectroreg.api.routes``; each handler is a coroutine that
either answers or raises a ``RegistryError``, which ``_handle`` turns into
the OCI error JSON. Unexpected exceptions are logged with a traceback and
answered 500; client mistakes never are.
"""

import json
import time

from twisted.internet import defer
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from spectroreg.api import routes
from spectroreg.api.errors import JSON, APIError, as_api_error, internal_error
from spectroreg.api.ranges import RangeNotSatisfiable, parse_content_range, parse_range
from spectroreg.api.request import CappedBody, StreamTarget
from spectroreg.api.routes import RouteMatch
from spectroreg.api.urls import check_upload_state, upload_state
from spectroreg.web.urls import URLBuilder
from spectroreg.logging import debug_enabled
from spectroreg.ops.events import NULL_EVENTS
from spectroreg.ops.metrics import NULL_METRICS
from spectroreg.registry import manifests as mf
from spectroreg.registry.digests import looks_like_digest, parse_digest
from spectroreg.registry.errors import ManifestTooLarge, RegistryError, upload_unknown
from spectroreg.registry.names import is_valid_name, is_valid_tag
from spectroreg.web.context import is_gone
from spectroreg.web.headers import MalformedHeader, header_text
from spectroreg.web.interfaces import IRequestBodyPolicy, IRequestContext
from spectroreg.web.numbers import parse_decimal
from spectroreg.web.peers import client_host
from spectroreg.web.query import query_arg

log = Logger()

# Header names and constant values as bytes: Twisted takes them as they are.
API_VERSION = (b"Docker-Distribution-API-Version", b"registry/2.0")
COPY_CHUNK = 64 * 1024
CATALOG_DEFAULT_PAGE = 100
OCTET_STREAM = "application/octet-stream"
_BLOB_HEADERS = (
    (b"Accept-Ranges", b"bytes"),
    (b"Cache-Control", b"max-age=31536000"),
    (b"Content-Type", OCTET_STREAM.encode("ascii")),
)


def _header(request, name, error):
    """Header C{name} as text (None when absent); C{error} when it is not text."""
    try:
        return header_text(request, name)
    except MalformedHeader:
        raise error


def _segments(request):
    try:
        return [s.decode("utf-8") if isinstance(s, bytes) else s for s in request.postpath]
    except UnicodeDecodeError:
        raise RegistryError("NAME_INVALID", detail="path is not UTF-8")


def _debug_auth(request, outcome):
    # The user name and the reason, never the credentials (the reasons are
    # written not to hold them).
    ok, value = outcome
    if ok:
        decision = "accepted user {}".format(value)
    else:
        reason = str(value) or type(value).__name__
        decision = "refused ({}: {})".format(type(value).__name__, reason)
    log.debug("auth for {client} {method} {path}: {decision}", client=client_host(request),
              method=request.method.decode("ascii", "replace"),
              path=request.path.decode("ascii", "replace"), decision=decision)


def _parse_n(request, maximum=None):
    raw = query_arg(request, "n")
    if raw is None or raw == "":
        return None
    n = parse_decimal(raw)
    if n is None:
        raise APIError("UNSUPPORTED", status=400, detail="n must be a non-negative integer")
    if maximum is not None:
        n = min(n, maximum)
    return n


def _match(request, context=None):
    """
    The L{RouteMatch} of C{request}'s path: matched on first use (the body
    policy or the answer, whichever comes first), kept in its context
    (C{context}, when the caller has it at hand).
    """
    if context is None:
        context = IRequestContext(request)
    if context.route is None:
        try:
            context.route = RouteMatch(routes.match(_segments(request)))
        except RegistryError as error:
            context.route = RouteMatch(None, error)
    return context.route


def _range(request, size):
    """The (offset, length) the Range header asks of C{size} bytes, or None for all."""
    unsatisfiable = APIError(
        "SIZE_INVALID", status=416, detail="requested range not satisfiable",
        message="requested range not satisfiable",
        headers=[("Content-Range", "bytes */{}".format(size))],
    )
    try:
        return parse_range(_header(request, "range", unsatisfiable), size)
    except RangeNotSatisfiable:
        raise unsatisfiable


def _page(items, n, last):
    """(page, more) for sorted C{items} after C{last} (exclusive), at most C{n}."""
    if last:
        items = [item for item in items if item > last]
    if n is None:
        return items, False
    return items[:n], len(items) > n


@implementer(IRequestBodyPolicy)
class RegistryAPI(resource.Resource):
    """
    The resource served as ``<prefix>/v2``.

    @param registry: L{spectroreg.registry.Registry}.
    @param settings: L{spectroreg.config.settings.Settings}.
    @param authenticator: L{spectroreg.auth.interfaces.IAuthenticator} or None.
    """

    isLeaf = True

    def __init__(self, registry, settings, authenticator=None, reactor=None, metrics=None, events=None):
        super().__init__()
        # spectroreg.ops: per-request metrics and notification events (null when off).
        self._metrics = metrics or NULL_METRICS
        self._events = events or NULL_EVENTS
        self._registry = registry
        self._http = settings.http if settings is not None else None
        self._authenticator = authenticator
        self._reactor = reactor
        catalog = getattr(settings, "catalog", None)
        self._catalog_max = catalog.maxentries if catalog is not None else 1000
        # (route name, method) -> handler; HEAD is answered by the GET handler.
        self._handlers = {
            (name, method): getattr(self, "_{}_{}".format(name, method.lower().replace("head", "get")))
            for name, methods in routes.METHODS.items() for method in methods
        }

    # -- entry points ---------------------------------------------------

    def render(self, request):
        d = defer.ensureDeferred(self._handle(request))
        # Paths only in logs: upload URLs carry a _state token in the query.
        d.addErrback(lambda f: log.failure("answering {method} {path}", f,
                                           method=request.method, path=request.path))
        return NOT_DONE_YET

    def request_body_policy(self, request):
        """
        Asked by L{spectroreg.api.request.RegistryRequest} once the headers
        are in: a L{StreamTarget} for blob bodies, else a size cap. Either
        way no byte of the body is read before authentication passed.
        """
        route = _match(request).route
        method = request.method.decode("ascii", "replace")
        if route is None:
            return self._capped(request, COPY_CHUNK)
        if route.name == routes.MANIFEST and method == "PUT":
            return self._capped(request, mf.MAX_MANIFEST_SIZE)
        if self._streams(route, method, request):
            self._metrics.upload_started(request)
            return StreamTarget(
                lambda: self._open_body_writer(request, route),
                lambda writer: self._abandon_body_writer(request, route, writer),
            )
        return self._capped(request, COPY_CHUNK)

    def _capped(self, request, cap):
        if self._authenticator is None:
            return cap
        return CappedBody(cap, lambda: self._authenticate(request))

    @staticmethod
    def _streams(route, method, request):
        if route.name == routes.UPLOAD and method in ("PATCH", "PUT"):
            return True
        if route.name == routes.UPLOAD_START and method == "POST":
            return query_arg(request, "digest") is not None and query_arg(request, "mount") is None
        return False

    # -- plumbing -------------------------------------------------------

    async def _authenticate(self, request):
        if self._authenticator is None:
            return None
        context = IRequestContext(request)
        outcome = context.auth
        if outcome is None:
            authorization = request.requestHeaders.getRawHeaders(b"authorization", [None])[0]
            try:
                user = await self._authenticator.authenticate(authorization, client_host(request))
                outcome = (True, user)
            except Exception as exception:
                outcome = (False, exception)
            context.auth = outcome
            if debug_enabled():
                _debug_auth(request, outcome)
        ok, value = outcome
        if not ok:
            raise value
        return value

    async def _handle(self, request):
        request.setHeader(*API_VERSION)
        context = IRequestContext(request)
        try:
            await context.body_checked()
            await self._authenticate(request)
            found = _match(request, context)
            if found.error is not None:
                raise found.error
            route = found.route
            if route is None:
                raise routes.no_route()
            method = request.method.decode("ascii", "replace")
            handler = self._handlers.get((route.name, method))
            if handler is None:
                raise RegistryError("UNSUPPORTED", detail="{} is not supported here".format(method))
            await handler(request, route)
        except Exception as exception:
            error = as_api_error(exception, self._authenticator)
            if error is None:
                log.failure("internal error answering {method} {path}", Failure(),
                            method=request.method, path=request.path)
                error = internal_error()
            self._send_error(request, error)
        finally:
            # The route's name for metrics, None when the path matches no route.
            route = _match(request, context).route
            self._metrics.request_done(request, route.name if route is not None else None,
                                       request.method.decode("latin-1"))

    def _send(self, request, status, body=b"", headers=(), content_type=None):
        if is_gone(request):
            return
        request.setResponseCode(status)
        for name, value in headers:
            request.setHeader(name, value)
        if content_type is not None:
            request.setHeader(b"Content-Type", content_type)
        request.setHeader(b"Content-Length", b"%d" % (len(body),))
        if body and request.method != b"HEAD":
            request.write(body)
        request.finish()

    def _send_json(self, request, status, document, headers=()):
        body = json.dumps(document).encode("utf-8")
        self._send(request, status, body, headers, JSON)

    def _send_error(self, request, error):
        if is_gone(request):
            return
        if request.startedWriting:
            # Headers are out: cut the response short. What was sent still
            # arrives, so the client sees fewer bytes than Content-Length.
            channel = getattr(request, "channel", None)
            if channel is not None and channel.transport is not None:
                channel.transport.loseConnection()
            return
        self._send(request, error.status, error.body(), error.headers, JSON)

    def _urls(self, request):
        return URLBuilder(request, self._http)

    def _now(self):
        return self._reactor.seconds() if self._reactor is not None else time.time()

    def _upload_location(self, request, name, upload_id, size):
        """The upload's URL; its ``_state`` names the upload's C{size}, as Distribution checks."""
        secret = self._http.secret if self._http is not None else None
        state = upload_state(secret, name, upload_id, size, self._now())
        query = {"_state": state} if state else None
        return self._urls(request).url(name, "blobs", "uploads", upload_id, query=query)

    def _check_state(self, request, route):
        secret = self._http.secret if self._http is not None else None
        if not check_upload_state(secret, route.repository, route.argument, query_arg(request, "_state")):
            raise upload_unknown(route.argument)

    def _check_writable(self):
        self._registry.check_writable()

    # -- end-1 ----------------------------------------------------------

    async def _base_get(self, request, route):
        self._send_json(request, 200, {})

    # -- catalog --------------------------------------------------------

    async def _catalog_get(self, request, route):
        n = _parse_n(request, self._catalog_max)
        if n is None:
            n = min(CATALOG_DEFAULT_PAGE, self._catalog_max)
        last = query_arg(request, "last")
        names = await self._registry.catalog.names()
        page, more = _page(names, n, last)
        headers = []
        if more and page:
            link = self._urls(request).path("_catalog", query={"last": page[-1], "n": n})
            headers.append(("Link", '<{}>; rel="next"'.format(link)))
        self._send_json(request, 200, {"repositories": page}, headers)

    # -- tags (end-8) ---------------------------------------------------

    async def _tags_get(self, request, route):
        n = _parse_n(request)
        last = query_arg(request, "last")
        tags = await self._registry.tags.all(route.repository)
        page, more = _page(tags, n, last)
        headers = []
        if more and page:
            link = self._urls(request).path(route.repository, "tags", "list", query={"n": n, "last": page[-1]})
            headers.append(("Link", '<{}>; rel="next"'.format(link)))
        self._send_json(request, 200, {"name": route.repository, "tags": page}, headers)

    # -- manifests (end-3, end-7, end-9) --------------------------------

    def _reference(self, route, for_write=False):
        reference = route.argument
        if looks_like_digest(reference):
            return parse_digest(reference)
        if not is_valid_tag(reference):
            if for_write:
                raise RegistryError("MANIFEST_INVALID", detail="invalid tag {!r}".format(reference))
            raise RegistryError("MANIFEST_UNKNOWN", detail="invalid tag {!r}".format(reference))
        return reference

    async def _manifest_get(self, request, route):
        reference = self._reference(route)
        record = await self._registry.manifests.get(route.repository, reference)
        self._send(request, 200, record.body, record.headers)
        if request.method == b"GET":
            self._events.manifest_pulled(request, route, record)

    async def _manifest_put(self, request, route):
        self._check_writable()
        reference = self._reference(route, for_write=True)
        if IRequestContext(request).body.too_large:
            # The request stopped reading at the manifest limit
            # (request_body_policy); the manifest store judges the rest.
            raise ManifestTooLarge()
        body = self._small_body(request)
        content_type = _header(request, "content-type",
                               RegistryError("MANIFEST_INVALID", detail="malformed Content-Type"))
        digest, manifest = await self._registry.manifests.put(route.repository, reference, body, content_type)
        headers = [
            ("Location", self._urls(request).url(route.repository, "manifests", str(digest))),
            ("Docker-Content-Digest", str(digest)),
        ]
        if manifest.subject is not None:
            headers.append(("OCI-Subject", str(manifest.subject.digest)))
        self._send(request, 201, b"", headers)
        self._events.manifest_pushed(request, route, digest, manifest.media_type, len(body), manifest)

    @staticmethod
    def _small_body(request):
        """The body of a non-blob request (capped when it was received)."""
        content = request.content
        if content is None:
            return b""
        content.seek(0)
        return content.read()

    async def _manifest_delete(self, request, route):
        self._registry.check_delete()
        reference = self._reference(route)
        await self._registry.manifests.delete(route.repository, reference)
        self._send(request, 202)
        if isinstance(reference, str):
            self._events.tag_deleted(request, route, reference)
        else:
            self._events.manifest_deleted(request, route, reference)

    # -- blobs (end-2, end-10) ------------------------------------------

    async def _blob_get(self, request, route):
        digest = parse_digest(route.argument)
        descriptor = await self._registry.blobs.stat(route.repository, digest)
        is_head = request.method == b"HEAD"
        if not is_head:
            url = await self._registry.blobs.redirect_url(digest)
            if url:
                self._send(request, 307, b"", [("Location", url), ("Docker-Content-Digest", str(digest))])
                self._events.blob_pulled(request, route, descriptor)
                return
        text = str(digest).encode("ascii")
        headers = [(b"Docker-Content-Digest", text), (b"Etag", b'"' + text + b'"')]
        headers.extend(_BLOB_HEADERS)
        status, offset, length = 200, 0, descriptor.size
        raw_range = request.requestHeaders.getRawHeaders(b"range")
        if raw_range is not None:
            span = _range(request, descriptor.size)
            if span is not None:
                status, (offset, length) = 206, span
                headers.append((b"Content-Range", b"bytes %d-%d/%d" % (offset, offset + length - 1, descriptor.size)))
        request.setResponseCode(status)
        for name, value in headers:
            request.setHeader(name, value)
        request.setHeader(b"Content-Length", b"%d" % (length,))
        if is_head:
            request.finish()
            return
        try:
            await self._registry.blobs.read(digest, request, offset, length)
        except (ConnectionDone, ConnectionLost):
            return
        except Exception:
            if is_gone(request):
                return
            raise
        if not is_gone(request):
            request.finish()
            self._events.blob_pulled(request, route, descriptor)

    async def _blob_delete(self, request, route):
        self._registry.check_delete()
        digest = parse_digest(route.argument)
        await self._registry.blobs.delete(route.repository, digest)
        self._send(request, 202)
        self._events.blob_deleted(request, route, digest)

    # -- uploads (end-4 … end-6, end-11, end-13, cancel) ----------------

    async def _open_body_writer(self, request, route):
        """Authenticate, then open the upload writer the body goes to."""
        await self._authenticate(request)
        self._check_writable()
        method = request.method
        if route.name == routes.UPLOAD_START:
            digest = parse_digest(query_arg(request, "digest"))
            upload_id = await self._registry.uploads.start(route.repository)
            IRequestContext(request).upload = (upload_id, digest)
            return await self._registry.uploads.open(route.repository, upload_id)
        self._check_state(request, route)
        if method == b"PUT":
            # The digest is checked before any byte is stored.
            parse_digest(query_arg(request, "digest") or "")
        offset = None
        invalid_range = APIError("BLOB_UPLOAD_INVALID", status=416, detail="invalid Content-Range")
        raw_range = _header(request, "content-range", invalid_range)
        if raw_range is not None:
            try:
                start, end = parse_content_range(raw_range)
            except ValueError:
                raise invalid_range
            length = _header(request, "content-length", invalid_range)
            if length is not None and parse_decimal(length) != end - start + 1:
                raise APIError("BLOB_UPLOAD_INVALID", status=416,
                               detail="Content-Range does not match Content-Length")
            offset = start
        return await self._registry.uploads.open(route.repository, route.argument, offset)

    async def _abandon_body_writer(self, request, route, writer):
        if route.name == routes.UPLOAD_START:
            # The client never learnt this upload's id: nothing to resume.
            await writer.cancel()
            return
        await writer.close()

    async def _body_writer(self, request, route):
        """The upload writer holding this request's whole body."""
        stream = IRequestContext(request).body.stream
        if stream is not None:
            return await stream.result()
        writer = await self._open_body_writer(request, route)
        content = request.content
        if content is not None:
            content.seek(0)
            try:
                while True:
                    chunk = content.read(COPY_CHUNK)
                    if not chunk:
                        break
                    await writer.write(chunk)
            except BaseException:
                await self._abandon_body_writer(request, route, writer)
                raise
        return writer

    async def _upload_start_post(self, request, route):
        self._check_writable()
        name = route.repository
        mount = query_arg(request, "mount")
        if mount is not None:
            digest = parse_digest(mount)
            source = query_arg(request, "from")
            # An empty or invalid ``from`` names no repository to mount from:
            # a plain upload starts, as in Distribution. Only a request
            # without ``from`` asks for an automatic mount.
            mountable = source is None or is_valid_name(source)
            descriptor = await self._registry.blobs.mount(name, digest, source) if mountable else None
            if descriptor is not None:
                self._send(request, 201, b"", [
                    ("Location", self._urls(request).url(name, "blobs", str(digest))),
                    ("Docker-Content-Digest", str(digest)),
                ])
                self._events.blob_mounted(request, route, descriptor, source if mountable else None)
                return
        elif query_arg(request, "digest") is not None:
            writer = await self._body_writer(request, route)
            upload_id, digest = IRequestContext(request).upload
            descriptor = await writer.commit(digest)
            self._send(request, 201, b"", [
                ("Location", self._urls(request).url(name, "blobs", str(descriptor.digest))),
                ("Docker-Content-Digest", str(descriptor.digest)),
            ])
            self._events.blob_pushed(request, route, descriptor)
            return
        upload_id = await self._registry.uploads.start(name)
        self._send(request, 202, b"", [
            ("Location", self._upload_location(request, name, upload_id, 0)),
            ("Docker-Upload-UUID", upload_id),
            ("Range", "0-0"),
        ])

    def _upload_headers(self, request, route, size):
        return [
            ("Location", self._upload_location(request, route.repository, route.argument, size)),
            ("Docker-Upload-UUID", route.argument),
            ("Range", "0-{}".format(max(size - 1, 0))),
        ]

    async def _upload_get(self, request, route):
        self._check_state(request, route)
        size = await self._registry.uploads.size(route.repository, route.argument)
        self._send(request, 204, b"", self._upload_headers(request, route, size))

    async def _upload_patch(self, request, route):
        writer = await self._body_writer(request, route)
        await writer.close()
        self._send(request, 202, b"", self._upload_headers(request, route, writer.size))

    async def _upload_put(self, request, route):
        writer = await self._body_writer(request, route)
        digest = parse_digest(query_arg(request, "digest") or "")
        descriptor = await writer.commit(digest)
        self._send(request, 201, b"", [
            ("Location", self._urls(request).url(route.repository, "blobs", str(descriptor.digest))),
            ("Docker-Content-Digest", str(descriptor.digest)),
        ])
        self._events.blob_pushed(request, route, descriptor)

    async def _upload_delete(self, request, route):
        self._check_state(request, route)
        await self._registry.uploads.cancel(route.repository, route.argument)
        self._send(request, 204)

    # -- referrers (end-12) ---------------------------------------------

    async def _referrers_get(self, request, route):
        digest = parse_digest(route.argument)
        artifact_type = query_arg(request, "artifactType")
        descriptors = await self._registry.referrers.get(route.repository, digest, artifact_type or None)
        headers = []
        if artifact_type:
            headers.append(("OCI-Filters-Applied", "artifactType"))
        document = {
            "schemaVersion": 2,
            "mediaType": mf.OCI_INDEX,
            "manifests": descriptors,
        }
        body = json.dumps(document).encode("utf-8")
        self._send(request, 200, body, headers, mf.OCI_INDEX)
