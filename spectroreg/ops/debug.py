"""
The debug listener's resources (``http.debug.addr``): ``/debug/health``
and, with ``http.debug.prometheus.enabled``, the metrics at
``http.debug.prometheus.path``; and L{HealthGate}, which makes the
registry's own listener answer 503 while a health check fails.
"""

import json

from twisted.web import resource

from spectroreg.web.errordoc import error_body

JSON = b"application/json; charset=utf-8"
UNAVAILABLE_DETAIL = "health check failed: please see /debug/health"


class HealthResource(resource.Resource):
    """``GET /debug/health``: 200 ``{}``, or 503 with the failing checks (name -> error)."""

    isLeaf = True

    def __init__(self, health):
        super().__init__()
        self._health = health

    def render_GET(self, request):
        failing = self._health.failing
        request.setResponseCode(503 if failing else 200)
        request.setHeader(b"content-type", JSON)
        request.setHeader(b"cache-control", b"no-cache")
        return json.dumps(failing, sort_keys=True).encode("utf-8") + b"\n"

    def render(self, request):
        if request.method != b"GET":
            request.setResponseCode(404)
            return b""
        return super().render(request)


class _NotFound(resource.Resource):
    isLeaf = True

    def render(self, request):
        request.setResponseCode(404)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"404 page not found\n"


class DebugRoot(resource.Resource):
    """Routes the debug listener's paths exactly; anything else is 404."""

    def __init__(self, health, metrics_path=None, metrics_resource=None):
        super().__init__()
        self._routes = {b"/debug/health": HealthResource(health)}
        if metrics_path is not None and metrics_resource is not None:
            self._routes[metrics_path.encode("utf-8")] = metrics_resource

    def getChildWithDefault(self, name, request):
        target = self._routes.get(request.path)
        if target is None:
            return _NotFound()
        # The whole path was matched: the target sees no further segments.
        request.prepath.extend(request.postpath)
        del request.postpath[:]
        return target

    def render(self, request):
        return self.getChildWithDefault(b"", request).render(request)


class Unavailable(resource.Resource):
    """What every request gets while a health check fails (Distribution's answer)."""

    isLeaf = True

    def __init__(self, metrics=None):
        super().__init__()
        self._metrics = metrics

    def render(self, request):
        if self._metrics is not None:
            method = request.method.decode("latin-1")
            request.notifyFinish().addBoth(lambda _: self._metrics.request_done(request, "unavailable", method))
        body = error_body("UNAVAILABLE", "service unavailable", UNAVAILABLE_DETAIL)
        request.setResponseCode(503)
        request.setHeader(b"content-type", JSON)
        request.setHeader(b"content-length", str(len(body)).encode("ascii"))
        if request.method == b"HEAD":
            return b""
        return body


class HealthGate(resource.Resource):
    """
    Wraps the root of the registry's listener: while C{health} is not
    healthy, every path resolves to L{Unavailable}. The request's body is
    then never claimed by an upload, so nothing reaches storage.
    """

    def __init__(self, wrapped, health, metrics=None):
        super().__init__()
        self._wrapped = wrapped
        self._health = health
        self._unavailable = Unavailable(metrics)

    def getChildWithDefault(self, name, request):
        if not self._health.healthy():
            return self._unavailable
        return self._wrapped.getChildWithDefault(name, request)

    def render(self, request):
        if not self._health.healthy():
            return self._unavailable.render(request)
        return self._wrapped.render(request)
