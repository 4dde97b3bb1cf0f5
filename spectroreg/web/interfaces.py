"""
The seams between the HTTP channel, the request and the resources that
answer it.
"""

from zope.interface import Attribute, Interface


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


class IRequestBodyPolicy(Interface):
    """
    A resource that decides what happens to the body of a request it will
    answer, before any byte of that body is read.
    """

    def request_body_policy(request):
        """
        Asked once the request's headers are in (its method, path and query
        are set; the body is not).

        @return: a L{spectroreg.api.request.StreamTarget} (the body streams
            into it), a L{spectroreg.api.request.CappedBody} (kept in memory
            up to its cap once its check passed), an int (a cap), or None
            (the default cap).
        """


class IRequestContext(Interface):
    """
    Everything spectroreg keeps about one request, beside Twisted's own
    request attributes: attached to the request as a component
    (C{IRequestContext(request)}), the one place for per-request state.
    """

    method = Attribute("The method from the request line (bytes), or None before it.")
    path = Attribute("The request target from the request line (bytes), or None.")
    version = Attribute("The HTTP version from the request line (bytes), or None.")
    started = Attribute("Reactor seconds when the request line arrived, or None.")
    server_header = Attribute("The configured Server header values (list of bytes), or None.")
    walk = Attribute(
        "The resource found for the request and the prepath/postpath the walk left "
        "(a L{spectroreg.web.context.Walk}), or None before the tree was walked."
    )
    route = Attribute(
        "The API's route match: None before matching, else a "
        "L{spectroreg.api.routes.RouteMatch}."
    )
    body = Attribute("The L{spectroreg.web.context.BodyState} of the request's body.")
    auth = Attribute("The authenticator's outcome, (True, user) or (False, error); None before.")
    upload = Attribute("(upload id, digest) of a single-request upload (POST ?digest=), or None.")
    event_request = Attribute("The ``request`` record every notification event of the request shares.")
    disconnected = Attribute("True once the client went away before the answer was complete.")

    def request_line_received(method, path, version, started):
        """The channel parsed the request line: record it and when it arrived."""

    def body_checked():
        """
        A Deferred firing (with None, never failing) once what had to happen
        before the body is read has happened: the upload writer opened or
        refused, the body's check passed or failed.
        """

    def start_check():
        """A check that must pass before the body is read (authentication) begins."""

    def finish_check():
        """That check ended, passed or failed: whoever waits in L{body_checked} goes on."""

    def user():
        """The authenticated user's name (str), or None."""
