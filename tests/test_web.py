"""
The HTTP plumbing, in process over real TCP: liveness, prefix, configured
headers on every answer, the access log, head limits, slow clients,
draining, and the listening address forms.
"""

import socket
import time

from twisted.internet import reactor, task
from twisted.internet.error import ConnectError
from twisted.trial import unittest

from spectroreg.listeners import _ipv6_available
from spectroreg.web.limits import Limits
from spectroreg.web.site import safe_uri
from tests.support.asynctest import async_test
from tests.support.web import (
    LogCapture,
    get,
    port_of,
    raw_connect,
    settings_for,
    start_service,
    status_of,
)

HEADERS = {
    "X-Content-Type-Options": ("nosniff",),
    "Content-Security-Policy": ("img-src 'self'; script-src 'self'; style-src 'self'",),
    "x-frame-options": ("DENY",),
    "X-Multi": ("one", "two"),
}


def assert_config_headers(testcase, response):
    headers = response.headers
    testcase.assertEqual(headers.getRawHeaders(b"X-Content-Type-Options"), [b"nosniff"])
    testcase.assertEqual(
        headers.getRawHeaders(b"content-security-policy"),
        [b"img-src 'self'; script-src 'self'; style-src 'self'"],
    )
    testcase.assertEqual(headers.getRawHeaders(b"X-Frame-Options"), [b"DENY"])
    testcase.assertEqual(headers.getRawHeaders(b"x-multi"), [b"one", b"two"])
    # Nothing names the software or its version.
    testcase.assertIsNone(headers.getRawHeaders(b"server"))


class RootAndHeadersTests(unittest.TestCase):
    def setUp(self):
        self.service = start_service(self, settings_for(headers=HEADERS))
        self.base = "http://127.0.0.1:%d" % port_of(self.service)

    @async_test
    async def test_liveness(self):
        response, body = await get(self.base + "/")
        self.assertEqual((response.code, body), (200, b""))
        self.assertEqual(response.headers.getRawHeaders(b"cache-control"), [b"no-cache"])
        assert_config_headers(self, response)

    @async_test
    async def test_api_mounted_at_v2(self):
        response, body = await get(self.base + "/v2/")
        self.assertEqual((response.code, body), (200, b"{}"))
        self.assertEqual(
            response.headers.getRawHeaders(b"docker-distribution-api-version"), [b"registry/2.0"]
        )
        assert_config_headers(self, response)

    @async_test
    async def test_not_found_carries_headers(self):
        response, body = await get(self.base + "/nothing/here")
        self.assertEqual((response.code, body), (404, b"404 page not found\n"))
        assert_config_headers(self, response)

    @async_test
    async def test_server_error_carries_headers(self):
        response, body = await get(self.base + "/v2/boom")
        self.assertEqual(response.code, 500)
        self.assertNotIn(b"ZeroDivisionError", body)  # no tracebacks to clients
        assert_config_headers(self, response)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    @async_test
    async def test_parser_error_carries_headers(self):
        client = await raw_connect(port_of(self.service))
        client.transport.write(b"GET / HTTP/1.1\r\nno colon here\r\n\r\n")
        raw = await client.closed
        self.assertEqual(status_of(raw), 400)
        self.assertIn(b"X-Content-Type-Options: nosniff\r\n", raw)
        self.assertIn(b"X-Multi: two\r\n", raw)
        self.assertNotIn(b"server:", raw.lower())


class ConfiguredServerHeaderTests(unittest.TestCase):
    def setUp(self):
        self.service = start_service(self, settings_for(headers={"Server": ("registry",)}))
        self.base = "http://127.0.0.1:%d" % port_of(self.service)

    @async_test
    async def test_configured_server_header_kept(self):
        for path in ("/", "/v2/", "/nothing/here"):
            response, _ = await get(self.base + path)
            self.assertEqual(response.headers.getRawHeaders(b"server"), [b"registry"], path)


class PrefixTests(unittest.TestCase):
    def setUp(self):
        self.service = start_service(self, settings_for(prefix="/registry/mirror", headers=HEADERS))
        self.base = "http://127.0.0.1:%d" % port_of(self.service)

    @async_test
    async def test_api_under_prefix(self):
        response, body = await get(self.base + "/registry/mirror/v2/")
        self.assertEqual((response.code, body), (200, b"{}"))

    @async_test
    async def test_v2_outside_prefix_is_404(self):
        for path in ("/v2/", "/registry/v2/", "/registry/mirror/", "/other/mirror/v2/"):
            response, _ = await get(self.base + path)
            self.assertEqual(response.code, 404, path)
            assert_config_headers(self, response)

    @async_test
    async def test_liveness_stays_at_root(self):
        response, _ = await get(self.base + "/")
        self.assertEqual(response.code, 200)


class AccessLogTests(unittest.TestCase):
    @async_test
    async def test_one_line_per_request_without_secrets(self):
        capture = LogCapture(self)
        service = start_service(self, settings_for())
        base = "http://127.0.0.1:%d" % port_of(service)
        secret_query = "/v2/x/blobs/uploads/u1?_state=STATESECRET&digest=sha256:abc&token=TOKSECRET"
        response, _ = await get(
            base + secret_query,
            headers={b"Authorization": [b"Basic ZG9ja2VyOnMzY3JldFBhc3M="], b"User-Agent": [b"tests/1"]},
        )
        self.assertEqual(response.code, 200)
        access = capture.namespace("spectroreg.access")
        self.assertEqual(len(access), 1)
        line = service.log_observer.format(access[0])
        for secret in ("STATESECRET", "TOKSECRET", "ZG9ja2VyOnMzY3JldFBhc3M=", "s3cretPass"):
            self.assertNotIn(secret, line)
        self.assertIn("GET /v2/x/blobs/uploads/u1?_state=***&digest=sha256:abc&token=***", line)
        self.assertIn("http.response.status=200", line)
        self.assertIn("http.response.written=2", line)
        self.assertIn("http.request.useragent=tests/1", line)
        self.assertRegex(line, r"http\.response\.duration=[0-9.]+ms")
        # Nothing else in any event carries the secrets either.
        everything = "\n".join(service.log_observer.format(e) for e in capture.events)
        self.assertNotIn("ZG9ja2VyOnMzY3JldFBhc3M=", everything)
        self.assertNotIn("STATESECRET", everything)

    @async_test
    async def test_client_gone_before_the_answer(self):
        """A request whose client leaves first still gets its line: 499, marked interrupted."""
        capture = LogCapture(self)
        service = start_service(self, settings_for())
        client = await raw_connect(port_of(service))
        client.transport.write(b"GET /v2/slow?seconds=5 HTTP/1.1\r\nHost: x\r\nUser-Agent: leaver/1\r\n\r\n")
        await task.deferLater(reactor, 0.2, lambda: None)
        client.transport.loseConnection()
        await client.closed
        for _ in range(100):
            if capture.namespace("spectroreg.access"):
                break
            await task.deferLater(reactor, 0.02, lambda: None)
        [event] = capture.namespace("spectroreg.access")
        line = service.log_observer.format(event)
        self.assertIn("GET /v2/slow?seconds=*** HTTP/1.1 499 0", line)
        self.assertIn("http.request.interrupted=True", line)
        self.assertIn("http.request.useragent=leaver/1", line)

    @async_test
    async def test_disabled(self):
        capture = LogCapture(self)
        service = start_service(self, settings_for(access_log=False))
        response, _ = await get("http://127.0.0.1:%d/v2/" % port_of(service))
        self.assertEqual(response.code, 200)
        self.assertEqual(capture.namespace("spectroreg.access"), [])

    def test_safe_uri(self):
        cases = [
            ("/v2/", "/v2/"),
            ("/v2/_catalog?n=10&last=a", "/v2/_catalog?n=10&last=a"),
            ("/v2/r/blobs/uploads/x?_state=abc", "/v2/r/blobs/uploads/x?_state=***"),
            ("/v2/r/blobs/uploads/x?digest=sha256:00&X-Amz-Signature=f", "/v2/r/blobs/uploads/x?digest=sha256:00&X-Amz-Signature=***"),
            (b"/a?password=p&secret", "/a?password=***&secret=***"),
        ]
        for given, expected in cases:
            self.assertEqual(safe_uri(given), expected)


class LimitTests(unittest.TestCase):
    limits = Limits(max_request_line=200, max_header_bytes=1000, max_headers=10,
                    idle_timeout=1.0, header_timeout=0.6)

    def setUp(self):
        self.service = start_service(self, settings_for(headers=HEADERS), limits=self.limits)
        self.port = port_of(self.service)

    async def exchange(self, data):
        client = await raw_connect(self.port)
        client.transport.write(data)
        return await client.closed

    @async_test
    async def test_long_request_line_414(self):
        raw = await self.exchange(b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(status_of(raw), 414)
        self.assertIn(b"X-Frame-Options: DENY\r\n", raw)

    @async_test
    async def test_huge_unterminated_line_414(self):
        raw = await self.exchange(b"GET /" + b"a" * 5000)
        self.assertEqual(status_of(raw), 414)

    @async_test
    async def test_big_headers_431(self):
        headers = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 150) for i in range(8))
        raw = await self.exchange(b"GET / HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        self.assertEqual(status_of(raw), 431)
        self.assertIn(b"X-Content-Type-Options: nosniff\r\n", raw)

    @async_test
    async def test_too_many_headers_431(self):
        headers = b"".join(b"X-H%d: v\r\n" % i for i in range(11))
        raw = await self.exchange(b"GET / HTTP/1.1\r\n" + headers + b"\r\n")
        self.assertEqual(status_of(raw), 431)

    @async_test
    async def test_within_limits_answered(self):
        headers = b"".join(b"X-H%d: v\r\n" % i for i in range(9))
        raw = await self.exchange(
            b"GET / HTTP/1.1\r\nConnection: close\r\n" + headers + b"\r\n"
        )
        self.assertEqual(status_of(raw), 200)

    @async_test
    async def test_tls_client_hello_answered_at_once(self):
        """A TLS handshake on the plain port is refused without waiting for
        the head deadline, so clients fall back to plain HTTP at once."""
        started = time.monotonic()
        raw = await self.exchange(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64)
        self.assertEqual(status_of(raw), 400)
        self.assertLess(time.monotonic() - started, self.limits.header_timeout)

    @async_test
    async def test_trickled_head_cut_off(self):
        """A client sending a header line every 0.1 s never hits the idle
        timeout (1 s) but is cut at the head deadline (0.6 s) with a 408."""
        client = await raw_connect(self.port)
        started = time.monotonic()
        client.transport.write(b"GET / HTTP/1.1\r\n")
        sent = 0
        while not client.closed.called and sent < 40:
            await task.deferLater(reactor, 0.1, lambda: None)
            if not client.closed.called:
                client.transport.write(b"X-Slow-%d: y\r\n" % sent)
                sent += 1
        raw = await client.closed
        elapsed = time.monotonic() - started
        self.assertEqual(status_of(raw), 408)
        self.assertLess(elapsed, 3.5)  # the trickle would go on for 4 s
        self.assertGreater(elapsed, 0.5)

    @async_test
    async def test_idle_connection_closed(self):
        client = await raw_connect(self.port)
        started = time.monotonic()
        raw = await client.closed
        self.assertEqual(raw, b"")
        self.assertLess(time.monotonic() - started, 3.0)

    @async_test
    async def test_keepalive_second_request_gets_fresh_deadline(self):
        client = await raw_connect(self.port)
        client.transport.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await task.deferLater(reactor, 0.4, lambda: None)
        client.transport.write(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        await task.deferLater(reactor, 0.4, lambda: None)
        client.transport.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = await client.closed
        self.assertEqual(raw.count(b"HTTP/1.1 200 OK"), 3)


class DrainTests(unittest.TestCase):
    @async_test
    async def test_in_flight_request_finishes_new_connections_refused(self):
        service = start_service(self, settings_for(draintimeout=5.0))
        port = port_of(service)
        pending = get("http://127.0.0.1:%d/v2/slow?seconds=0.8" % port)
        from twisted.internet import defer

        pending = defer.ensureDeferred(pending)
        await task.deferLater(reactor, 0.2, lambda: None)
        idle = await raw_connect(port)  # a keep-alive connection with nothing in flight
        started = time.monotonic()
        stopped = service.stopService()
        await task.deferLater(reactor, 0.05, lambda: None)
        with self.assertRaises(ConnectError):
            await raw_connect(port)
        self.assertEqual(await idle.closed, b"")  # idle connections close at once
        response, body = await pending
        self.assertEqual((response.code, body), (200, b"slow done"))
        await stopped
        elapsed = time.monotonic() - started
        self.assertLess(elapsed, 4.0)
        self.assertGreater(elapsed, 0.4)

    @async_test
    async def test_drain_timeout_cuts_slow_requests(self):
        service = start_service(self, settings_for(draintimeout=0.5))
        port = port_of(service)
        client = await raw_connect(port)
        client.transport.write(b"GET /v2/slow?seconds=30 HTTP/1.1\r\nHost: x\r\n\r\n")
        await task.deferLater(reactor, 0.2, lambda: None)
        started = time.monotonic()
        await service.stopService()
        elapsed = time.monotonic() - started
        self.assertEqual(await client.closed, b"")
        self.assertGreater(elapsed, 0.4)
        self.assertLess(elapsed, 4.0)

    @async_test
    async def test_no_draintimeout_closes_at_once(self):
        service = start_service(self, settings_for(draintimeout=0.0))
        client = await raw_connect(port_of(service))
        client.transport.write(b"GET /v2/slow?seconds=30 HTTP/1.1\r\nHost: x\r\n\r\n")
        await task.deferLater(reactor, 0.1, lambda: None)
        started = time.monotonic()
        await service.stopService()
        self.assertLess(time.monotonic() - started, 2.0)
        await client.closed


class AddressTests(unittest.TestCase):
    @async_test
    async def test_host_port(self):
        service = start_service(self, settings_for(addr="127.0.0.1:0"))
        response, _ = await get("http://127.0.0.1:%d/" % port_of(service))
        self.assertEqual(response.code, 200)

    @async_test
    async def test_all_interfaces_take_ipv4_and_ipv6(self):
        service = start_service(self, settings_for(addr=":0"))
        port = port_of(service)
        response, _ = await get("http://127.0.0.1:%d/" % port)
        self.assertEqual(response.code, 200)
        if not _ipv6_available():
            raise unittest.SkipTest("no IPv6 on this host (IPv4 checked)")
        response, _ = await get("http://[::1]:%d/" % port)
        self.assertEqual(response.code, 200)

    @async_test
    async def test_ipv6_literal(self):
        if not _ipv6_available():
            raise unittest.SkipTest("no IPv6 on this host")
        service = start_service(self, settings_for(addr="[::1]:0"))
        port = port_of(service)
        response, _ = await get("http://[::1]:%d/" % port)
        self.assertEqual(response.code, 200)
        with self.assertRaises(ConnectError):
            await get("http://127.0.0.1:%d/" % port)

    @async_test
    async def test_unix_socket(self):
        from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol

        from tests.support.web import RawClient

        from tests.support.paths import socket_path

        path = socket_path(self)
        # A stale socket file left behind by a dead daemon does not block start.
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(path)
        stale.close()
        service = start_service(self, settings_for(addr=path, net="unix", headers=HEADERS))
        client = RawClient()
        await connectProtocol(UNIXClientEndpoint(reactor, path), client)
        client.transport.write(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = await client.closed
        self.assertEqual(status_of(raw), 200)
        self.assertTrue(raw.endswith(b"{}"))
        self.assertIn(b"X-Frame-Options: DENY\r\n", raw)
        await service.stopService()


class HTTP01ListenerTests(unittest.TestCase):
    """The plain-HTTP tree used with Let's Encrypt: challenges, else https."""

    def listen(self, https_port):
        from twisted.web.resource import Resource

        from spectroreg.web.root import http01_root
        from spectroreg.web.site import RegistrySite

        class Challenges(Resource):
            isLeaf = True

            def render_GET(self, request):
                return b"key-authorization-for-" + b"/".join(request.postpath)

        site = RegistrySite(http01_root(Challenges(), https_port), headers={"X-Test": ("1",)})
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return "http://127.0.0.1:%d" % port.getHost().port

    @async_test
    async def test_challenge_served(self):
        base = self.listen(443)
        response, body = await get(base + "/.well-known/acme-challenge/tok123")
        self.assertEqual((response.code, body), (200, b"key-authorization-for-tok123"))
        self.assertEqual(response.headers.getRawHeaders(b"x-test"), [b"1"])

    @async_test
    async def test_everything_else_redirected(self):
        base = self.listen(443)
        response, _ = await get(base + "/v2/_catalog?n=1", headers={b"Host": [b"registry.example.com"]})
        self.assertEqual(response.code, 301)
        self.assertEqual(
            response.headers.getRawHeaders(b"location"), [b"https://registry.example.com/v2/_catalog?n=1"]
        )
        response, _ = await get(base + "/", method=b"POST", headers={b"Host": [b"r.example:80"]})
        self.assertEqual(response.code, 308)

    @async_test
    async def test_redirect_names_non_default_port(self):
        base = self.listen(5443)
        response, _ = await get(base + "/x", headers={b"Host": [b"registry.example.com"]})
        self.assertEqual(response.headers.getRawHeaders(b"location"), [b"https://registry.example.com:5443/x"])
