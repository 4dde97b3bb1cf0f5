"""
The registry's Site and HTTP channel.

On top of twisted.web's HTTP/1.1 server this adds:

- the configured ``http.headers`` on every response, error answers of the
  HTTP parser and 404s included (set when the request object is created, so
  a resource may still replace one, as in Distribution);
- limits on the request line (414) and the whole head (431), and a deadline
  for receiving a request head, so a client trickling its headers cannot
  keep a connection forever (the idle timeout alone is reset by every byte);
- one access log line per request, without query secrets and never with the
  ``Authorization`` header;
- request bodies under the request's control: reading pauses while the
  request is not ready for more (storage behind, authentication pending),
  and a body nobody will use is dropped, up to ``Limits.max_discard``, so
  the connection can carry the next request; with more left it is cut:
  the request is answered at once with ``Connection: close`` and the
  connection closes after the answer, still reading and dropping what the
  client sends for a moment (so the client can read the answer before the
  kernel resets the connection);
- draining: stop taking requests on connections, let the ones in flight
  finish up to a timeout, then close everything.
"""

from urllib.parse import parse_qsl, quote

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import http, server
from twisted.web.http_headers import Headers
from zope.interface import Interface, implementer

from spectroreg.logging import ACCESS_NAMESPACE
from spectroreg.web.drain import DrainingChannelMixin
from spectroreg.web.headers import is_valid_host_header
from spectroreg.web.limits import DEFAULT_LIMITS
from spectroreg.web.numbers import parse_decimal
from spectroreg.web.status import reason_phrase

_log = Logger(namespace="spectroreg.web")
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


def _header_lines(headers):
    # Through twisted's Headers for the same name spelling as other answers.
    canonical = Headers()
    for name, values in headers:
        canonical.setRawHeaders(name, list(values))
    lines = []
    for name, values in canonical.getAllRawHeaders():
        for value in values:
            lines.append(name + b": " + value + b"\r\n")
    return b"".join(lines)


def _encode_headers(headers):
    """Config headers (name -> values, str) as a tuple of (bytes, [bytes])."""
    encoded = []
    for name, values in (headers or {}).items():
        if isinstance(values, (str, bytes)):
            values = [values]
        encoded.append(
            (
                name.encode("latin-1") if isinstance(name, str) else name,
                [v.encode("latin-1") if isinstance(v, str) else v for v in values],
            )
        )
    return tuple(encoded)


# The first byte of a TLS record carrying a handshake message (a ClientHello).
_TLS_HANDSHAKE_RECORD = b"\x16"


class IRequestBodyControl(Interface):
    """
    What a request may ask of its connection about its own body (the
    request streaming into storage, or answered without it).
    """

    def pause_reading():
        """Read nothing more from the client until L{resume_reading}."""

    def resume_reading():
        """Read again after L{pause_reading}."""

    def discard_body(request):
        """
        C{request} will not use the rest of its body: drop it, within a
        bound, or close the connection after C{request}'s answer.
        """


@implementer(IRequestBodyControl)
class RegistryChannel(DrainingChannelMixin, http.HTTPChannel):
    """An HTTP/1.1 channel with the limits and deadlines of L{Limits}."""

    _head_started = False
    _head_size = 0
    _head_deadline = None
    _awaiting_request_line = True
    _rejected = False
    _draining = False
    _local_address = None
    _parsing = 0
    _reading_paused = False
    _discarding = None
    _discarded = 0
    _cut = False
    _linger_call = None
    _continue_pending = False
    _continue_refused = False

    def connectionMade(self):
        limits = self.factory.limits
        # Our own checks answer 414/431 before Twisted's generic 400 would.
        self.MAX_LENGTH = limits.max_header_bytes
        self.totalHeadersSize = limits.max_header_bytes * 2
        # One above ours, so that our own count answers 431 first.
        self.maxHeaders = limits.max_headers + 1
        super().connectionMade()
        self.factory.channel_opened(self)

    def getHost(self):
        # Asked for by every request; the local address never changes, so
        # one getsockname() per connection is enough.
        if self._local_address is None:
            self._local_address = super().getHost()
        return self._local_address

    def connectionLost(self, reason):
        self._cancel_deadline()
        self._cancel_linger()
        try:
            super().connectionLost(reason)
        finally:
            self.factory.channel_closed(self)

    # -- request heads -----------------------------------------------------

    def _start_head(self):
        self._head_started = True
        self._head_size = 0
        timeout = self.factory.limits.header_timeout
        if timeout:
            self._head_deadline = self.callLater(timeout, self._head_timed_out)

    def _cancel_deadline(self):
        if self._head_deadline is not None:
            if self._head_deadline.active():
                self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self):
        self._head_deadline = None
        _log.info("request head not received in time from {peer}", peer=_peer(self))
        self.reject(408)

    def dataReceived(self, data):
        if self._rejected or self._cut:
            # Nothing more is parsed on this connection; reading on keeps
            # the client's unread bytes from turning our close into a reset.
            return
        if self.line_mode and not self._head_started:
            if self._awaiting_request_line and data[:1] == _TLS_HANDSHAKE_RECORD:
                # A TLS ClientHello on the plain-HTTP port: clients of an
                # "insecure registry" (skopeo, docker) try HTTPS first and fall
                # back to HTTP only once this attempt fails, so fail it now
                # instead of at the head deadline.
                self.reject(400)
                return
            self._start_head()
        self._parsing += 1
        try:
            super().dataReceived(data)
        finally:
            self._parsing -= 1
        self._check_discard()

    def lineReceived(self, line):
        if self._rejected:
            return
        if not self._head_started:
            self._start_head()
        limits = self.factory.limits
        self._head_size += len(line) + 2
        if self._awaiting_request_line and len(line) > limits.max_request_line:
            self.reject(414)
            return
        if self._head_size > limits.max_header_bytes:
            self.reject(431)
            return
        queued = len(self.requests)
        super().lineReceived(line)
        if len(self.requests) > queued:
            self._awaiting_request_line = False
            self.factory.request_started(self.requests[-1])

    def lineLengthExceeded(self, line):
        self.reject(414 if self._awaiting_request_line else 431)

    def headerReceived(self, line):
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip()
        if name == b"content-length" and parse_decimal(value.decode("latin-1")) is None:
            # As Go does; Twisted 26 would int() it, and 5000 digits raise there.
            self.reject(400)
            return False
        if name == b"host" and not is_valid_host_header(value):
            self.reject(400)  # Go: "400 Bad Request: malformed Host header"
            return False
        ok = super().headerReceived(line)
        if not ok:
            return ok
        if getattr(self, "_receivedHeaderCount", 0) > self.factory.limits.max_headers:
            self.reject(431)
            return False
        return ok

    def allHeadersReceived(self):
        self._cancel_deadline()
        self._head_started = False
        self._head_size = 0
        self._awaiting_request_line = True
        if self._draining:
            self.persistent = False
        super().allHeadersReceived()
        if self._draining:
            self.persistent = False
            self.requests[-1].responseHeaders.setRawHeaders(b"connection", [b"close"])

    def _respondToBadRequestAndDisconnect(self):
        # Twisted's own 400 answers, with our headers added.
        self.reject(400)

    def reject(self, code):
        """Answer C{code} with an empty body and close the connection."""
        if self._rejected:
            return
        self._rejected = True
        self._cancel_deadline()
        reason = reason_phrase(code)
        head = (
            b"HTTP/1.1 %d %s\r\n" % (code, reason)
            + b"Content-Length: 0\r\nConnection: close\r\n"
            + _header_lines(self.factory.response_headers)
            + b"\r\n"
        )
        if self.factory.access_log:
            _access.info(
                "rejected {status} from {remote}",
                status=code,
                remote=_peer(self),
                log_fields={"http.response.status": code, "http.request.remoteaddr": _peer(self)},
            )
        if self.transport is not None:
            self.transport.write(head)
            self._close_lingering()

    # -- request bodies ----------------------------------------------------

    def pause_reading(self):
        """
        Read nothing more from the client until L{resume_reading}: the
        request cannot take more of its body yet. Independent of Twisted's
        own pausing while the client does not read our answers.
        """
        if not self._reading_paused:
            self._reading_paused = True
            self._networkProducer.pauseProducing()

    def resume_reading(self):
        """Undo L{pause_reading}."""
        if self._continue_pending:
            self._continue_pending = False
            http.HTTPChannel._send100Continue(self)
        if self._reading_paused:
            self._reading_paused = False
            if not self._waitingForTransport:
                self._networkProducer.resumeProducing()

    def _send100Continue(self):
        # "Expect: 100-continue": the client sends its body only once asked.
        # Ask when the request wants it (Twisted asks at once), never when it
        # was answered without it: then the connection closes after the
        # answer, as the body would otherwise be read as the next request.
        if self._discarding is not None:
            self._continue_refused = True
        elif self._reading_paused:
            self._continue_pending = True
        else:
            super()._send100Continue()

    def resumeProducing(self):
        # Our send buffer drained; a request still waiting for its body
        # to be wanted keeps reading paused.
        super().resumeProducing()
        if self._reading_paused:
            self._networkProducer.pauseProducing()

    def discard_body(self, request):
        """
        C{request} was answered without the rest of its body: drop it. Up
        to C{Limits.max_discard} bytes are read (the connection then goes on
        with the next request); a body with more left is cut (see the
        module docstring). Nothing happens when the body is complete.
        """
        if self._transferDecoder is None or not self.requests or self.requests[-1] is not request:
            return
        if self._discarding is request:
            return
        self._discarding = request
        self._discarded = 0
        if self._continue_pending:
            self._continue_pending = False
            self._continue_refused = True
        self.resume_reading()
        if not self._parsing:
            self._check_discard()

    def rawDataReceived(self, data):
        if self._discarding is not None and not self._handlingRequest:
            self._discarded += len(data)
        super().rawDataReceived(data)

    def allContentReceived(self):
        # The body is complete (or cut): nothing left to drop.
        self._discarding = None
        self._continue_pending = self._continue_refused = False
        super().allContentReceived()

    def _check_discard(self):
        # Outside the parser only: cutting a body ends it, which the parser
        # must not do a second time.
        request = self._discarding
        if request is None or self._transferDecoder is None or self._rejected:
            return
        limit = self.factory.limits.max_discard
        remaining = getattr(self._transferDecoder, "contentLength", None)
        if (
            self._continue_refused
            or self._discarded > limit
            or (remaining is not None and remaining > limit - self._discarded)
        ):
            self._cut_body(request)

    def _cut_body(self, request):
        """Give up on the rest of C{request}'s body; see the module docstring."""
        self._cut = True
        self.persistent = False
        request.responseHeaders.setRawHeaders(b"connection", [b"close"])
        self.resume_reading()
        self._linger(self._stop_dropping)
        # Twisted's end of a body: the request is processed now, and the
        # connection closes after its answer (not persistent).
        self.allContentReceived()

    def _linger(self, then):
        self._cancel_linger()
        self._linger_call = self.callLater(self.factory.limits.linger_timeout, then)

    def _cancel_linger(self):
        if self._linger_call is not None:
            if self._linger_call.active():
                self._linger_call.cancel()
            self._linger_call = None

    def _stop_dropping(self):
        # The answer takes long: stop reading until it is out.
        self._linger_call = None
        self._reading_paused = True
        self._networkProducer.pauseProducing()

    def requestDone(self, request):
        # A finished request wants no more of its body.
        self._reading_paused = False
        self._continue_pending = self._continue_refused = False
        if self._discarding is request:
            self._discarding = None
        super().requestDone(request)

    def loseConnection(self):
        if not self._cut:
            return super().loseConnection()
        self._close_lingering()

    def _close_lingering(self):
        """
        Close after what was written, when the client may still be sending
        (a cut body, a refused request). Closing with its bytes unread makes
        the kernel answer with a reset, which can destroy our answer before
        the client reads it: send our end of the stream first, read and drop
        until the client closes, and close for good when that takes longer
        than C{Limits.linger_timeout}.
        """
        self._networkProducer.unregisterProducer()
        # Twisted's TLS layer passes unknown attributes on to the TCP
        # connection under it: half-closing that would skip TLS's own close.
        half_close = None if self.isSecure() else getattr(self.transport, "loseWriteConnection", None)
        if half_close is None:
            # The answer asked the client to close; give it the time.
            self._linger(self.transport.loseConnection)
        else:
            half_close()
            self._linger(self.transport.abortConnection)
        self._reading_paused = False
        self._networkProducer.resumeProducing()

    # -- draining ----------------------------------------------------------

    def start_draining(self):
        """
        Take no more requests: close now when idle; otherwise close once the
        request in flight is answered.
        """
        self._draining = True
        if not self.requests and not self._head_started:
            self.transport.loseConnection()
            return
        self.persistent = False
        for request in self.requests:
            if not request.startedWriting:
                request.responseHeaders.setRawHeaders(b"connection", [b"close"])


def _peer(channel):
    transport = getattr(channel, "transport", None)
    if transport is None:
        return "-"
    try:
        address = transport.getPeer()
    except Exception:
        return "-"
    host = getattr(address, "host", None)
    if host is None:
        return getattr(address, "name", None) or "unix"
    return "{}:{}".format(host, address.port) if ":" not in host else "[{}]:{}".format(host, address.port)


class SiteRequest(server.Request):
    """The Site's requests: Twisted's, without its Server header."""

    configured_server_header = None

    def setResponseCode(self, code, message=None):
        if message is None:
            message = reason_phrase(code)
        server.Request.setResponseCode(self, code, message)

    def write(self, data):
        if not self.startedWriting:
            # Twisted names itself and its version in a Server header
            # (replacing one set from http.headers); as Distribution, say
            # nothing about the software unless configured to. finish()
            # without a body comes through here too.
            if self.responseHeaders.getRawHeaders(b"server") == [server.version]:
                if self.configured_server_header:
                    self.responseHeaders.setRawHeaders(b"server", list(self.configured_server_header))
                else:
                    self.responseHeaders.removeHeader(b"server")
        server.Request.write(self, data)

    def connectionLost(self, reason):
        # The client went away before the answer was complete: still one
        # access-log line (once its head was in; a method is set by then).
        site = self.channel.factory if self.channel is not None else None
        if not self.finished and self.method is not None and isinstance(site, RegistrySite):
            site.log(self, interrupted=True)
        server.Request.connectionLost(self, reason)


# What twisted.web.http.Request.clientproto is until the whole request is in.
_NO_PROTO_YET = b"(no clientproto yet)"

# The status logged for a request whose client left before any answer (as nginx).
CLIENT_CLOSED_REQUEST = 499


class RegistrySite(server.Site):
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

    def request_started(self, request):
        request._spectroreg_started = self._reactor.seconds()
        for name, values in self.response_headers:
            request.responseHeaders.setRawHeaders(name, list(values))
            if name.lower() == b"server":
                # Twisted overwrites it when processing; the request puts it back.
                request.configured_server_header = values

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
        started = getattr(request, "_spectroreg_started", None)
        duration = self._reactor.seconds() - started if started is not None else 0.0
        uri = safe_uri(request.uri or b"")
        method = (request.method or b"-").decode("latin-1")
        proto = request.clientproto
        if proto in (None, _NO_PROTO_YET):
            # A request cut before its body was in: the channel has the version.
            proto = getattr(request.channel, "_version", None)
        proto = (proto or b"-").decode("latin-1")
        user = _user_of(request)
        agent = request.getHeader(b"user-agent")
        address = request.getClientAddress()
        remote = getattr(address, "host", None) or "-"
        fields = {
            "http.request.method": method,
            "http.request.uri": uri,
            "http.request.remoteaddr": remote,
            "http.response.status": status,
            "http.response.written": request.sentLength,
            "http.response.duration": "%.3fms" % (duration * 1000.0,),
        }
        if interrupted:
            fields["http.request.interrupted"] = True
        if agent:
            fields["http.request.useragent"] = agent.decode("latin-1")
        if user:
            fields["auth.user.name"] = user
        _access.info(
            '{method} {uri} {proto} {status} {written} {duration} {remote} {user}',
            remote=remote,
            user=user or "-",
            method=method,
            uri=uri,
            proto=proto,
            status=status,
            written=request.sentLength,
            duration=fields["http.response.duration"],
            log_fields=fields,
        )
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


def _user_of(request):
    """
    The authenticated user of C{request}, if the API recorded one. Twisted's
    own C{request.getUser()} is not used: it is whatever the client claims.
    The API keeps the authenticator's outcome as C{(ok, user or error)}.
    """
    outcome = getattr(request, "_spectroreg_auth", None)
    if isinstance(outcome, tuple) and len(outcome) == 2 and outcome[0] is True:
        if isinstance(outcome[1], str) and outcome[1]:
            return outcome[1]
    for name in ("authenticated_user", "auth_user", "registry_user"):
        user = getattr(request, name, None)
        if isinstance(user, bytes):
            user = user.decode("utf-8", "replace")
        if isinstance(user, str) and user:
            return user
    return None
