"""
The request context and the request line, through the daemon's own Site
over TCP: every request walks the resource tree once and matches its route
once (even a blob PATCH, whose body policy needs the route before the
answer does), and spectroreg keeps its per-request state in the request's
L{IRequestContext} only, never in attributes of its own on Twisted's request.
"""

import hashlib
import json

import treq
from twisted.internet import defer, reactor
from twisted.trial import unittest
from twisted.web import resource as web_resource
from twisted.web import server
from twisted.web.client import HTTPConnectionPool
from zope.interface.verify import verifyObject

from spectroreg.api import routes
from spectroreg.api.request import RegistryRequest
from spectroreg.api.testing import make_api_resource, make_registry, make_root, make_settings
from spectroreg.registry.manifests import OCI_MANIFEST
from spectroreg.web.channel import RegistryChannel
from spectroreg.web.context import RequestContext, context_of, is_gone
from spectroreg.web.interfaces import IRequestBodyPolicy, IRequestContext
from spectroreg.web import site as web_site
from spectroreg.web.site import RegistrySite
from tests.support.asynctest import async_test


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class _Everyone:
    """An authenticator that lets everyone in, as alice."""

    def challenge(self):
        return [("WWW-Authenticate", 'Basic realm="r"')]

    def authenticate(self, authorization, client):
        return defer.succeed("alice")


class _Recorder:
    """A request factory keeping every request it makes."""

    def __init__(self, factory):
        self.factory = factory
        self.made = []

    def __call__(self, *args, **kwargs):
        request = self.factory(*args, **kwargs)
        self.made.append(request)
        return request


class DaemonRequestTestCase(unittest.TestCase):
    """The daemon's Site (our channel, our requests) on a TCP port."""

    def serve(self, site_factory):
        self.settings = make_settings()
        self.registry = make_registry(self.settings)
        self.api = make_api_resource(self.registry, self.settings, authenticator=_Everyone())
        self.requests = _Recorder(RegistryRequest)
        self.site = site_factory(make_root(self.api), self.requests)
        port = reactor.listenTCP(0, self.site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.base = "http://127.0.0.1:{}/v2/".format(port.getHost().port)
        self.pool = HTTPConnectionPool(reactor, persistent=False)

    async def http(self, method, path, data=None, headers=None):
        url = path if path.startswith("http") else self.base + path
        response = await treq.request(method, url, data=data, headers=headers or {}, pool=self.pool,
                                      reactor=reactor)
        response.body = await response.content()
        return response

    walked = matched = None

    def note(self, done, what, response):
        # What each request cost: tree walks and route matches (when counted).
        counts = (len(self.walked), len(self.matched)) if self.walked is not None else (None, None)
        done.append((what, response) + counts)
        if self.walked is not None:
            del self.walked[:], self.matched[:]

    async def push(self):
        """
        Every kind of request a push and a pull make, one after the other:
        [(what, response, tree walks, route matches)].
        """
        done = []
        layer = b"layer" * 1000
        response = await self.http("POST", "r/blobs/uploads/")
        self.note(done, "upload start", response)
        location = response.headers.getRawHeaders("location")[0]
        response = await self.http("PATCH", location, data=layer)
        self.note(done, "upload patch", response)
        location = response.headers.getRawHeaders("location")[0]
        digest = ("&" if "?" in location else "?") + "digest=" + sha(layer)
        self.note(done, "upload put", await self.http("PUT", location + digest))
        config = b"{}"
        self.note(done, "monolithic post", await self.http("POST", "r/blobs/uploads/?digest=" + sha(config),
                                                           data=config))
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": sha(config), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": sha(layer), "size": len(layer)}],
        }).encode()
        self.note(done, "manifest put", await self.http("PUT", "r/manifests/v1", data=manifest,
                                                        headers={"Content-Type": OCI_MANIFEST}))
        self.note(done, "manifest get", await self.http("GET", "r/manifests/v1",
                                                        headers={"Accept": OCI_MANIFEST}))
        self.note(done, "blob head", await self.http("HEAD", "r/blobs/" + sha(layer)))
        self.note(done, "base", await self.http("GET", ""))
        self.note(done, "invalid name", await self.http("GET", "UPPER/tags/list"))
        self.note(done, "no route", await self.http("DELETE", "r/nothing/here"))
        return done


EXPECTED = [
    ("upload start", 202),
    ("upload patch", 202),
    ("upload put", 201),
    ("monolithic post", 201),
    ("manifest put", 201),
    ("manifest get", 200),
    ("blob head", 200),
    ("base", 200),
    ("invalid name", 400),
    ("no route", 404),
]


class OnceTests(DaemonRequestTestCase):
    def setUp(self):
        self.serve(lambda root, requests: RegistrySite(root, request_factory=requests, access_log=False))
        self.walked, self.matched = [], []
        match, walk = routes.match, web_resource.getChildForRequest

        def counting_match(segments):
            self.matched.append(list(segments))
            return match(segments)

        def counting_walk(root, request):
            self.walked.append(request.path)
            return walk(root, request)

        self.patch(routes, "match", counting_match)
        self.patch(web_resource, "getChildForRequest", counting_walk)
        self.patch(web_site, "getChildForRequest", counting_walk)

    @async_test
    async def test_tree_walked_and_route_matched_once_per_request(self):
        answers = await self.push()
        self.assertEqual([(what, response.code) for what, response, _, _ in answers], EXPECTED)
        for what, response, walks, matches in answers:
            self.assertEqual((what, walks, matches), (what, 1, 1))

    @async_test
    async def test_request_line_handed_over_before_the_body(self):
        seen = []
        original = RegistryRequest.gotLength

        def record(request, length):
            context = IRequestContext(request)
            seen.append((context.method, context.path, context.version))
            original(request, length)

        self.patch(RegistryRequest, "gotLength", record)
        response = await self.http("PATCH", "r/blobs/uploads/nothing?_state=x", data=b"abc")
        self.assertEqual(response.code, 404)
        self.assertEqual(seen, [(b"PATCH", b"/v2/r/blobs/uploads/nothing?_state=x", b"HTTP/1.1")])


class PlainSite(server.Site):
    """Twisted's own Site and requests, for what Twisted's request holds by itself."""


class ContextTests(DaemonRequestTestCase):
    """All of spectroreg's per-request state is in the context."""

    @async_test
    async def test_no_state_of_ours_on_the_request(self):
        self.serve(lambda root, requests: PlainSite(root, requestFactory=_Recorder(server.Request)))
        plain_site = self.site
        await self.push()
        twisteds = set()
        for request in plain_site.requestFactory.made:
            twisteds.update(vars(request))

        self.serve(lambda root, requests: RegistrySite(root, request_factory=requests, access_log=False,
                                                       headers={"Server": "spectro"}))
        answers = await self.push()
        self.assertEqual([(what, response.code) for what, response, _, _ in answers], EXPECTED)
        self.assertEqual(len(self.requests.made), len(answers))
        for (what, response, _, _), request in zip(answers, self.requests.made):
            self.assertEqual(set(vars(request)) - twisteds, set(), what)
            context = IRequestContext(request)
            self.assertIsInstance(context, RequestContext)
            self.assertEqual(context.user(), "alice", what)
            self.assertIsNotNone(context.started)
            self.assertEqual(response.headers.getRawHeaders("server"), ["spectro"], what)
        streamed = dict(zip([answer[0] for answer in answers], self.requests.made))
        self.assertEqual(IRequestContext(streamed["upload patch"]).body.stream.received, 5000)
        self.assertIsNone(IRequestContext(streamed["manifest put"]).body.stream)
        self.assertTrue(IRequestContext(streamed["manifest put"]).body.claimed)
        self.assertIsNotNone(IRequestContext(streamed["monolithic post"]).upload)


class InterfaceTests(unittest.TestCase):
    def test_context_provides_its_interface(self):
        verifyObject(IRequestContext, RequestContext())

    def test_any_twisted_request_has_one_context(self):
        from twisted.web.test.requesthelper import DummyChannel

        request = server.Request(DummyChannel())
        self.assertIs(context_of(request), IRequestContext(request))
        self.assertIsNone(context_of(object()))

    def test_resources_declare_their_body_policy(self):
        from spectroreg.ui import make_ui

        settings = make_settings()
        registry = make_registry(settings)
        self.assertTrue(IRequestBodyPolicy.providedBy(make_api_resource(registry, settings)))
        self.assertTrue(IRequestBodyPolicy.providedBy(make_ui(registry, settings)))

    def test_disconnection_from_the_request_end(self):
        from twisted.internet.error import ConnectionLost
        from twisted.python.failure import Failure
        from twisted.web.test.requesthelper import DummyChannel

        request = server.Request(DummyChannel())
        self.assertFalse(is_gone(request))
        request.connectionLost(Failure(ConnectionLost()))
        self.assertTrue(is_gone(request))

    def test_channel_is_a_request_line_channel(self):
        from spectroreg.web.channel import RequestLineChannel

        self.assertTrue(issubclass(RegistryChannel, RequestLineChannel))
