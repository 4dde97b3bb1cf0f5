"""
The web pages' resource, served as ``<prefix>/ui`` and, for browsers, at ``/``.

Routes (below ``<prefix>/ui/``)::

    ""                          the repositories (``?q=`` filter, ``?last=`` page)
    r/<name>                    a repository's tags (``?last=`` page)
    m/<name>/<tag or digest>    a manifest (``?raw=1``: its JSON)
    delete                      GET: confirmation; POST: the delete
    static/<file>               our stylesheet and script

Authentication is the API's: the same authenticator, asked for every page
and every static file, answering 401 with the same Basic challenge (so a
browser shows its login). Only GET/HEAD and the delete POST are taken.
"""

import hashlib
import os
from urllib.parse import parse_qsl, urlsplit

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from spectroreg.api.errors import from_registry_error
from spectroreg.auth.interfaces import TooManyRequests, Unauthorized
from spectroreg.registry.digests import looks_like_digest, parse_digest
from spectroreg.registry.errors import RegistryError
from spectroreg.registry.names import is_valid_name, is_valid_tag
from spectroreg.ui import csrf, pages
from spectroreg.ui.accept import prefers_html
from spectroreg.ui.reader import RegistryReader, page_after
from spectroreg.web.context import context_of, is_gone
from spectroreg.web.interfaces import IRequestBodyPolicy, IRequestContext
from spectroreg.web.peers import client_host
from spectroreg.web.query import query_arg

log = Logger()

HTML = b"text/html; charset=utf-8"
STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".svg": "image/svg+xml"}
# A form with three short fields; anything bigger is not ours.
FORM_CAP = 8 * 1024
INDEX_PAGE = 50
TAGS_PAGE = 50
MAX_PAGE = 200


class _PageError(Exception):
    def __init__(self, status, message, headers=()):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = tuple(headers)


def load_static(directory=STATIC_DIR):
    """file name -> (bytes, content type, version) for every file of ours."""
    files = {}
    for name in sorted(os.listdir(directory)):
        content_type = STATIC_TYPES.get(os.path.splitext(name)[1])
        if content_type is None:
            continue
        with open(os.path.join(directory, name), "rb") as f:
            data = f.read()
        files[name] = (data, content_type, hashlib.sha256(data).hexdigest()[:16])
    return files


def _header(request, name):
    value = request.getHeader(name)
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return value


def _page_size(request, default):
    """(the page size, what the pager's links keep: the size asked for, or None)."""
    raw = query_arg(request, "n")
    if raw and raw.isdigit():
        n = max(1, min(int(raw), MAX_PAGE))
        return n, str(n)
    return default, None


def _reference(text):
    """A tag (str) or L{Digest} from a URL segment or form field; None if neither."""
    if not text:
        return None
    if looks_like_digest(text):
        try:
            return parse_digest(text)
        except RegistryError:
            return None
    return text if is_valid_tag(text) else None


@implementer(IRequestBodyPolicy)
class WebUI(resource.Resource):
    """
    @param registry: L{spectroreg.registry.Registry}.
    @param settings: L{spectroreg.config.settings.Settings}.
    @param authenticator: the API's L{IAuthenticator}, or None.
    """

    isLeaf = True

    def __init__(self, registry, settings, authenticator=None, reactor=None, static=None, events=None):
        super().__init__()
        self._registry = registry
        # Deletes are reported to the notification endpoints as the API's are.
        self._events = events
        self._reader = RegistryReader(registry)
        self._http = settings.http
        self._authenticator = authenticator
        self._reactor = reactor
        self._static = static if static is not None else load_static()
        self._links = pages.Links(self._http.prefix, {k: v[2] for k, v in self._static.items()})
        self._key = csrf.token_key(self._http.secret)

    # -- seams with the root and the request ---------------------------

    def wants(self, request):
        """Whether ``/`` should answer C{request} with the page (a browser's GET)."""
        return request.method in (b"GET", b"HEAD") and prefers_html(request.getHeader(b"accept"))

    def request_body_policy(self, request):
        """Asked by the request once its headers are in: only a small form is read."""
        return FORM_CAP

    def _now(self):
        if self._reactor is None:
            from twisted.internet import reactor

            self._reactor = reactor
        return self._reactor.seconds()

    # -- answering -----------------------------------------------------

    def render(self, request):
        # The context watches for the client leaving from now on (a request
        # not made by our Site gets it here, on first use).
        context_of(request)
        d = defer.ensureDeferred(self._handle(request))
        d.addErrback(lambda f: log.failure("answering {method} {path}", f,
                                           method=request.method, path=request.path))
        return NOT_DONE_YET

    async def _handle(self, request):
        authenticated = False
        try:
            user = await self._authenticate(request)
            authenticated = True
            await self._route(request, user)
        except Unauthorized:
            headers = self._authenticator.challenge() if self._authenticator is not None else ()
            self._error(request, 401, "Authentication required.", headers, authenticated=False)
        except TooManyRequests as error:
            retry = str(int(max(1, round(error.retry_after))))
            self._error(request, 429, "Too many failed logins; try again later.",
                        [("Retry-After", retry)], authenticated=False)
        except _PageError as error:
            self._error(request, error.status, error.message, error.headers, authenticated)
        except RegistryError as error:
            self._registry_error(request, error)
        except Exception:
            log.failure("internal error answering {method} {path}", Failure(),
                        method=request.method, path=request.path)
            self._error(request, 500, "Internal error.", authenticated=authenticated)

    def _registry_error(self, request, error):
        # The API's answer to the error, shown as a page.
        answer = from_registry_error(error)
        if answer.code in ("NAME_UNKNOWN", "MANIFEST_UNKNOWN", "NAME_INVALID", "BLOB_UNKNOWN"):
            self._error(request, 404, "Not found.")
        elif answer.code in ("UNSUPPORTED", "DENIED") or answer.status in (403, 405):
            self._error(request, 405, answer.message)
        elif answer.status < 500:
            self._error(request, answer.status, answer.message)
        else:
            log.warn("web page {path}: {error}", path=request.path, error=str(error))
            self._error(request, 503, "Storage is not available.")

    async def _authenticate(self, request):
        if self._authenticator is None:
            return None
        authorization = request.requestHeaders.getRawHeaders(b"authorization", [None])[0]
        return await self._authenticator.authenticate(authorization, client_host(request))

    def _send(self, request, status, body, content_type=HTML, headers=(), cache=b"no-store"):
        if is_gone(request):
            return
        if isinstance(body, str):
            body = body.encode("utf-8")
        request.setResponseCode(status)
        request.setHeader(b"content-type", content_type)
        request.setHeader(b"cache-control", cache)
        # Defaults a configured http.headers entry would override: no
        # sniffing, and no framing (the delete form must not be clickjacked).
        if not request.responseHeaders.hasHeader(b"x-content-type-options"):
            request.setHeader(b"x-content-type-options", b"nosniff")
        if not request.responseHeaders.hasHeader(b"x-frame-options"):
            request.setHeader(b"x-frame-options", b"DENY")
        for name, value in headers:
            request.setHeader(name, value)
        request.setHeader(b"content-length", str(len(body)).encode("ascii"))
        if request.method != b"HEAD":
            request.write(body)
        request.finish()

    def _error(self, request, status, message, headers=(), authenticated=True):
        self._send(request, status, pages.error_page(self._links, status, message, authenticated), headers=headers)

    # -- routing -------------------------------------------------------

    def _segments(self, request):
        try:
            segments = [s.decode("utf-8") for s in request.postpath]
        except UnicodeDecodeError:
            raise _PageError(404, "Not found.")
        while segments and segments[-1] == "":
            segments.pop()
        return segments

    async def _route(self, request, user):
        segments = self._segments(request)
        method = request.method
        if segments == ["delete"]:
            if method == b"POST":
                return await self._delete(request, user)
            self._only_get(request, "GET, HEAD, POST")
            return await self._confirm(request, user)
        self._only_get(request, "GET, HEAD")
        if not segments:
            return await self._index(request)
        head, rest = segments[0], segments[1:]
        if head == "static" and len(rest) == 1:
            return self._static_file(request, rest[0])
        if head == "r" and rest:
            return await self._repository(request, self._name(rest))
        if head == "m" and len(rest) >= 2:
            return await self._manifest(request, self._name(rest[:-1]), rest[-1])
        raise _PageError(404, "Not found.")

    @staticmethod
    def _only_get(request, allowed):
        if request.method not in (b"GET", b"HEAD"):
            raise _PageError(405, "Method not allowed.", [("Allow", allowed)])

    @staticmethod
    def _name(segments):
        name = "/".join(segments)
        if not is_valid_name(name):
            raise _PageError(404, "No such repository.")
        return name

    def _can_delete(self):
        return self._registry.delete_enabled and not self._registry.readonly

    def _pull_host(self, request):
        if self._http.host:
            return urlsplit(self._http.host).netloc
        host = _header(request, "host")
        if host:
            return host
        address = request.getHost()
        return "{}:{}".format(getattr(address, "host", "localhost"), getattr(address, "port", 5000))

    # -- pages ---------------------------------------------------------

    def _static_file(self, request, filename):
        entry = self._static.get(filename)
        if entry is None:
            raise _PageError(404, "Not found.")
        data, content_type, version = entry
        # Named with their content's version in every page: cached for a
        # year, privately (they are behind the login too).
        self._send(request, 200, data, content_type.encode("ascii"),
                   headers=[("ETag", '"{}"'.format(version))],
                   cache=b"private, max-age=31536000, immutable")

    async def _index(self, request):
        q = (query_arg(request, "q") or "").strip()[:256]
        last = query_arg(request, "last")
        names = await self._reader.repositories()
        if q:
            needle = q.lower()
            names = [name for name in names if needle in name.lower()]
        n, asked = _page_size(request, INDEX_PAGE)
        page, more = page_after(names, last, n)
        summaries = await self._reader.summaries(page)
        self._send(request, 200, pages.index_page(self._links, summaries, len(names), q, last, more, asked))

    async def _repository(self, request, name):
        tags = await self._reader.tags(name)
        last = query_arg(request, "last")
        n, asked = _page_size(request, TAGS_PAGE)
        page, more = page_after(tags, last, n)
        rows = await self._reader.tag_rows(name, page)
        deleted = query_arg(request, "deleted")
        notice = "Deleted {}.".format(deleted) if deleted and _reference(deleted) is not None else None
        self._send(request, 200, pages.repository_page(
            self._links, name, rows, len(tags), self._pull_host(request), last, more,
            self._can_delete(), notice, asked))

    async def _manifest(self, request, name, text):
        reference = _reference(text)
        if reference is None:
            raise _PageError(404, "No such tag or digest.")
        view = await self._reader.view(name, reference)
        if query_arg(request, "raw"):
            self._send(request, 200, pages.raw_page(self._links, name, str(view.digest), view.record.body))
            return
        config = await self._reader.config(view) if view.kind == "image" else None
        referrers = await self._reader.referrers(name, view.digest)
        self._send(request, 200, pages.manifest_page(
            self._links, name, text, view, config, referrers, self._pull_host(request), self._can_delete()))

    # -- deleting ------------------------------------------------------

    def _check_delete_allowed(self):
        if self._registry.readonly:
            raise _PageError(405, "The registry is read-only: nothing can be deleted.")
        if not self._registry.delete_enabled:
            raise _PageError(405, "Deleting is disabled (storage.delete.enabled).")

    def _target(self, name, text):
        if not name or not is_valid_name(name):
            raise _PageError(400, "Not a repository name.")
        reference = _reference(text)
        if reference is None:
            raise _PageError(400, "Not a tag or digest.")
        return name, reference

    async def _confirm(self, request, user):
        self._check_delete_allowed()
        name, reference = self._target(query_arg(request, "repository"), query_arg(request, "reference"))
        digest = await self._registry.manifests.resolve(name, reference)
        tags = []
        if reference == digest:
            for tag in await self._reader.tags(name):
                try:
                    if await self._registry.manifests.resolve(name, tag) == digest:
                        tags.append(tag)
                except RegistryError:
                    continue
        token = csrf.issue_token(self._key, user, self._now())
        self._send(request, 200, pages.confirm_page(
            self._links, name, str(reference), reference == digest, tags, token))

    def _form(self, request):
        if IRequestContext(request).body.too_large:
            raise _PageError(413, "Request too large.")
        content = request.content
        if content is None:
            return {}
        content.seek(0)
        body = content.read(FORM_CAP + 1)
        if len(body) > FORM_CAP:
            raise _PageError(413, "Request too large.")
        try:
            return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=10))
        except (UnicodeDecodeError, ValueError):
            raise _PageError(400, "Unreadable form.")

    async def _delete(self, request, user):
        if csrf.cross_site(_header(request, "origin"), _header(request, "sec-fetch-site"),
                           _header(request, "host"), request.isSecure()):
            raise _PageError(403, "Refused: the request came from another site.")
        self._check_delete_allowed()
        form = self._form(request)
        if not csrf.check_token(self._key, user, form.get("token"), self._now()):
            raise _PageError(403, "Refused: the form has expired or did not come from this registry. "
                                  "Open the page again.")
        name, reference = self._target(form.get("repository"), form.get("reference"))
        await self._registry.manifests.delete(name, reference)
        log.info("web page: {user} deleted {name} {reference}", user=user or "-", name=name,
                 reference=str(reference))
        if self._events is not None:
            _report_delete(self._events, request, user, name, reference)
        location = self._links.repository(name, deleted=str(reference))
        request.setHeader(b"location", location.encode("ascii"))
        self._send(request, 303, pages.error_page(self._links, 303, "Deleted."))


def _report_delete(events, request, user, name, reference):
    from spectroreg.api.routes import MANIFEST, Route

    context = IRequestContext(request)
    if user and context.auth is None:
        context.auth = (True, user)  # the event's actor (and the access log's user)
    route = Route(MANIFEST, name, str(reference))
    if isinstance(reference, str):
        events.tag_deleted(request, route, reference)
    else:
        events.manifest_deleted(request, route, reference)


__all__ = ["WebUI", "load_static"]
