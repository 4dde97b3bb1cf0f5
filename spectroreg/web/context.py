"""
The request context: what spectroreg keeps about one request, attached to
Twisted's request as a component (Twisted's C{server.Request} is
C{Componentized}), read with C{IRequestContext(request)}.
"""

from twisted.internet import defer
from twisted.python import components
from twisted.web import server
from zope.interface import implementer

from spectroreg.bounded import Waiters
from spectroreg.web.interfaces import IRequestContext


class Walk:
    """
    The resource tree walked once for a request.

    @ivar path: the request path the walk was for (bytes).
    @ivar resource: the resource found.
    @ivar prepath: the request's prepath after the walk (list of bytes).
    @ivar postpath: its postpath after the walk (list of bytes).
    """

    __slots__ = ("path", "resource", "prepath", "postpath")

    def __init__(self, path, resource, prepath, postpath):
        self.path = path
        self.resource = resource
        self.prepath = list(prepath)
        self.postpath = list(postpath)


class BodyState:
    """
    What happens to the request's body (see L{spectroreg.api.request}).

    @ivar stream: the L{spectroreg.api.request.BodyStream} feeding a blob
        body into storage, or None.
    @ivar claimed: whether a resource decided what to do with the body.
    @ivar cap: bytes kept at most of a body that is not streamed, or None.
    @ivar size: bytes of such a body received so far.
    @ivar too_large: the body was over its cap (it is not kept).
    @ivar discarding: the rest of the body will not be used.
    @ivar checking: L{Waiters} for the check that runs before a capped body
        is read, while it runs; None otherwise.
    """

    def __init__(self):
        self.stream = None
        self.claimed = False
        self.cap = None
        self.size = 0
        self.too_large = False
        self.discarding = False
        self.checking = None


@implementer(IRequestContext)
class RequestContext:
    """The one place of per-request state; see L{IRequestContext}."""

    def __init__(self, request=None):
        # Only the request's end is watched; the request itself is not kept.
        self.method = None
        self.path = None
        self.version = None
        self.started = None
        self.server_header = None
        self.walk = None
        self.route = None
        self.body = BodyState()
        self.auth = None
        self.upload = None
        self.event_request = None
        self.disconnected = False
        if request is not None:
            request.notifyFinish().addErrback(self._client_gone)

    def _client_gone(self, failure):
        self.disconnected = True

    def request_line_received(self, method, path, version, started):
        self.method = method
        self.path = path
        self.version = version
        self.started = started

    def body_checked(self):
        if self.body.stream is not None:
            return self.body.stream.opened()
        if self.body.checking is None:
            return defer.succeed(None)
        return self.body.checking.wait()

    def start_check(self):
        self.body.checking = Waiters()

    def finish_check(self):
        waiters, self.body.checking = self.body.checking, None
        if waiters is not None:
            waiters.fire(None)

    def user(self):
        # Twisted's request.getUser() is whatever the client claims; this is
        # the authenticator's verdict.
        outcome = self.auth
        if outcome is not None and outcome[0] is True and isinstance(outcome[1], str) and outcome[1]:
            return outcome[1]
        return None


# Any twisted.web request gets its context on first use (the Site's own
# requests attach theirs when created); the same object every time after.
components.registerAdapter(RequestContext, server.Request, IRequestContext)


def context_of(request):
    """C{request}'s L{IRequestContext}, or None for an object that cannot hold one."""
    return IRequestContext(request, None)


def is_gone(request):
    """Whether C{request} is answered or its client went away: nothing more can be sent."""
    if request.finished:
        return True
    context = context_of(request)
    return context is not None and context.disconnected


__all__ = ["RequestContext", "BodyState", "Walk", "IRequestContext", "context_of", "is_gone"]
