"""
The operations parts without a daemon: config sections, the health
threshold rule and periodic checks on a fake clock, the notification queue
(bound, order, retries, backoff), storage measurements and the 503 gate.
"""

import json

from twisted.internet import defer, task
from twisted.python.components import Componentized
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from spectroreg.api import make_api_resource
from spectroreg.api.testing import make_registry, make_root, make_settings, stub_client
from spectroreg.config.errors import ConfigError
from spectroreg.config.load import load_settings
from spectroreg.config.operations import EndpointSettings
from spectroreg.ops.debug import HealthGate
from spectroreg.ops.health import Health, Status
from spectroreg.ops.interfaces import IEventSink, IHealth, IRegistryEvents, IRequestObserver, IStorageObserver
from spectroreg.ops.metrics import NULL_METRICS, Metrics
from spectroreg.ops.events import NULL_EVENTS, RegistryEvents
from spectroreg.ops.notifications import Broadcaster, Endpoint
from spectroreg.storage.base import ValidatingDriver
from spectroreg.storage.inmemory import InMemoryDriver
from spectroreg.ui import make_ui
from spectroreg.web.context import RequestContext
from spectroreg.web.interfaces import IRequestContext
from spectroreg.web.root import RootResource
from tests import test_ui as ui_tests
from tests.support.asynctest import async_test

BASE = "version: 0.1\nstorage: inmemory\n"


class ConfigTests(unittest.TestCase):
    def load(self, text):
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(text)
        return load_settings(path, environ={})

    def test_sections_typed_with_defaults(self):
        settings = self.load(BASE + """
http:
  debug:
    addr: localhost:5001
    prometheus:
      enabled: true
health:
  storagedriver:
    enabled: true
    threshold: 3
  file:
    - file: /tmp/maintenance
  http:
    - uri: http://backend.example/ping
      headers:
        Authorization: [Basic x]
      statuscode: 204
      timeout: 3s
  tcp:
    - addr: redis:6379
      interval: 5s
notifications:
  events:
    includereferences: true
  endpoints:
    - name: hook
      url: https://hooks.example.com/event
      headers:
        Authorization: [Bearer t]
      timeout: 500ms
      threshold: 5
      backoff: 2s
      ignoredmediatypes: [application/octet-stream]
      ignore:
        mediatypes: [application/vnd.oci.image.config.v1+json]
        actions: [pull]
    - name: off
      url: http://127.0.0.1:1/
      disabled: true
""")
        self.assertEqual(settings.warnings, ())
        health = settings.health
        self.assertEqual((health.storagedriver.enabled, health.storagedriver.interval, health.storagedriver.threshold),
                         (True, 10.0, 3))
        self.assertEqual((health.file[0].file, health.file[0].interval), ("/tmp/maintenance", 10.0))
        self.assertEqual((health.http[0].statuscode, health.http[0].timeout), (204, 3.0))
        self.assertEqual(health.http[0].headers, {"Authorization": ("Basic x",)})
        self.assertEqual((health.tcp[0].addr, health.tcp[0].interval), ("redis:6379", 5.0))
        hook, off = settings.notifications.endpoints
        self.assertEqual(
            hook,
            EndpointSettings(
                name="hook", url="https://hooks.example.com/event", headers={"Authorization": ("Bearer t",)},
                timeout=0.5, threshold=5, backoff=2.0,
                ignored_mediatypes=("application/octet-stream", "application/vnd.oci.image.config.v1+json"),
                ignored_actions=("pull",),
            ),
        )
        self.assertEqual(settings.notifications.active, (hook,))
        self.assertTrue(off.disabled)
        self.assertTrue(settings.notifications.includereferences)
        # Distribution's endpoint defaults.
        plain = self.load(BASE + "notifications:\n  endpoints:\n    - name: a\n      url: http://x/\n")
        endpoint = plain.notifications.endpoints[0]
        self.assertEqual((endpoint.timeout, endpoint.threshold, endpoint.backoff), (1.0, 10, 1.0))

    def test_errors(self):
        cases = [
            ("notifications:\n  endpoints:\n    - name: a\n", "notifications.endpoints[0].url: required"),
            ("notifications:\n  endpoints:\n    - url: http://x/\n", "notifications.endpoints[0].name: required"),
            ("notifications:\n  endpoints:\n    - name: a\n      url: ftp://x/\n", "expected an http(s) URL"),
            ("notifications:\n  endpoints:\n    - name: a\n      url: http://x/\n      ignore:\n"
             "        actions: [pul]\n", "unknown action 'pul'"),
            ("notifications:\n  endpoints:\n    - {name: a, url: 'http://x/'}\n    - {name: a, url: 'http://y/'}\n",
             "another endpoint is already named 'a'"),
            ("notifications:\n  endpoints:\n    - name: a\n      url: http://x/\n      timeout: 5\n",
             "notifications.endpoints[0].timeout"),
            ("notifications:\n  endpoints: yes\n", "expected a list of mappings"),
            ("health:\n  tcp:\n    - addr: nohost\n", "health.tcp[0].addr"),
            ("health:\n  http:\n    - uri: backend/ping\n", "expected an http(s) URL"),
            ("health:\n  file:\n    - interval: 1s\n", "health.file[0].file: required"),
            ("health:\n  storagedriver:\n    enabled: yes please\n", "expected a boolean"),
            ("health:\n  storagedriver:\n    threshold: -1\n", "must be at least 0"),
        ]
        for text, expected in cases:
            with self.assertRaises(ConfigError, msg=text) as caught:
                self.load(BASE + text)
            self.assertIn(expected, str(caught.exception), text)

    def test_metrics_without_debug_addr_warn(self):
        settings = self.load(BASE + "http:\n  debug:\n    prometheus:\n      enabled: true\n")
        self.assertEqual([w.split(": ", 2)[1:] for w in settings.warnings],
                         [["http.debug.prometheus.enabled", "ignored without http.debug.addr (metrics are served there)"]])

    def test_unknown_keys_warn(self):
        settings = self.load(BASE + "health:\n  files: []\nnotifications:\n  endpoints:\n"
                             "    - {name: a, url: 'http://x/', retries: 3}\nhttp:\n  debug:\n    pprof:\n"
                             "      enabled: true\n")
        self.assertEqual(
            [w.split(": ", 2)[1:] for w in settings.warnings],
            [["health.files", "unknown key, ignored (did you mean file?)"],
             ["notifications.endpoints[0].retries", "unknown key, ignored"],
             ["http.debug.pprof", "read but not acted on yet: Go's profiler has no counterpart here"]],
        )


class StatusTests(unittest.TestCase):
    def test_threshold(self):
        """Distribution's rule: with a threshold, only that many failures in a row count."""
        for threshold, outcomes, expected in [
            (0, ["x"], "x"),
            (0, ["x", None], None),
            (3, ["x", "x"], None),
            (3, ["x", "x", "y"], "y"),
            (3, ["x", "x", None, "x", "x"], None),
            (3, ["x", "x", "x", "x", "x", "z"], "z"),
            (3, ["x", "x", "x", None], None),
        ]:
            status = Status(threshold)
            for outcome in outcomes:
                status.update(outcome)
            self.assertEqual(status.failing, expected, (threshold, outcomes))


class PeriodicTests(unittest.TestCase):
    def test_checks_run_every_interval_and_gate(self):
        clock = task.Clock()
        results = ["down"]
        calls = []

        async def check():
            calls.append(clock.seconds())
            if results[0] == "down":
                raise RuntimeError("backend down")

        health = Health()
        verifyObject(IHealth, health)
        health.add("backend", check, 5.0, 2, clock)
        health.startService()
        self.assertEqual(calls, [0])
        self.assertTrue(health.healthy())  # one failure, threshold 2
        clock.advance(5)
        self.assertFalse(health.healthy())
        self.assertEqual(health.failing, {"backend": "backend down"})
        results[0] = "up"
        clock.advance(5)
        self.assertTrue(health.healthy())
        self.assertEqual(calls, [0, 5, 10])
        health.stopService()
        clock.advance(50)
        self.assertEqual(calls, [0, 5, 10])

    def test_check_never_overlaps(self):
        clock = task.Clock()
        pending = []

        def check():
            d = defer.Deferred()
            pending.append(d)
            return d

        health = Health()
        health.add("slow", check, 1.0, 0, clock)
        health.startService()
        clock.advance(10)
        self.assertEqual(len(pending), 1)
        pending[0].callback(None)
        clock.advance(1)
        self.assertEqual(len(pending), 2)
        health.stopService()


def event(action="push", media_type="application/octet-stream", number=0):
    return {"id": str(number), "action": action, "target": {"mediaType": media_type, "digest": "sha256:x"}}


class EndpointTests(unittest.TestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.posts = []

    def endpoint(self, **kwargs):
        settings = EndpointSettings(name="e", url="http://x/", **kwargs)

        def post(body):
            d = defer.Deferred()
            self.posts.append((json.loads(body), d))
            return d

        return Endpoint(settings, self.clock, post=post)

    def ids(self, envelope):
        return [e["id"] for e in envelope["events"]]

    def test_write_never_posts_in_the_caller(self):
        endpoint = self.endpoint()
        verifyObject(IEventSink, endpoint)
        endpoint.write(event())
        self.assertEqual(self.posts, [])
        self.clock.advance(0)
        self.assertEqual(len(self.posts), 1)
        self.assertEqual(endpoint.pending, 1)
        self.posts[0][1].callback(None)
        self.assertEqual((endpoint.pending, endpoint.sent), (0, 1))

    def test_queue_bounded_oldest_dropped(self):
        endpoint = self.endpoint(queuesize=3)
        for number in range(10):
            endpoint.write(event(number=number))
        self.assertEqual((endpoint.pending, endpoint.dropped), (3, 7))
        self.clock.advance(0)
        self.assertEqual(self.ids(self.posts[0][0]), ["7", "8", "9"])
        # While one batch is out, the bound counts it too.
        for number in range(10, 15):
            endpoint.write(event(number=number))
        self.assertEqual(endpoint.pending, 3)

    def test_failure_retries_in_order_then_backs_off(self):
        endpoint = self.endpoint(threshold=2, backoff=30.0)
        endpoint.write(event(number=1))
        self.clock.advance(0)
        endpoint.write(event(number=2))
        self.posts[0][1].errback(RuntimeError("refused"))
        # Below the threshold: again at once, the failed event first.
        self.assertEqual(self.ids(self.posts[1][0]), ["1", "2"])
        self.posts[1][1].errback(RuntimeError("refused"))
        self.assertEqual(len(self.posts), 2)
        self.assertEqual((endpoint.failed, endpoint.pending), (2, 2))
        self.clock.advance(29)
        self.assertEqual(len(self.posts), 2)
        self.clock.advance(1)
        self.assertEqual(len(self.posts), 3)
        self.posts[2][1].callback(None)
        self.assertEqual((endpoint.sent, endpoint.pending), (2, 0))
        endpoint.write(event(number=3))
        self.clock.advance(0)
        self.assertEqual(len(self.posts), 4)

    def test_ignored(self):
        endpoint = self.endpoint(ignored_mediatypes=("application/octet-stream",), ignored_actions=("pull",))
        endpoint.write(event())
        endpoint.write(event(action="pull", media_type="application/vnd.oci.image.manifest.v1+json"))
        self.assertEqual(endpoint.pending, 0)
        endpoint.write(event(action="delete", media_type=None))
        self.assertEqual(endpoint.pending, 1)

    def test_stop_drops_queue(self):
        endpoint = self.endpoint()
        endpoint.write(event())
        endpoint.stop()
        self.clock.advance(0)
        self.assertEqual((self.posts, endpoint.pending), ([], 0))
        endpoint.write(event())
        self.assertEqual(endpoint.pending, 0)

    def test_broadcaster(self):
        first, second = self.endpoint(), self.endpoint()
        Broadcaster([first, second]).write(event())
        self.assertEqual((first.pending, second.pending), (1, 1))


class InterfaceTests(unittest.TestCase):
    def test_implementations(self):
        metrics = Metrics(task.Clock())
        for interface in (IRequestObserver, IStorageObserver):
            verifyObject(interface, metrics)
            verifyObject(interface, NULL_METRICS)
        verifyObject(IRegistryEvents, NULL_EVENTS)
        verifyObject(IRegistryEvents, RegistryEvents(Broadcaster([]), None, task.Clock(), source_addr="h:1"))


class StorageMetricsTests(unittest.TestCase):
    @async_test
    async def test_operations_measured(self):
        seen = []

        class Observer:
            def now(self):
                return 0.0

            def observe(self, driver, operation, seconds, failed):
                seen.append((driver, operation, failed))

        driver = ValidatingDriver(InMemoryDriver(reactor=task.Clock()), observer=Observer())
        await driver.put_content("/a", b"x")
        await driver.get_content("/a")
        with self.assertRaises(Exception):
            await driver.get_content("/missing")
        writer = await driver.writer("/b")
        await writer.write(b"y")
        await writer.commit()
        self.assertEqual(seen, [
            ("inmemory", "put_content", False),
            ("inmemory", "get_content", False),
            ("inmemory", "get_content", False),  # not found is an answer, not an error
            ("inmemory", "writer", False),
            ("inmemory", "write", False),
            ("inmemory", "commit", False),
        ])


class _Toggle:
    def __init__(self):
        self.failing = {}

    def healthy(self):
        return not self.failing


class GateTests(unittest.TestCase):
    @async_test
    async def test_unhealthy_refuses_without_touching_storage(self):
        settings = make_settings()
        registry = make_registry(settings)
        health = _Toggle()
        metrics = Metrics(task.Clock())
        client = stub_client(HealthGate(make_root(make_api_resource(registry, settings, metrics=metrics)), health,
                                        metrics))
        health.failing = {"check": "down"}
        digest = "sha256:" + "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
        response = await client.post("http://registry/v2/r/blobs/uploads/?digest=" + digest, data=b"foo")
        self.assertEqual(response.code, 503)
        body = json.loads(await response.content())
        self.assertEqual(body["errors"][0]["code"], "UNAVAILABLE")
        self.assertEqual(await registry.catalog.names(), [])
        counted = {"route": "unavailable", "method": "POST", "status": "503"}
        self.assertEqual(metrics.registry.get_sample_value("spectroreg_http_requests_total", counted), 1)
        health.failing = {}
        response = await client.post("http://registry/v2/r/blobs/uploads/?digest=" + digest, data=b"foo")
        self.assertEqual(response.code, 201)
        self.assertEqual(await registry.catalog.names(), ["r"])
        counted = {"route": "upload_start", "method": "POST", "status": "201"}
        self.assertEqual(metrics.registry.get_sample_value("spectroreg_http_requests_total", counted), 1)
        self.assertEqual(metrics.registry.get_sample_value("spectroreg_http_request_bytes_total",
                                                           {"route": "upload_start", "method": "POST"}), 3)
        self.assertEqual(metrics.registry.get_sample_value("spectroreg_uploads_in_progress"), 0)


class _Recorder:
    """An IRegistryEvents that keeps (method, repository, what, actor) of every call."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        def record(request, route, *args):
            outcome = IRequestContext(request).auth
            self.calls.append((name, route.repository, str(args[0]), outcome[1] if outcome else None))
        return record


class UIDeleteEventTests(ui_tests.ResourceTestCase):
    """Deletes from the web pages are reported like the API's."""

    def build(self, storage, http=None, registry=None):
        super().build(storage, http, registry)
        self.events = _Recorder()
        api = make_api_resource(self.registry, self.settings, authenticator=self.authenticator)
        self.ui = make_ui(self.registry, self.settings, self.authenticator, reactor=self.clock, events=self.events)
        self.client = stub_client(RootResource(api, self.settings.http.prefix, ui=self.ui))

    @async_test
    async def test_tag_and_manifest_delete_events(self):
        image = ui_tests.Image("d", layer_sizes=(10,))
        await self.push_image("a", "v1", image)
        await self.push_image("a", "v2", image)
        response = await self.post_delete("a", "v1", await self.token("a", "v1"))
        self.assertEqual(response.code, 303)
        response = await self.post_delete("a", image.digest, await self.token("a", image.digest))
        self.assertEqual(response.code, 303)
        self.assertEqual(self.events.calls, [
            ("tag_deleted", "a", "v1", None),
            ("manifest_deleted", "a", image.digest, None),
        ])


class _Authenticator:
    realm = "r"

    def challenge(self):
        return [("WWW-Authenticate", 'Basic realm="r"')]

    def authenticate(self, authorization, client):
        from spectroreg.auth.interfaces import TooManyRequests, Unauthorized

        if authorization == b"Basic many":
            return defer.fail(TooManyRequests(5))
        if authorization != b"Basic good":
            return defer.fail(Unauthorized())
        return defer.succeed("alice")


class RequestMetricsTests(unittest.TestCase):
    @async_test
    async def test_auth_failures_and_throttled(self):
        settings = make_settings()
        metrics = Metrics(task.Clock())
        api = make_api_resource(make_registry(settings), settings, authenticator=_Authenticator(), metrics=metrics)
        client = stub_client(make_root(api))
        for authorization, status in ((None, 401), ("Basic bad", 401), ("Basic many", 429), ("Basic good", 200)):
            headers = {"Authorization": authorization} if authorization else {}
            response = await client.get("http://registry/v2/", headers=headers)
            self.assertEqual(response.code, status, authorization)
            await response.content()
        # The first, credential-less request is how every client starts: not a failure.
        self.assertEqual(metrics.registry.get_sample_value("spectroreg_auth_failures_total"), 1)
        self.assertEqual(metrics.registry.get_sample_value("spectroreg_auth_throttled_total"), 1)
        for status, count in (("401", 2), ("429", 1), ("200", 1)):
            labels = {"route": "base", "method": "GET", "status": status}
            self.assertEqual(metrics.registry.get_sample_value("spectroreg_http_requests_total", labels), count)
        response = await client.request("BREW", "http://registry/v2/", headers={"Authorization": "Basic good"})
        await response.content()
        labels = {"route": "base", "method": "other", "status": str(response.code)}
        self.assertEqual(metrics.registry.get_sample_value("spectroreg_http_requests_total", labels), 1)


class _Request(Componentized):
    method = b"PUT"

    def __init__(self, user=None):
        Componentized.__init__(self)
        context = RequestContext()
        context.auth = (True, user) if user else None
        self.setComponent(IRequestContext, context)

    def getHeader(self, name):
        return {b"host": b"reg.example:5000", b"user-agent": b"agent/1"}.get(name)

    def getClientAddress(self):
        from twisted.internet.address import IPv6Address

        return IPv6Address("TCP", "::1", 4242)


class EventBuildingTests(unittest.TestCase):
    def test_manifest_push_with_references(self):
        from spectroreg.api.routes import MANIFEST, Route
        from spectroreg.config.settings import HTTPSettings
        from spectroreg.registry.manifests import parse_manifest
        from tests.support.images import Image

        image = Image("refs", layer_sizes=(10, 20))
        written = []

        class Sink:
            def write(self, event):
                written.append(event)

        clock = task.Clock()
        clock.advance(1800000000.25)
        ids = iter(str(n) for n in range(100))
        events = RegistryEvents(Sink(), HTTPSettings(host="https://reg.example"), clock, source_addr="node:5000",
                                include_references=True, new_id=lambda: next(ids))
        request = _Request(user="alice")
        manifest = parse_manifest(image.manifest.data, image.media_type)
        events.manifest_pushed(request, Route(MANIFEST, "app", "v1"), image.digest, image.media_type,
                               len(image.manifest.data), manifest)
        events.tag_deleted(request, Route(MANIFEST, "app", "v1"), "v1")
        push, delete = written
        self.assertEqual(push, {
            "id": "1",
            "timestamp": "2027-01-15T08:00:00.250000Z",
            "action": "push",
            "target": {
                "mediaType": image.media_type,
                "digest": image.digest,
                "size": len(image.manifest.data),
                "length": len(image.manifest.data),
                "repository": "app",
                "url": "https://reg.example/v2/app/manifests/" + image.digest,
                "tag": "v1",
                "references": [{"mediaType": b.media_type, "digest": b.digest, "size": len(b.data)}
                               for b in image.blobs()],
            },
            "request": {"id": "2", "addr": "[::1]:4242", "host": "reg.example:5000", "method": "PUT",
                        "useragent": "agent/1"},
            "actor": {"name": "alice"},
            "source": {"addr": "node:5000", "instanceID": "0"},
        })
        # One request, one request id.
        self.assertEqual(delete["request"]["id"], "2")
        self.assertEqual(delete["target"], {"repository": "app", "tag": "v1"})


class EventFailureTests(unittest.TestCase):
    def test_event_that_cannot_be_built_is_logged_not_raised(self):
        from spectroreg.api.routes import BLOB, Route

        class Sink:
            def write(self, event):
                raise RuntimeError("broken sink")

        events = RegistryEvents(Sink(), None, task.Clock(), source_addr="h:1")
        events.blob_deleted(_Request(), Route(BLOB, "app", "sha256:x"), "sha256:x")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
