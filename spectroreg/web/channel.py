"""
The registry's HTTP/1.1 channel, on top of twisted.web's:

- limits on the request line (414) and the whole head (431), and a deadline
  for receiving a request head, so a client trickling its headers cannot
  keep a connection forever (the idle timeout alone is reset by every byte);
- the request line handed to the request as soon as it is parsed
  (L{spectroreg.web.site.RegistrySite.request_started});
- request bodies under the request's control: reading pauses while the
  request is not ready for more (storage behind, authentication pending),
  and a body nobody will use is dropped, up to ``Limits.max_discard``, so
  the connection can carry the next request; with more left it is cut:
  the request is answered at once with ``Connection: close`` and the
  connection closes after the answer, still reading and dropping what the
  client sends for a moment (so the client can read the answer before the
  kernel resets the connection);
- draining: stop taking requests, close once the one in flight is answered.
"""

from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.web import http
from twisted.web.http_headers import Headers
from zope.interface import implementer

from spectroreg.logging import ACCESS_NAMESPACE
from spectroreg.web.drain import DrainingChannelMixin
from spectroreg.web.headers import is_valid_host_header
from spectroreg.web.interfaces import IRequestBodyControl, IRequestContext
from spectroreg.web.numbers import parse_decimal
from spectroreg.web.responsehead import response_head
from spectroreg.web.status import reason_phrase

_log = Logger(namespace="spectroreg.web")
_access = Logger(namespace=ACCESS_NAMESPACE)


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


# Asks a client that sent "Expect: 100-continue" for its body.
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

# The first byte of a TLS record carrying a handshake message (a ClientHello).
_TLS_HANDSHAKE_RECORD = b"\x16"


def send_at_once(transport):
    """
    Turn off Nagle's algorithm on a TCP C{transport} (through a TLS layer,
    which hands attributes down), as Go's servers and nginx do by default:
    the end of an answer, smaller than a segment, then leaves at once
    instead of waiting for the client's acknowledgement of what went
    before, which a client may delay by up to 40 ms. Other transports (a
    Unix socket) are left alone.
    """
    set_no_delay = getattr(transport, "setTcpNoDelay", None)
    if set_no_delay is None:
        return
    try:
        set_no_delay(True)
    except OSError:
        pass


@implementer(IPushProducer)
class _Unpausable:
    """For a transport that cannot pause its reading (as Twisted's channel does)."""

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass

    def stopProducing(self):
        pass


class RequestLineChannel(http.HTTPChannel):
    """
    An HTTP/1.1 channel that hands each request line to its request as
    soon as it is parsed (L{request_line_parsed}): Twisted keeps it to
    itself until the whole body is in, and the request needs it at its
    headers already, to decide what to do with its body.
    """

    def lineReceived(self, line):
        queued = len(self.requests)
        super().lineReceived(line)
        if len(self.requests) > queued:
            parts = line.split()
            if len(parts) != 3:
                # Refused by Twisted's parser: a request without a line.
                parts = (None, None, None)
            self.request_line_parsed(self.requests[-1], *parts)

    def request_line_parsed(self, request, method, path, version):
        """
        C{request} was made for a new request line: C{method}, C{path} and
        C{version} as parsed (bytes; None when the line was refused).
        """
        IRequestContext(request).request_line_received(method, path, version, None)


@implementer(IRequestBodyControl)
class RegistryChannel(DrainingChannelMixin, RequestLineChannel):
    """An HTTP/1.1 channel with the limits and deadlines of L{Limits}."""

    _head_started = False
    _head_size = 0
    _head_deadline = None
    _awaiting_request_line = True
    _rejected = False
    _lost = False
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
    _header_count = 0
    # What Twisted's channel keeps to itself, recorded here from the public
    # hooks: a request body is being received (a Content-Length or chunked
    # header was accepted, until the body ended), the bytes of it still to
    # come (a Content-Length body), and whether the transport paused us
    # because the client does not read our answers.
    _body_open = False
    _body_left = None
    _send_blocked = False
    _reader = None

    def connectionMade(self):
        limits = self.factory.limits
        # Our own checks answer 414/431 before Twisted's generic 400 would.
        self.MAX_LENGTH = limits.max_header_bytes
        self.totalHeadersSize = limits.max_header_bytes * 2
        # One above ours, so that our own count answers 431 first.
        self.maxHeaders = limits.max_headers + 1
        # What pauses and resumes reading from the client (as Twisted's own).
        self._reader = IPushProducer(self.transport, _Unpausable())
        send_at_once(self.transport)
        super().connectionMade()
        self.factory.channel_opened(self)

    def getHost(self):
        # Asked for by every request; the local address never changes, so
        # one getsockname() per connection is enough.
        if self._local_address is None:
            self._local_address = super().getHost()
        return self._local_address

    def connectionLost(self, reason):
        self._lost = True
        self._cancel_deadline()
        self._cancel_linger()
        try:
            super().connectionLost(reason)
        finally:
            self.factory.channel_closed(self)

    # -- request heads -----------------------------------------------------

    def _start_head(self):
        # The deadline is armed once the bytes at hand are parsed
        # (L{_arm_deadline}): most heads arrive whole, and then need none.
        self._head_started = True
        self._head_size = 0

    def _arm_deadline(self):
        if not self._head_started or self._head_deadline is not None or self._rejected or self._lost:
            return
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
        if not self._parsing:
            self._arm_deadline()
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
        super().lineReceived(line)

    def request_line_parsed(self, request, method, path, version):
        self._awaiting_request_line = False
        self._header_count = 0
        if self._rejected:
            method = path = version = None
        self.factory.request_started(request, method, path, version)

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
        self._header_count += 1
        if self._header_count > self.factory.limits.max_headers:
            self.reject(431)
            return False
        if name == b"content-length":
            self._body_open, self._body_left = True, parse_decimal(value.decode("latin-1"))
        elif name == b"transfer-encoding" and value.lower() == b"chunked":
            self._body_open, self._body_left = True, None
        return ok

    def allHeadersReceived(self):
        self._cancel_deadline()
        self._head_started = False
        self._head_size = 0
        self._awaiting_request_line = True
        if self._draining:
            self.persistent = False
        # "Expect: 100-continue" is answered by us (L{_expect_continue}), not
        # by Twisted, which would ask for the body at once: the header is
        # out of Twisted's sight while it handles the head.
        request = self.requests[-1]
        expect = request.requestHeaders.getRawHeaders(b"expect")
        if expect is not None:
            request.requestHeaders.removeHeader(b"expect")
        try:
            super().allHeadersReceived()
        finally:
            if expect is not None:
                request.requestHeaders.setRawHeaders(b"expect", expect)
        if self._draining:
            self.persistent = False
            request.responseHeaders.setRawHeaders(b"connection", [b"close"])
        if expect and expect[0].lower() == b"100-continue" and IRequestContext(request).version == b"HTTP/1.1":
            self._expect_continue()

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

    def writeHeaders(self, version, code, reason, headers):
        # A Headers (Twisted 26) is written as Twisted writes it; the pairs
        # Twisted 22.4 hands over are written in one pass (see responsehead).
        if isinstance(headers, Headers):
            return super().writeHeaders(version, code, reason, headers)
        self.transport.writeSequence(response_head(version, code, reason, headers))

    # -- request bodies ----------------------------------------------------

    def pause_reading(self):
        """
        Read nothing more from the client until L{resume_reading}: the
        request cannot take more of its body yet. Independent of Twisted's
        own pausing while the client does not read our answers.
        """
        if not self._reading_paused:
            self._reading_paused = True
            self._reader.pauseProducing()

    def resume_reading(self):
        """Undo L{pause_reading}."""
        if self._continue_pending:
            self._continue_pending = False
            self.transport.write(_CONTINUE)
        if self._reading_paused:
            self._reading_paused = False
            if not self._send_blocked:
                self._reader.resumeProducing()

    def _expect_continue(self):
        # "Expect: 100-continue": the client sends its body only once asked.
        # Ask when the request wants it (Twisted asks at once), never when it
        # was answered without it: then the connection closes after the
        # answer, as the body would otherwise be read as the next request.
        if self._discarding is not None:
            self._continue_refused = True
        elif self._reading_paused:
            self._continue_pending = True
        else:
            self.transport.write(_CONTINUE)

    def pauseProducing(self):
        # Our send buffer is full (the client does not read our answers).
        self._send_blocked = True
        super().pauseProducing()

    def resumeProducing(self):
        # Our send buffer drained; a request still waiting for its body
        # to be wanted keeps reading paused.
        self._send_blocked = False
        super().resumeProducing()
        if self._reading_paused:
            self._reader.pauseProducing()

    def discard_body(self, request):
        """
        C{request} was answered without the rest of its body: drop it. Up
        to C{Limits.max_discard} bytes are read (the connection then goes on
        with the next request); a body with more left is cut (see the
        module docstring). Nothing happens when the body is complete.
        """
        if not self._body_open or not self.requests or self.requests[-1] is not request:
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
        # Bytes of the body in progress: once it ended, what comes is the next
        # request (Twisted keeps it until the answer is out).
        if self._body_open:
            if self._discarding is not None:
                self._discarded += len(data)
            if self._body_left is not None:
                self._body_left = max(0, self._body_left - len(data))
        super().rawDataReceived(data)

    def allContentReceived(self):
        # The body is complete (or cut): nothing left to drop.
        self._discarding = None
        self._continue_pending = self._continue_refused = False
        self._body_open, self._body_left = False, None
        super().allContentReceived()

    def _check_discard(self):
        # Outside the parser only: cutting a body ends it, which the parser
        # must not do a second time.
        request = self._discarding
        if request is None or not self._body_open or self._rejected:
            return
        limit = self.factory.limits.max_discard
        remaining = self._body_left
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
        self._reader.pauseProducing()

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
        self.transport.unregisterProducer()
        # The TLS layer (a protocol wrapper) passes unknown attributes on to
        # the TCP connection under it: half-closing that would skip TLS's own close.
        half_close = None if self.isSecure() else getattr(self.transport, "loseWriteConnection", None)
        if half_close is None:
            # The answer asked the client to close; give it the time.
            self._linger(self.transport.loseConnection)
        else:
            half_close()
            self._linger(self.transport.abortConnection)
        self._reading_paused = False
        self._reader.resumeProducing()

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
