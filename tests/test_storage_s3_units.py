"""
Unit tests of the S3 driver's parts, without a server: endpoints, which
listed parts make an unfinished file, the driver's cache, XML, signing, retries and timeouts on a fake clock.
"""

from twisted.internet import defer
from twisted.internet.error import ConnectionRefusedError, TimeoutError
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest
from twisted.web.client import ResponseDone
from twisted.web.http_headers import Headers

from spectroreg.config.settings import S3Settings
from spectroreg.storage.s3 import xmlparse
from spectroreg.storage.s3.client import RetryPolicy, S3Client
from spectroreg.storage.s3.credentials import CredentialSource
from spectroreg.storage.s3.endpoint import Endpoint, encode_query, endpoint_from_settings
from spectroreg.storage.s3.errors import S3Error
from spectroreg.storage.s3.cache import InFlight, S3Cache
from spectroreg.storage.s3.driver import _hidden
from spectroreg.storage.s3.inflight import MIN_PART, file_parts, same_parts
from spectroreg.storage.s3.transport import BodyStreamer, BytesProducer
from tests.support.asynctest import async_test


class EndpointTests(unittest.SynchronousTestCase):
    cases = [
        # (settings, expected URL of key "a/b" in the bucket)
        (dict(bucket="reg"), "https://reg.s3.us-east-1.amazonaws.com/a/b"),
        (dict(bucket="reg", region="eu-west-1"), "https://reg.s3.eu-west-1.amazonaws.com/a/b"),
        (dict(bucket="reg", region="cn-north-1"), "https://reg.s3.cn-north-1.amazonaws.com.cn/a/b"),
        (dict(bucket="reg", forcepathstyle=True), "https://s3.us-east-1.amazonaws.com/reg/a/b"),
        (dict(bucket="my.reg"), "https://s3.us-east-1.amazonaws.com/my.reg/a/b"),
        (dict(bucket="reg", secure=False), "http://reg.s3.us-east-1.amazonaws.com/a/b"),
        (dict(bucket="reg", regionendpoint="http://127.0.0.1:9000"), "http://127.0.0.1:9000/reg/a/b"),
        (dict(bucket="reg", regionendpoint="https://s3.example.com/"), "https://s3.example.com/reg/a/b"),
        (dict(bucket="reg", regionendpoint="minio:9000", secure=False), "http://minio:9000/reg/a/b"),
        (dict(bucket="reg", regionendpoint="https://gw.example.com/s3"), "https://gw.example.com/s3/reg/a/b"),
        (dict(bucket="reg", host="minio.internal", port=9000, secure=False),
         "http://minio.internal:9000/reg/a/b"),
        (dict(bucket="reg", host="minio.internal"), "https://minio.internal/reg/a/b"),
        (dict(bucket="reg", host="minio.internal:9443"), "https://minio.internal:9443/reg/a/b"),
        (dict(bucket="reg", host="http://10.0.0.5:9000"), "http://10.0.0.5:9000/reg/a/b"),
        (dict(bucket="reg", host="minio", port=443), "https://minio/reg/a/b"),
        (dict(bucket="reg", host="::1", port=9000, secure=False), "http://[::1]:9000/reg/a/b"),
        (dict(bucket="reg", regionendpoint="http://e:1", host="ignored"), "http://e:1/reg/a/b"),
    ]

    def test_table(self):
        for values, expected in self.cases:
            endpoint = endpoint_from_settings(S3Settings(**values))
            self.assertEqual(endpoint.url(values["bucket"], "a/b"), expected, values)

    def test_bucket_and_query(self):
        endpoint = Endpoint("http", "127.0.0.1", 9000, True)
        self.assertEqual(
            endpoint.url("b", None, [("list-type", "2"), ("prefix", "a/b c~"), ("uploads", None)]),
            "http://127.0.0.1:9000/b?list-type=2&prefix=a%2Fb%20c~&uploads")
        self.assertEqual(endpoint.url("b", "k~upload"), "http://127.0.0.1:9000/b/k~upload")
        self.assertEqual(encode_query([("continuation-token", "1+2=/")]),
                         "continuation-token=1%2B2%3D%2F")

    def test_bad_endpoint(self):
        self.assertRaises(ValueError, endpoint_from_settings,
                          S3Settings(bucket="b", regionendpoint="ftp://x"))


class FilePartsTests(unittest.SynchronousTestCase):
    """Which parts S3 lists are the file: the unbroken run, small parts only last."""

    TABLE = [
        ([], []),
        ([(1, "a", 10)], [(1, "a", 10)]),
        ([(1, "a", MIN_PART), (2, "b", 3)], [(1, "a", MIN_PART), (2, "b", 3)]),
        # A gap: part 3 was left by a writer cut while parts went up.
        ([(1, "a", MIN_PART), (3, "c", 3)], [(1, "a", MIN_PART)]),
        ([(2, "b", MIN_PART)], []),
        # A small part can only be the last one.
        ([(1, "a", 3), (2, "b", MIN_PART)], [(1, "a", 3)]),
        # Listed out of order.
        ([(2, "b", 1), (1, "a", MIN_PART)], [(1, "a", MIN_PART), (2, "b", 1)]),
    ]

    def test_table(self):
        for listed, expected in self.TABLE:
            self.assertEqual(file_parts(listed), expected, listed)

    def test_same_parts(self):
        self.assertTrue(same_parts([(1, '"e"', 3)], [(1, "e", 3)]))
        self.assertFalse(same_parts([(1, '"e"', 3)], [(1, "f", 3)]))
        self.assertFalse(same_parts([(1, "e", 3)], [(1, "e", 4)]))
        self.assertFalse(same_parts([(1, "e", 3)], []))

    def test_hidden_names(self):
        self.assertTrue(_hidden("a/b/data~upload"))
        self.assertFalse(_hidden("a/b~x/data"))
        self.assertFalse(_hidden("a/b/data.upload"))


class CacheTests(unittest.SynchronousTestCase):
    def test_sizes_and_uploads_forgotten_together(self):
        cache = S3Cache()
        cache.remember_size("k", 5)
        cache.remember_upload("k", InFlight("id", [(1, "e", 1)], b"x"))
        self.assertEqual((cache.size_of("k"), cache.upload_of("k").upload_id), (5, "id"))
        cache.forget("k")
        self.assertEqual((cache.size_of("k"), cache.upload_of("k")), (None, None))

    def test_bounded(self):
        cache = S3Cache(sizes=2, uploads=2, tail_bytes=10)
        for key in "abc":
            cache.remember_size(key, 1)
            cache.remember_upload(key, InFlight(key, ()))
        self.assertEqual([cache.size_of(k) for k in "abc"], [None, 1, 1])
        self.assertIsNone(cache.upload_of("a"))
        # Tails beyond the byte budget: the oldest go first.
        cache.remember_upload("d", InFlight("d", [(1, "e", 6)], b"123456"))
        cache.remember_upload("e", InFlight("e", [(1, "e", 6)], b"123456"))
        self.assertIsNone(cache.upload_of("d"))
        self.assertEqual(cache.upload_of("e").tail, b"123456")
        self.assertLessEqual(cache.tail_bytes(), 10)


class XMLTests(unittest.SynchronousTestCase):
    NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'

    def test_list_objects(self):
        body = ("<ListBucketResult {}><IsTruncated>true</IsTruncated>"
                "<Contents><Key>a/b</Key><Size>5</Size><ETag>&quot;e&quot;</ETag>"
                "<LastModified>2026-11-27T09:44:39.500Z</LastModified></Contents>"
                "<CommonPrefixes><Prefix>a/c/</Prefix></CommonPrefixes>"
                "<NextContinuationToken>tok</NextContinuationToken></ListBucketResult>").format(self.NS)
        objects, prefixes, token = xmlparse.list_objects(body.encode())
        self.assertEqual(objects, [("a/b", 5, 1795772679.5, '"e"')])
        self.assertEqual((prefixes, token), (["a/c/"], "tok"))

    def test_errors(self):
        self.assertEqual(
            xmlparse.parse_error(b"<Error><Code>NoSuchKey</Code><Message>m</Message></Error>"),
            ("NoSuchKey", "m"))
        self.assertEqual(xmlparse.parse_error(b"not xml"), (None, None))
        self.assertEqual(xmlparse.parse_error(b"<CopyObjectResult/>"), (None, None))
        body = "<DeleteResult {}><Error><Key>k</Key><Code>AccessDenied</Code><Message>no</Message></Error></DeleteResult>"
        self.assertEqual(xmlparse.delete_errors(body.format(self.NS).encode()), [("k", "AccessDenied", "no")])

    def test_bodies(self):
        self.assertEqual(
            xmlparse.complete_body([(1, '"a"')]),
            b'<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&quot;a&quot;</ETag>'
            b"</Part></CompleteMultipartUpload>".replace(b"&quot;", b'"'))
        self.assertIn(b"<Key>a&amp;b</Key>", xmlparse.delete_body(["a&b"]))


class FakeResponse:
    def __init__(self, code, body=b"", headers=None):
        self.code = code
        self.headers = Headers(headers or {})
        self._body = body
        self.length = len(body)

    def deliverBody(self, protocol):
        protocol.makeConnection(StringTransport())
        if self._body:
            protocol.dataReceived(self._body)
        protocol.connectionLost(Failure(ResponseDone()))


class FakeAgent:
    """Answers requests from a script: responses or exceptions, in order."""

    def __init__(self, script):
        self.script = list(script)
        self.requests = []

    def request(self, method, url, headers, body):
        self.requests.append((method, url, headers, body))
        item = self.script.pop(0)
        if isinstance(item, Exception):
            return defer.fail(item)
        if item is None:
            return defer.Deferred()  # never answers
        return defer.succeed(item)


def client_for(agent, clock, attempts=4, credentials=None):
    return S3Client(
        Endpoint("http", "127.0.0.1", 9000, True), "bucket", "us-east-1",
        credentials or CredentialSource("AKID", "SECRET"), reactor=clock, clock=clock,
        agent=agent, retry=RetryPolicy(attempts=attempts, base=1.0, cap=4.0, jitter=False),
        request_timeout=30.0, idle_timeout=10.0)


SLOWDOWN = b"<Error><Code>SlowDown</Code><Message>slow</Message></Error>"


class ClientTests(unittest.TestCase):
    def test_signed(self):
        """Requests carry SigV4: hashed small bodies, UNSIGNED-PAYLOAD for big ones."""
        clock = Clock()
        agent = FakeAgent([FakeResponse(200), FakeResponse(200)])
        client = client_for(agent, clock)
        self.successResultOf(defer.ensureDeferred(client.request("PUT", "k", body=b"small")))
        self.successResultOf(defer.ensureDeferred(
            client.request("PUT", "k", body=b"x" * (2 << 20))))
        self.assertEqual(len(agent.requests), 2)
        for _, url, headers, _ in agent.requests:
            self.assertEqual(url, b"http://127.0.0.1:9000/bucket/k")
            authorization = headers.getRawHeaders(b"authorization")[0]
            self.assertTrue(authorization.startswith(b"AWS4-HMAC-SHA256 Credential=AKID/"))
            self.assertIn(b"SignedHeaders=host;x-amz-content-sha256;x-amz-date", authorization)
            self.assertEqual(headers.getRawHeaders(b"user-agent"), [b"spectroreg"])
        hashes = [h.getRawHeaders(b"x-amz-content-sha256")[0] for _, _, h, _ in agent.requests]
        import hashlib

        self.assertEqual(hashes, [hashlib.sha256(b"small").hexdigest().encode(), b"UNSIGNED-PAYLOAD"])
        self.assertFalse(any(h.hasHeader(b"x-amz-checksum-crc32") or h.hasHeader(b"x-amz-sdk-checksum-algorithm")
                             for _, _, h, _ in agent.requests))

    def test_retry_backoff_on_clock(self):
        """503 SlowDown and a refused connection are retried after 1 s, then 2 s."""
        clock = Clock()
        agent = FakeAgent([FakeResponse(503, SLOWDOWN), ConnectionRefusedError(),
                           FakeResponse(200, b"ok")])
        client = client_for(agent, clock)
        d = defer.ensureDeferred(client.request("PUT", "k", body=b"data"))
        self.assertEqual(len(agent.requests), 1)
        clock.advance(0.99)
        self.assertEqual(len(agent.requests), 1)
        clock.advance(0.01)
        self.assertEqual(len(agent.requests), 2)
        clock.advance(1.99)
        self.assertEqual(len(agent.requests), 2)
        clock.advance(0.01)
        self.assertEqual(len(agent.requests), 3)
        self.assertEqual(self.successResultOf(d).body, b"ok")
        self.assertEqual(client.retries, 2)
        # The same body went out every time.
        self.assertEqual({producer.length for _, _, _, producer in agent.requests}, {4})

    def test_gives_up_retriable(self):
        clock = Clock()
        agent = FakeAgent([FakeResponse(500)] * 3)
        client = client_for(agent, clock, attempts=3)
        d = defer.ensureDeferred(client.request("GET", "k"))
        clock.pump([1, 2, 4])
        error = self.failureResultOf(d, S3Error).value
        self.assertTrue(error.retriable)
        self.assertEqual((error.status, error.code), (500, "InternalError"))
        self.assertIn("after 3 attempts", str(error))

    def test_not_retried(self):
        clock = Clock()
        agent = FakeAgent([FakeResponse(404, b"<Error><Code>NoSuchKey</Code></Error>"),
                           FakeResponse(403, b"<Error><Code>AccessDenied</Code></Error>")])
        client = client_for(agent, clock)
        for code in ("NoSuchKey", "AccessDenied"):
            error = self.failureResultOf(defer.ensureDeferred(client.request("GET", "k")), S3Error).value
            self.assertEqual((error.code, error.retriable), (code, False))
        self.assertEqual(client.retries, 0)

    def test_error_inside_200(self):
        """CopyObject and CompleteMultipartUpload may fail with a 200; InternalError is retried."""
        clock = Clock()
        agent = FakeAgent([FakeResponse(200, b"<Error><Code>InternalError</Code></Error>"),
                           FakeResponse(200, b"<CopyObjectResult/>")])
        client = client_for(agent, clock)
        d = defer.ensureDeferred(client.copy_object("src", "dst", {}))
        clock.advance(1)
        self.successResultOf(d)
        headers = agent.requests[0][2]
        self.assertEqual(headers.getRawHeaders(b"x-amz-copy-source"), [b"/bucket/src"])

    def test_timeout_waiting_for_headers(self):
        clock = Clock()
        agent = FakeAgent([None, FakeResponse(200, b"late")])
        client = client_for(agent, clock)
        d = defer.ensureDeferred(client.request("GET", "k"))
        clock.advance(30)
        clock.advance(1)
        self.assertEqual(self.successResultOf(d).body, b"late")

    def test_anonymous(self):
        """Without credentials anywhere, requests go unsigned."""
        clock = Clock()

        class Session:
            def get_credentials(self):
                return None

        credentials = CredentialSource(session_factory=Session)
        credentials._in_thread = lambda function: defer.maybeDeferred(function)
        agent = FakeAgent([FakeResponse(200)])
        client = client_for(agent, clock, credentials=credentials)
        self.successResultOf(defer.ensureDeferred(client.request("GET", "k")))
        self.assertFalse(agent.requests[0][2].hasHeader(b"authorization"))


class CredentialTests(unittest.TestCase):
    @async_test
    async def test_chain_resolved_in_a_thread_once(self):
        from botocore.credentials import Credentials

        calls = []

        class Session:
            def get_credentials(self):
                import threading

                calls.append(threading.current_thread().name)
                return Credentials("CHAIN", "SECRET", "TOKEN")

        source = CredentialSource(session_factory=Session)
        first, second = await defer.gatherResults([defer.ensureDeferred(_frozen(source)),
                                                   defer.ensureDeferred(_frozen(source))])
        self.assertEqual((first.access_key, first.token), ("CHAIN", "TOKEN"))
        self.assertEqual(second.access_key, "CHAIN")
        self.assertEqual(len(calls), 1)
        import threading

        self.assertNotEqual(calls[0], threading.current_thread().name)
        third = await source.frozen()
        self.assertEqual(third.access_key, "CHAIN")
        self.assertEqual(len(calls), 1)

    def test_static(self):
        source = CredentialSource("AK", "SK", sessiontoken="T")
        frozen = self.successResultOf(source.frozen())
        self.assertEqual((frozen.access_key, frozen.secret_key, frozen.token), ("AK", "SK", "T"))


async def _frozen(source):
    return await source.frozen()


class TransportTests(unittest.SynchronousTestCase):
    def test_body_producer_pauses(self):
        from spectroreg.storage.s3 import transport

        consumer = StringTransport()
        producer = BytesProducer(b"x" * (3 * transport.SLICE + 10))

        class Pausing:
            def __init__(self):
                self.written = []

            def write(self, data):
                self.written.append(len(data))
                producer.pauseProducing()

        pausing = Pausing()
        d = producer.startProducing(pausing)
        self.assertEqual(pausing.written, [transport.SLICE])
        self.assertNoResult(d)
        for _ in range(3):
            producer.resumeProducing()
        self.assertEqual(sum(pausing.written), producer.length)
        self.successResultOf(d)
        # Sent: the body is let go (a retry sends it with a new producer).
        self.assertIsNone(producer._body)
        again = BytesProducer(b"y" * 10)
        self.successResultOf(again.startProducing(consumer))
        self.assertEqual(consumer.value(), b"y" * 10)

    def test_streamer_idle_timeout_only_while_waiting(self):
        clock = Clock()
        consumer = StringTransport()
        streamer = BodyStreamer(consumer, clock, idle_timeout=10)
        transport = StringTransport()
        streamer.makeConnection(transport)
        streamer.dataReceived(b"abc")
        clock.advance(9)
        streamer.pause()  # the consumer is slow: not S3's fault
        self.assertEqual(transport.producerState, "paused")
        clock.advance(100)
        self.assertNoResult(streamer.finished)
        streamer.resume()
        self.assertEqual(transport.producerState, "producing")
        clock.advance(10)
        self.failureResultOf(streamer.finished, TimeoutError)
        self.assertEqual(transport.producerState, "stopped")
        self.assertEqual(consumer.value(), b"abc")


class CredentialFailureTests(unittest.SynchronousTestCase):
    def test_failure_reaches_every_waiter_then_retried(self):
        attempts = []

        class Session:
            def get_credentials(self):
                attempts.append(1)
                if len(attempts) == 1:
                    raise RuntimeError("metadata service unreachable")
                from botocore.credentials import Credentials

                return Credentials("LATER", "SECRET")

        source = CredentialSource(session_factory=Session)
        pending = []
        source._in_thread = lambda function: pending.append(defer.Deferred()) or pending[-1].addCallback(
            lambda _: function())
        first, second = source.frozen(), source.frozen()
        self.assertEqual(len(pending), 1)
        pending[0].callback(None)
        self.failureResultOf(first, RuntimeError)
        self.failureResultOf(second, RuntimeError)
        third = source.frozen()
        pending[1].callback(None)
        self.assertEqual(self.successResultOf(third).access_key, "LATER")


class StreamerPauseTests(unittest.SynchronousTestCase):
    def test_bytes_arriving_while_paused_are_held(self):
        """Twisted may deliver what it had read after a pause: held, never written."""
        clock = Clock()

        class Consumer:
            def __init__(self):
                self.data = []

            def write(self, data):
                self.data.append(data)

        consumer = Consumer()
        streamer = BodyStreamer(consumer, clock, idle_timeout=10, paused=True)
        transport = StringTransport()
        streamer.makeConnection(transport)
        self.assertEqual(transport.producerState, "paused")
        streamer.dataReceived(b"early")
        streamer.connectionLost(Failure(ResponseDone()))
        self.assertEqual(consumer.data, [])
        self.assertNoResult(streamer.finished)
        streamer.resume()
        self.assertEqual(consumer.data, [b"early"])
        self.assertEqual(streamer.received, 5)
        self.successResultOf(streamer.finished)
