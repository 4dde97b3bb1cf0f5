"""
``RegistryRequest``: the Site's request factory, streaming blob bodies.

Twisted spools a whole request body (to memory or a temp file) before any
resource sees it. For blob uploads (PATCH/PUT on an upload, POST with
``?digest=``) that is a disk-sized buffer per request, so this request
asks the resource that will handle it, as soon as the headers are in
(``gotLength``), what to do with the body:

- a L{StreamTarget}: open an upload writer (after authentication: nothing
  reaches storage before that succeeded) and write each chunk into it as
  it arrives, hashing on the way, with the transport paused while storage
  has a write pending;
- an int: a cap on the body (manifests 4 MiB, everything else small). A
  larger body is not kept; the resource answers 413, and a resource that
  does not know about caps gets a 413 from here;
- a L{CappedBody}: the same, with a check (authentication) that must pass
  before any byte of the body is read.

Once the answer is decided without the body (the writer could not be
opened: authentication failed, unknown upload, bad ``Content-Range``…; a
capped body is over its cap; storage failed), the rest of the body is
dropped: the channel reads up to a bound, or cuts the connection after the
answer (L{spectroreg.web.channel.RegistryChannel.discard_body}).

A client that disconnects mid-body leaves the upload at what was durably
written (resumable) or, for a single-request upload, no upload at all;
never a partial blob.
"""

import collections
import io
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import parse_qs, unquote
from twisted.web.server import Request

from spectroreg.bounded import Waiters
from spectroreg.web.errordoc import error_body
from spectroreg.web.interfaces import IRequestBodyControl, IRequestBodyPolicy, IRequestContext
from spectroreg.web.site import SiteRequest
from spectroreg.web.bodies import ReadSizer

log = Logger()

# Bodies of requests no resource claims (nothing in the API takes one).
DEFAULT_BODY_CAP = 64 * 1024

_UNKNOWN = object()

# Methods whose requests no resource takes a body for.
_NO_BODY_METHODS = frozenset([b"GET", b"HEAD"])


class _PlainChannelBodies:
    """
    L{IRequestBodyControl} for a channel that is not ours (treq's in-memory
    C{StubTreq} in tests): pauses through Twisted's producer methods and
    drops an unwanted body to its end.
    """

    def __init__(self, channel):
        self._channel = channel

    def pause_reading(self):
        self._channel.pauseProducing()

    def resume_reading(self):
        self._channel.resumeProducing()

    def discard_body(self, request):
        # Read on: the bytes are dropped by the request.
        self._channel.resumeProducing()


def body_control(request):
    """The L{IRequestBodyControl} of C{request}'s connection, None once it finished."""
    # A finished request has no channel attribute at all.
    channel = getattr(request, "channel", None)
    if channel is None:
        return None
    control = IRequestBodyControl(channel, None)
    return control if control is not None else _PlainChannelBodies(channel)


class CappedBody:
    """
    A small body, read into memory up to C{cap} bytes once C{check} passed.

    @ivar cap: bytes kept at most (int).
    @ivar check: no-argument coroutine function; when it raises, the body
        is not read (the resource answers with the same error).
    """

    def __init__(self, cap, check):
        self.cap = cap
        self.check = check


class StreamTarget:
    """
    Where a streamed body goes.

    @ivar open: no-argument coroutine function returning an object with
        C{write(data) -> Deferred}; may raise (the error is answered when
        the request is rendered).
    @ivar abandon: coroutine function called with that object when the
        client went away before the body was complete.
    """

    def __init__(self, open, abandon):
        self.open = open
        self.abandon = abandon


class BodyStream:
    """Feeds one request body into a writer, with back-pressure."""

    def __init__(self, request, target):
        self._request = request
        self._target = target
        self._writer = None
        self._error = None
        self._queue = collections.deque()
        self._writing = False
        self._opening = True
        self._ended = False
        self._aborted = False
        self._paused = False
        self._in_pump = False
        self._open_waiters = Waiters()
        self._done_waiters = Waiters()
        self.received = 0
        self._sizer = ReadSizer(getattr(request.channel, "transport", None))

    # transport control

    def _pause(self):
        # A finished request wants nothing more from the client.
        control = body_control(self._request)
        if not self._paused and control is not None:
            self._paused = True
            control.pause_reading()

    def _resume(self):
        control = body_control(self._request)
        if self._paused:
            self._paused = False
            if control is not None:
                control.resume_reading()

    # lifecycle

    def start(self):
        # Nothing is read until the writer exists (authentication first).
        self._pause()
        d = defer.ensureDeferred(self._target.open())
        d.addCallbacks(self._opened, self._open_failed)

    def _opened(self, writer):
        self._opening = False
        self._writer = writer
        self._open_waiters.fire(None)
        if self._aborted:
            self._abandon()
            return
        self._pump()

    def _open_failed(self, failure):
        self._opening = False
        self._error = failure
        self._queue.clear()
        self._open_waiters.fire(None)
        # The answer is decided: the rest of the body is not wanted.
        self._paused = False
        self._request.discard_body()
        self._check_done()

    def feed(self, data):
        self.received += len(data)
        self._sizer.received(len(data))
        if self._error is not None or self._aborted:
            return
        self._queue.append(data)
        self._pump()

    def _pump(self):
        if self._in_pump:
            return
        self._in_pump = True
        try:
            while self._writer is not None and not self._writing and self._queue and self._error is None:
                data = self._queue.popleft()
                self._writing = True
                d = defer.maybeDeferred(self._writer.write, data)
                d.addCallbacks(self._written, self._write_failed)
            if self._writing:
                # Storage has not caught up: stop reading from the client.
                self._pause()
                return
            if self._error is not None or self._writer is None:
                return
            if self._aborted:
                self._abandon()
                return
            self._resume()
            self._check_done()
        finally:
            self._in_pump = False

    def _written(self, _):
        self._writing = False
        if not self._in_pump:
            self._pump()

    def _write_failed(self, failure):
        self._writing = False
        self._error = failure
        self._queue.clear()
        log.failure("writing an upload body failed", failure)
        writer, self._writer = self._writer, None
        if writer is not None:
            d = defer.ensureDeferred(self._target.abandon(writer))
            d.addErrback(lambda f: log.failure("closing an upload after a failed write", f))
        self._paused = False
        self._request.discard_body()
        self._check_done()

    def end(self):
        """The whole body has been received."""
        self._ended = True
        self._sizer.done()
        self._check_done()

    def abort(self):
        """The client went away before the body was complete."""
        self._sizer.done()
        if self._ended or self._aborted:
            return
        self._aborted = True
        self._queue.clear()
        if self._writer is not None and not self._writing:
            self._abandon()

    def _abandon(self):
        writer, self._writer = self._writer, None
        if writer is None:
            return
        d = defer.ensureDeferred(self._target.abandon(writer))
        d.addErrback(lambda f: log.failure("abandoning an interrupted upload", f))

    def _done(self):
        if not self._ended or self._opening:
            return False
        if self._error is not None:
            return True
        return not self._writing and not self._queue

    def _check_done(self):
        if self._done():
            if self._error is not None:
                self._done_waiters.fail(self._error)
            else:
                self._done_waiters.fire(self._writer)

    def opened(self):
        """Deferred firing once the writer was opened or refused."""
        if not self._opening:
            return defer.succeed(None)
        return self._open_waiters.wait()

    def result(self):
        """Deferred firing with the writer once every byte is written (or failing)."""
        d = self._done_waiters.wait()
        self._check_done()
        return d


class RegistryRequest(SiteRequest):
    """
    A L{server.Request} that streams upload bodies (see the module
    docstring). Its state is its L{IRequestContext}'s C{body}.
    """

    def _check_body(self, check):
        # Nothing is read until the check is done.
        IRequestContext(self).start_check()
        control = body_control(self)
        if control is not None:
            control.pause_reading()
        d = defer.ensureDeferred(check())
        d.addBoth(self._body_check_done)

    def _body_check_done(self, result):
        if isinstance(result, Failure):
            self.discard_body()
        else:
            control = body_control(self)
            if control is not None:
                control.resume_reading()
        IRequestContext(self).finish_check()

    def discard_body(self):
        """
        The rest of this request's body will not be used: stop keeping it
        and let the channel drop it (or cut the connection after the answer).
        """
        body = IRequestContext(self).body
        if body.discarding:
            return
        body.discarding = True
        control = body_control(self)
        if control is not None:
            control.discard_body(self)

    def _claimed_body(self, context):
        """What the resource that will render this request wants done with its body."""
        if context.method is None:
            # The channel did not hand us the request line (not one of ours):
            # leave the body to Twisted rather than capping what we cannot route.
            return _UNKNOWN
        # What requestReceived will set; the resource needs them now.
        self.method = context.method
        self.uri = context.path
        self.path, _, query = context.path.partition(b"?")
        self.args = parse_qs(query, keep_blank_values=True)
        self.prepath = []
        self.postpath = list(map(unquote, self.path[1:].split(b"/")))
        try:
            resource = self.channel.site.getResourceFor(self)
        except Exception:
            log.failure("finding the resource for a request body")
            return None
        if not IRequestBodyPolicy.providedBy(resource):
            return None
        return resource.request_body_policy(self)

    def gotLength(self, length):
        context = IRequestContext(self)
        if length == 0 and context.method in _NO_BODY_METHODS:
            # Nothing to stream or cap.
            Request.gotLength(self, length)
            return
        try:
            policy = self._claimed_body(context)
        except Exception:
            log.failure("deciding what to do with a request body")
            policy = None
        if policy is _UNKNOWN:
            Request.gotLength(self, length)
            return
        body = context.body
        body.claimed = policy is not None
        if isinstance(policy, StreamTarget):
            self.content = io.BytesIO()
            body.stream = BodyStream(self, policy)
            body.stream.start()
            return
        check = None
        if isinstance(policy, CappedBody):
            body.cap, check = policy.cap, policy.check
        else:
            body.cap = policy if isinstance(policy, int) else DEFAULT_BODY_CAP
        if length is not None and length > body.cap:
            self._too_large()
            return
        Request.gotLength(self, length)
        if check is not None and length != 0:
            self._check_body(check)

    def _too_large(self):
        IRequestContext(self).body.too_large = True
        self.content = io.BytesIO()
        self.discard_body()

    def handleContentChunk(self, data):
        body = IRequestContext(self).body
        if body.discarding:
            return
        if body.stream is not None:
            body.stream.feed(data)
            return
        body.size += len(data)
        if body.cap is not None and body.size > body.cap:
            self._too_large()
            return
        Request.handleContentChunk(self, data)

    def requestReceived(self, command, path, version):
        stream = IRequestContext(self).body.stream
        if stream is not None:
            stream.end()
        Request.requestReceived(self, command, path, version)

    def process(self):
        body = IRequestContext(self).body
        if body.too_large and not body.claimed:
            # Nobody here knows the body was cut: answer for them.
            answer = error_body("SIZE_INVALID", "request body too large")
            self.setResponseCode(413)
            self.setHeader(b"content-type", b"application/json; charset=utf-8")
            self.setHeader(b"content-length", str(len(answer)).encode("ascii"))
            self.write(answer)
            self.finish()
            return
        SiteRequest.process(self)

    def connectionLost(self, reason):
        stream = IRequestContext(self).body.stream
        if stream is not None:
            stream.abort()
        SiteRequest.connectionLost(self, reason)


__all__ = ["RegistryRequest", "StreamTarget", "CappedBody", "BodyStream"]
