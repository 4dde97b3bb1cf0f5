"""
What every request pays for on its way through the channel and the Site,
in memory (a real RegistrySite over a StringTransport, a Clock): no head
deadline scheduled for a head that arrived whole (one still is for a head
that did not), no Deferred made per request for the request context, the
response head written as Twisted writes it, the access-log event as
Twisted's Logger makes it.
"""

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import Logger, LogLevel
from twisted.trial import unittest
from twisted.web import http, resource
from twisted.web.http_headers import Headers

from spectroreg.logging import publish
from spectroreg.web.interfaces import IRequestContext
from spectroreg.web.limits import Limits
from spectroreg.web.responsehead import response_head
from spectroreg.web.site import RegistrySite, SiteRequest, http_date


class Answer(resource.Resource):
    isLeaf = True

    def render(self, request):
        request.setHeader(b"content-length", b"2")
        return b"ok"


class RecordingClock(Clock):
    """A Clock that remembers what was ever scheduled, cancelled or not."""

    def __init__(self):
        super().__init__()
        self.scheduled = []

    def callLater(self, delay, f, *args, **kwargs):
        self.scheduled.append(f)
        return super().callLater(delay, f, *args, **kwargs)


class ChannelTests(unittest.TestCase):
    def connect(self, limits=Limits(header_timeout=5.0, idle_timeout=60.0), headers=None):
        self.clock = RecordingClock()
        self.made = []

        def requests(*args, **kwargs):
            request = SiteRequest(*args, **kwargs)
            self.made.append(request)
            return request

        site = RegistrySite(Answer(), request_factory=requests, access_log=False, limits=limits,
                            reactor=self.clock, headers=headers)
        channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1234))
        channel.callLater = self.clock.callLater
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 1234))
        channel.makeConnection(transport)
        return channel, transport

    def head_deadlines(self, channel):
        return [f for f in self.clock.scheduled if f == channel._head_timed_out]

    def test_whole_head_schedules_no_deadline(self):
        channel, transport = self.connect()
        for _ in range(3):
            channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(transport.value().count(b"HTTP/1.1 200 OK"), 3)
        self.assertEqual(self.head_deadlines(channel), [])

    def test_pipelined_heads_schedule_no_deadline(self):
        channel, transport = self.connect()
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
        self.assertEqual(transport.value().count(b"HTTP/1.1 200 OK"), 3)
        self.assertEqual(self.head_deadlines(channel), [])

    def test_split_head_has_its_deadline(self):
        channel, transport = self.connect()
        channel.dataReceived(b"GET / HTTP/1.1\r\nHo")
        self.assertEqual(len(self.head_deadlines(channel)), 1)
        self.clock.advance(4.0)
        channel.dataReceived(b"st: x\r\n")
        self.assertEqual(len(self.head_deadlines(channel)), 1)
        self.clock.advance(1.5)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 408 "), transport.value())

    def test_head_completed_in_time_is_answered(self):
        channel, transport = self.connect()
        channel.dataReceived(b"GET / HTTP/1.1\r\n")
        self.clock.advance(4.0)
        channel.dataReceived(b"Host: x\r\n\r\n")
        self.clock.advance(2.0)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 200 OK"), transport.value())
        self.assertNotIn(channel._head_timed_out, [c.func for c in self.clock.getDelayedCalls()])

    def test_part_of_a_second_head_has_its_deadline(self):
        channel, transport = self.connect()
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n")
        self.assertEqual(len(self.head_deadlines(channel)), 1)
        self.clock.advance(5.5)
        self.assertEqual(transport.value().count(b"HTTP/1.1 200 OK"), 1)
        self.assertIn(b"HTTP/1.1 408 ", transport.value())

    def test_no_deadline_after_the_connection_is_gone(self):
        channel, transport = self.connect()
        channel.dataReceived(b"GET / HTTP/1.1\r\nHo")
        channel.connectionLost(None)
        channel._arm_deadline()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_context_without_a_deferred_per_request(self):
        channel, transport = self.connect()
        channel.dataReceived(b"GET / HTTP/1.1\r\nHo")
        [request] = self.made
        self.assertEqual(request.notifications, [])
        self.assertFalse(IRequestContext(request).disconnected)
        channel.connectionLost(None)
        self.assertTrue(IRequestContext(request).disconnected)


    def test_date_and_no_server_header(self):
        channel, transport = self.connect()
        before = http_date()
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head = transport.value().split(b"\r\n\r\n")[0].split(b"\r\n")
        self.assertEqual(head[0], b"HTTP/1.1 200 OK")
        self.assertIn(head[1], [b"Date: " + before, b"Date: " + http_date()])
        self.assertEqual([line for line in head if line.lower().startswith(b"server:")], [])

    def test_configured_server_header(self):
        channel, transport = self.connect(headers={"Server": "registry", "X-Other": ["a", "b"]})
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head = transport.value().split(b"\r\n\r\n")[0].split(b"\r\n")
        self.assertEqual(head[1:4], [b"Server: registry", b"X-Other: a", b"X-Other: b"])
        self.assertTrue(head[4].startswith(b"Date: "), head)

    def test_star_answered_as_twisted_does(self):
        channel, transport = self.connect()
        channel.dataReceived(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 200 OK"), transport.value())
        transport.clear()
        channel.dataReceived(b"GET * HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 405 "), transport.value())
        self.assertIn(b"Allow: OPTIONS", transport.value())
        self.assertNotIn(b"Server:", transport.value())

    def test_http_date_once_per_second(self):
        self.assertEqual(http_date(1e9), http.datetimeToString(1e9))
        self.assertIs(http_date(1e9 + 0.5), http_date(1e9 + 0.9))
        self.assertEqual(http_date(1e9 + 1), http.datetimeToString(1e9 + 1))


# Pairs as Twisted 22.4's Request.write hands them to its channel.
HEADS = [
    [],
    [(b"Content-Length", b"2")],
    [(b"Docker-Distribution-Api-Version", b"registry/2.0"), (b"Etag", b'"sha256:00"'),
     (b"Www-Authenticate", b"Basic"), (b"X-Xss-Protection", b"1"), (b"Content-Md5", b"x")],
    [(b"X-Dup", b"a"), (b"Other", b"b"), (b"x-dup", b"c"), (b"X-DUP", b"d")],
    [(b"Location", b"/a\r\nInjected: 1"), (b"X-Lines", b"a\nb\rc")],
    [("X-Str", "caf\u00e9"), (b"transfer-encoding", b"chunked"), (b"Set-Cookie", b"a=b")],
    [("X-Str", "a\nb"), (b"Y", b"\r")],
]


class ResponseHeadTests(unittest.SynchronousTestCase):
    def twisted_writes(self, headers):
        channel = http.HTTPChannel()
        channel.transport = StringTransport()
        channel.writeHeaders(b"HTTP/1.1", b"200", b"OK", headers)
        return channel.transport.value()

    def test_same_bytes_as_twisted(self):
        for pairs in HEADS:
            ours = b"".join(response_head(b"HTTP/1.1", b"200", b"OK", pairs))
            self.assertEqual(ours, self.twisted_writes(pairs), pairs)

    def test_no_line_injected_by_a_name(self):
        head = b"".join(response_head(b"HTTP/1.1", b"200", b"OK", [(b"X\r\nInjected", b"1"), (b"Y", b"2")]))
        self.assertEqual(head.count(b"\r\n"), 4, head)
        self.assertNotIn(b"\nInjected", head)

    def test_reason_with_a_line_break(self):
        # Written as Twisted writes it (the headers are what is sanitised).
        pairs = [(b"X", b"a\nb")]
        ours = b"".join(response_head(b"HTTP/1.1", b"200", b"O\nK", pairs))
        channel = http.HTTPChannel()
        channel.transport = StringTransport()
        channel.writeHeaders(b"HTTP/1.1", b"200", b"O\nK", pairs)
        self.assertEqual(ours, channel.transport.value())

    def test_channel_writes_pairs_and_headers(self):
        for pairs in HEADS:
            site = RegistrySite(Answer(), access_log=False, reactor=Clock())
            channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1234))
            channel.makeConnection(StringTransport())
            channel.writeHeaders(b"HTTP/1.1", b"200", b"OK", pairs)
            self.assertEqual(channel.transport.value(), self.twisted_writes(pairs), pairs)
            channel.transport.clear()
            headers = Headers()
            for name, value in pairs:
                headers.addRawHeader(name, value)
            try:
                expected = self.twisted_writes(headers)
            except TypeError:
                # Twisted 22.4 takes pairs only (and its Request gives pairs).
                expected = None
            if expected is not None:
                channel.writeHeaders(b"HTTP/1.1", b"200", b"OK", headers)
                self.assertEqual(channel.transport.value(), expected, pairs)
            channel.connectionLost(None)


class PublishTests(unittest.SynchronousTestCase):
    def test_event_as_logger_emit_makes_it(self):
        emitted, published = [], []
        logger = Logger(namespace="spectroreg.access", source=self, observer=emitted.append)
        logger.info("{method} {uri}", method="GET", uri="/v2/", log_fields={"a": 1})
        logger = Logger(namespace="spectroreg.access", source=self, observer=published.append)
        publish(logger, LogLevel.info, "{method} {uri}", {"method": "GET", "uri": "/v2/", "log_fields": {"a": 1}})
        [emitted], [published] = emitted, published
        self.assertEqual(set(emitted), set(published))
        for key in emitted:
            if key not in ("log_time", "log_logger"):
                self.assertEqual(emitted[key], published[key], key)
        self.assertIs(published["log_logger"], logger)
        self.assertIsInstance(published["log_time"], float)

    def test_trace(self):
        published = []
        logger = Logger(namespace="n", observer=published.append)
        trace = []
        publish(logger, LogLevel.info, "x", {"log_trace": trace})
        self.assertEqual(trace, [(logger, logger.observer)])
