"""
The registry's Site and its requests.

On top of twisted.web's HTTP/1.1 server this adds:

- the configured ``http.headers`` on every response, error answers of the
  HTTP parser and 404s included (set when the request object is created, so
  a resource may still replace one, as in Distribution);
- one access log line per request, without query secrets and never with the
  ``Authorization`` header;
- a request context (L{spectroreg.web.context}) on every request, holding
  the request line as soon as the channel parsed it;
- the resource tree walked once per request, even when the body policy
  needs the resource before Twisted renders it;
- draining: stop taking requests on connections, let the ones in flight
  finish up to a timeout, then close everything.

The channel (limits, deadlines, request bodies) is L{spectroreg.web.channel}.
"""

import time
from urllib.parse import parse_qsl, quote

from twisted.internet import defer
from twisted.logger import LogLevel, Logger
from twisted.python.failure import Failure
from twisted.web.http import datetimeToString, unquote
from twisted.web.resource import getChildForRequest
from twisted.web.server import Request, Site, version as _TWISTED_SERVER

from spectroreg.logging import ACCESS_NAMESPACE, publish
from spectroreg.web.channel import RegistryChannel
from spectroreg.web.context import RequestContext, Walk, context_of
from spectroreg.web.interfaces import IRequestBodyControl, IRequestContext
from spectroreg.web.limits import DEFAULT_LIMITS
from spectroreg.web.status import reason_phrase

# Names of twisted.web.server are imported once: the module is a deprecation
# proxy, slow on every attribute access.

_access = Logger(namespace=ACCESS_NAMESPACE)
# Query parameters whose values are harmless and help reading the log; every
# other value (``_state``, tokens, signatures, ...) is masked.
_VISIBLE_QUERY = frozenset(
    ["n", "last", "digest", "mount", "from", "artifactType", "tag", "ns"]
)


def safe_uri(uri):
    """
    C{uri} (bytes or str) as it may appear in a log: the path as sent, and
    the query with the value of every parameter not known to be harmless
    replaced by ``***``.
    """
    if isinstance(uri, bytes):
        uri = uri.decode("latin-1")
    path, sep, query = uri.partition("?")
    if not sep:
        return path
    shown = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in _VISIBLE_QUERY:
            shown.append(quote(name, safe="") + "=***")
            continue
        shown.append(quote(name, safe="") + "=" + quote(value, safe=":/@,"))
    return path + "?" + "&".join(shown)


def _encode_headers(headers):
    """Config headers (name -> values, str) as a tuple of (bytes, (bytes, ...))."""
    encoded = []
    for name, values in (headers or {}).items():
        if isinstance(values, (str, bytes)):
            values = [values]
        encoded.append(
            (
                name.encode("latin-1") if isinstance(name, str) else name,
                tuple(v.encode("latin-1") if isinstance(v, str) else v for v in values),
            )
        )
    return tuple(encoded)


def _server_header(headers):
    """The configured Server header's values (the last one configured), or None."""
    found = None
    for name, values in headers:
        if name.lower() == b"server":
            found = values
    return found


# (whole second, its Date header value): many answers share a second.
_last_date = [None, b""]


def http_date(now=None):
    """The Date header value for C{now} (time.time() when None), made once per second."""
    whole = int(time.time() if now is None else now)
    if _last_date[0] != whole:
        _last_date[:] = [whole, datetimeToString(whole)]
    return _last_date[1]


class SiteRequest(Request):
    """
    The Site's requests: Twisted's, without its Server header, each with
    its L{IRequestContext}.
    """

    def __init__(self, *args, **kwargs):
        Request.__init__(self, *args, **kwargs)
        # The context learns of a client gone from connectionLost below,
        # not through a notifyFinish Deferred made for every request.
        self.setComponent(IRequestContext, RequestContext())

    def setResponseCode(self, code, message=None):
        if message is None:
            message = reason_phrase(code)
        Request.setResponseCode(self, code, message)

    def process(self):
        """
        Twisted's C{Request.process}, without what the registry does not
        use: no Server header (Twisted names itself; see L{write}), no
        encoding resources (none in the tree); the Date header made once
        per second. The C{*} path is Twisted's to answer.
        """
        if self.path == b"*":
            return Request.process(self)
        self.site = self.channel.site
        self.setHeader(b"date", http_date())
        self.prepath = []
        self.postpath = list(map(unquote, self.path[1:].split(b"/")))
        try:
            self.render(self.site.getResourceFor(self))
        except BaseException:
            self.processingFailed(Failure())

    def write(self, data):
        if not self.startedWriting:
            # Twisted names itself and its version in a Server header
            # (replacing one set from http.headers); as Distribution, say
            # nothing about the software unless configured to. finish()
            # without a body comes through here too.
            if self.responseHeaders.getRawHeaders(b"server") == [_TWISTED_SERVER]:
                configured = IRequestContext(self).server_header
                if configured:
                    self.responseHeaders.setRawHeaders(b"server", list(configured))
                else:
                    self.responseHeaders.removeHeader(b"server")
        Request.write(self, data)

    def connectionLost(self, reason):
        IRequestContext(self).disconnected = True
        # The client went away before the answer was complete: still one
        # access-log line (once its head was in; a method is set by then).
        site = self.channel.factory if self.channel is not None else None
        if not self.finished and self.method is not None and isinstance(site, RegistrySite):
            site.log(self, interrupted=True)
        Request.connectionLost(self, reason)


_ACCESS_FORMAT = "{method} {uri} {proto} {status} {written} {duration} {remote} {user}"

# What twisted.web.http.Request.clientproto is until the whole request is in.
_NO_PROTO_YET = b"(no clientproto yet)"

# The status logged for a request whose client left before any answer (as nginx).
CLIENT_CLOSED_REQUEST = 499


class WalkOnceSite(Site):
    """A Site that walks its resource tree once per request."""

    def getResourceFor(self, request):
        # Walked once per request: the body policy may have needed the
        # resource already (spectroreg.api.request), before Twisted asks.
        context = context_of(request)
        walk = context.walk if context is not None else None
        if walk is not None and walk.path == request.path:
            request.site = self
            request.sitepath = list(request.prepath)
            request.prepath = list(walk.prepath)
            request.postpath = list(walk.postpath)
            return walk.resource
        # Site.getResourceFor, without its module's deprecation proxy.
        request.site = self
        request.sitepath = list(request.prepath)
        resource = getChildForRequest(self.resource, request)
        if context is not None:
            context.walk = Walk(request.path, resource, request.prepath, request.postpath)
        return resource


class RegistrySite(WalkOnceSite):
    """
    @param resource: the root resource.
    @param request_factory: the request class (the API's streaming request),
        a L{SiteRequest}.
    @param headers: ``http.headers`` (name -> values).
    @param access_log: False to switch the access log off.
    @param limits: a L{spectroreg.web.limits.Limits}.
    @param reactor: for timeouts and durations.
    """

    protocol = RegistryChannel
    displayTracebacks = False
    noisy = False

    def __init__(
        self,
        resource,
        request_factory=None,
        headers=None,
        access_log=True,
        limits=DEFAULT_LIMITS,
        reactor=None,
    ):
        if reactor is None:
            from twisted.internet import reactor
        kwargs = {
            "timeout": limits.idle_timeout or None,
            "reactor": reactor,
            "requestFactory": request_factory or SiteRequest,
        }
        super().__init__(resource, **kwargs)
        self._reactor = reactor
        self.limits = limits
        self.response_headers = _encode_headers(headers)
        self._server_header = _server_header(self.response_headers)
        self.access_log = access_log
        self.channels = set()
        self._draining = None  # a Deferred while draining
        self._drain_call = None

    def acceptableProtocols(self):
        # Our channel speaks HTTP/1.1 only: never let TLS negotiate h2.
        return [b"http/1.1"]

    # -- hooks called by RegistryChannel -------------------------------------

    def channel_opened(self, channel):
        self.channels.add(channel)
        if self._draining is not None:
            channel.start_draining()

    def channel_closed(self, channel):
        self.channels.discard(channel)
        self._check_drained()

    def request_started(self, request, method=None, path=None, version=None):
        """
        The channel made C{request} for a new request line: C{method},
        C{path} and C{version} as parsed (None when the line was refused).
        """
        context = IRequestContext(request)
        context.request_line_received(method, path, version, self._reactor.seconds())
        headers = request.responseHeaders
        for name, values in self.response_headers:
            headers.setRawHeaders(name, list(values))
        # Twisted overwrites Server when processing; the request puts it back.
        context.server_header = self._server_header

    # -- access log -------------------------------------------------------

    def log(self, request, interrupted=False):
        """
        The access-log line of C{request}: when it finished, or with
        C{interrupted} when its client went away first (status 499 if
        nothing had been sent, else the status sent).
        """
        if not self.access_log:
            return
        status = request.code
        if interrupted and not request.startedWriting:
            status = CLIENT_CLOSED_REQUEST
        context = IRequestContext(request)
        started = context.started
        duration = "%.3fms" % ((self._reactor.seconds() - started if started is not None else 0.0) * 1000.0,)
        uri = safe_uri(request.uri or b"")
        method = (request.method or b"-").decode("latin-1")
        proto = request.clientproto
        if proto is None or proto == _NO_PROTO_YET:
            # A request cut before its body was in: the channel has the version.
            proto = context.version
        proto = (proto or b"-").decode("latin-1")
        user = context.user()
        agent = request.requestHeaders.getRawHeaders(b"user-agent")
        address = request.getClientAddress()
        remote = getattr(address, "host", None) or "-"
        written = request.sentLength
        fields = {
            "http.request.method": method,
            "http.request.uri": uri,
            "http.request.remoteaddr": remote,
            "http.response.status": status,
            "http.response.written": written,
            "http.response.duration": duration,
        }
        if interrupted:
            fields["http.request.interrupted"] = True
        if agent:
            fields["http.request.useragent"] = agent[-1].decode("latin-1")
        if user:
            fields["auth.user.name"] = user
        publish(_access, LogLevel.info, _ACCESS_FORMAT, {
            "remote": remote, "user": user or "-", "method": method, "uri": uri, "proto": proto,
            "status": status, "written": written, "duration": duration, "log_fields": fields,
        })
        # A finished request may be what a drain waits for.
        if self._draining is not None:
            self._reactor.callLater(0, self._check_drained)

    # -- draining ---------------------------------------------------------

    def drain(self, timeout):
        """
        Stop taking requests on open connections and wait for the ones in
        flight, at most C{timeout} seconds; then close what is left.

        @return: a Deferred that fires (with None) when no connection is open.
        """
        if self._draining is not None:
            return _chain(self._draining)
        self._draining = defer.Deferred()
        waiting = self._draining
        for channel in list(self.channels):
            channel.start_draining()
        if timeout and timeout > 0:
            self._drain_call = self._reactor.callLater(timeout, self._drain_expired)
        else:
            self._drain_expired()
        self._check_drained()
        return _chain(waiting)

    def _drain_expired(self):
        self._drain_call = None
        for channel in list(self.channels):
            if channel.transport is not None:
                channel.transport.abortConnection()
        self._check_drained()

    def _check_drained(self):
        if self._draining is None or self._draining.called:
            return
        if self.channels:
            return
        if self._drain_call is not None and self._drain_call.active():
            self._drain_call.cancel()
        self._drain_call = None
        self._draining.callback(None)


def _chain(deferred):
    result = defer.Deferred()

    def done(value):
        result.callback(None)
        return value

    if deferred.called:
        result.callback(None)
    else:
        deferred.addBoth(done)
    return result


__all__ = ["RegistrySite", "SiteRequest", "RegistryChannel", "WalkOnceSite", "IRequestBodyControl", "safe_uri",
           "CLIENT_CLOSED_REQUEST"]
