"""
The resource tree above the registry API: ``GET /`` (liveness, 200 like
Distribution), the ``http.prefix`` folders, ``<prefix>/v2`` handed to the API,
and Go-style 404s for everything else.
"""

from twisted.web.resource import Resource

from spectroreg.web.headers import MalformedHeader, decode_header, is_host


class Liveness(Resource):
    """``/``: 200 with an empty body, as Distribution's ``alive`` handler."""

    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"content-length", b"0")
        return b""

    render_HEAD = render_GET


class NotFound(Resource):
    """The answer for any path outside the API, as Go's net/http gives it."""

    isLeaf = True
    body = b"404 page not found\n"

    def render(self, request):
        request.setResponseCode(404)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"content-length", str(len(self.body)).encode("ascii"))
        if request.method == b"HEAD":
            return b""
        return self.body


class _Folder(Resource):
    """One segment of the prefix: its only child is the next segment."""

    def getChild(self, path, request):
        return NotFound()


class RootResource(_Folder):
    """
    @param api: the IResource serving ``/v2`` and below.
    @param prefix: ``http.prefix``, normalised: "" or "/a/b" without a
        trailing slash.
    @param ui: the web pages (L{spectroreg.ui.WebUI}) served as
        ``<prefix>/ui`` and, for a browser's GET, at ``/``; or None.
    """

    def __init__(self, api, prefix="", ui=None):
        super().__init__()
        self.api = api
        self.prefix = prefix
        node = self
        for segment in [s for s in prefix.split("/") if s]:
            child = _Folder()
            node.putChild(segment.encode("utf-8"), child)
            node = child
        node.putChild(b"v2", api)
        self._ui = ui
        if ui is not None:
            node.putChild(b"ui", ui)
        self._liveness = Liveness()

    def getChild(self, path, request):
        if path == b"" and not request.postpath:
            if self._ui is not None:
                request.setHeader(b"vary", b"Accept")
                if self._ui.wants(request):
                    return self._ui
            return self._liveness
        return NotFound()


def http01_root(challenge_resource, https_port=None):
    """
    The tree of the plain-HTTP listener used with Let's Encrypt:
    ``/.well-known/acme-challenge/`` goes to C{challenge_resource}, everything
    else is redirected to the same host over https.

    @param https_port: the port of the https listener (443 is left out of
        the URL), or a callable returning it once the listener is bound.
    """
    root = _RedirectToHTTPS(https_port)
    well_known = _RedirectToHTTPS(https_port)
    root.putChild(b".well-known", well_known)
    well_known.putChild(b"acme-challenge", challenge_resource)
    return root


class _RedirectToHTTPS(Resource):
    isLeaf = False

    def __init__(self, https_port=None):
        super().__init__()
        self.https_port = https_port

    def getChild(self, path, request):
        return _Redirect(self.https_port)

    def render(self, request):
        return _Redirect(self.https_port).render(request)


class _Redirect(Resource):
    isLeaf = True

    def __init__(self, https_port):
        super().__init__()
        self.https_port = https_port

    def render(self, request):
        try:
            host = decode_header(request.getRequestHostname() or b"localhost", "host")
        except MalformedHeader:
            host = ""
        if ":" in host and not host.startswith("["):
            host = "[" + host + "]"  # a bare IPv6 literal
        if not is_host(host):
            # Go's answer to a Host no URL can carry.
            request.setResponseCode(400)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"400 Bad Request: malformed Host header"
        port = self.https_port() if callable(self.https_port) else self.https_port
        if port not in (None, 443):
            host = "{}:{}".format(host, port)
        location = "https://" + host + request.uri.decode("latin-1")
        request.setResponseCode(308 if request.method not in (b"GET", b"HEAD") else 301)
        request.setHeader(b"location", location.encode("latin-1"))
        request.setHeader(b"content-length", b"0")
        return b""
