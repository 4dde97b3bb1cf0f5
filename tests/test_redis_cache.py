"""
The shared blob descriptor cache (storage.cache.blobdescriptor: redis):
the RESP client (spectroreg.registry.redisclient) on its own and against
Debian's redis-server, Distribution's key layout, two registries on one
storage and one Redis, and Redis failing or stalling under them.
"""

import hashlib
import os

from twisted.internet import defer, protocol, reactor
from twisted.logger import globalLogPublisher
from twisted.trial import unittest

from spectroreg.config.redis_settings import RedisSettings
from spectroreg.config.settings import StorageSettings
from spectroreg.registry import Registry
from spectroreg.registry import manifests as mf
from spectroreg.registry.digests import parse_digest
from spectroreg.registry.errors import RegistryError
from spectroreg.registry.rediscache import RedisDescriptors
from spectroreg.registry.rediscache import GENERATION_TTL, generation_key
from spectroreg.registry.redisclient import (
    RedisBusy, RedisClient, RedisError, RedisUnavailable, ReplyParser, encode)
from spectroreg.storage.base import ValidatingDriver
from spectroreg.storage.inmemory import InMemoryDriver
from tests.support.asynctest import async_test
from tests.support.redis import start_redis
from tests.support.stores import manifest_body, put_blob

REDIS_CACHE = StorageSettings(driver="inmemory", delete_enabled=True, blobdescriptor_cache="redis")


def sha(data):
    return parse_digest("sha256:" + hashlib.sha256(data).hexdigest())


class ProtocolTests(unittest.SynchronousTestCase):
    def test_encode(self):
        self.assertEqual(encode(("SET", "k", 12, b"\r\n")), b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n$2\r\n\r\n\r\n")

    def test_replies_in_any_split(self):
        wire = b"+OK\r\n:42\r\n$-1\r\n$5\r\nab\r\nc\r\n*3\r\n$1\r\nx\r\n$-1\r\n*1\r\n:1\r\n-ERR no\r\n*0\r\n"
        for step in (1, 2, 3, 7, len(wire)):
            parser = ReplyParser()
            replies = []
            for start in range(0, len(wire), step):
                replies += parser.feed(wire[start:start + step])
            self.assertEqual(replies[:5], [b"OK", 42, None, b"ab\r\nc", [b"x", None, [1]]])
            self.assertIsInstance(replies[5], RedisError)
            self.assertEqual(replies[6], [])
            self.assertEqual(len(replies), 7)


class InterfaceTests(unittest.SynchronousTestCase):
    def test_every_descriptor_cache(self):
        from zope.interface.verify import verifyObject

        from spectroreg.registry.cache import BlobDescriptorCache
        from spectroreg.registry.descriptors import IDescriptorCache, LocalDescriptors, NoDescriptors

        client = RedisClient(RedisSettings(addr="127.0.0.1:1"), reactor)
        for cache in (NoDescriptors(), LocalDescriptors(BlobDescriptorCache()), RedisDescriptors(client)):
            self.assertTrue(verifyObject(IDescriptorCache, cache))


class MetricsTests(unittest.SynchronousTestCase):
    def test_fallbacks_and_outages_exposed(self):
        from spectroreg.ops.metrics import Metrics

        metrics = Metrics(reactor)
        cache = RedisDescriptors(RedisClient(RedisSettings(addr="127.0.0.1:1"), reactor))
        cache.fallbacks, cache.outages = 7, 2
        metrics.watch_cache("blobdescriptor", cache)
        metrics.watch_redis(cache)
        text = metrics.text()
        text = text.decode() if isinstance(text, bytes) else text
        self.assertIn("spectroreg_redis_fallbacks_total 7.0", text)
        self.assertIn("spectroreg_redis_outages_total 2.0", text)


class _Silent(protocol.Protocol):
    """A server that accepts and never answers (a stalled Redis)."""


class ClientTests(unittest.TestCase):
    def setUp(self):
        self.server = start_redis(self, password="sesame")

    def client(self, **overrides):
        options = dict(addr=self.server.addr, password="sesame", readtimeout=5.0, dialtimeout=5.0)
        options.update(overrides)
        client = RedisClient(RedisSettings(**options), reactor)
        self.addCleanup(client.close)
        return client

    @async_test
    async def test_pipeline_auth_and_db(self):
        client = self.client(db=3)
        replies = await client.pipeline([("SET", "k", "v"), ("GET", "k"), ("INCR", "n"), ("HGET", "k", "f")])
        self.assertEqual(replies[:3], [b"OK", b"v", 1])
        self.assertIsInstance(replies[3], RedisError)  # WRONGTYPE: a refused command, not an outage
        self.assertEqual(self.server.command("SELECT", "3"), b"OK")
        self.assertIsNone(self.server.command("GET", "k"))  # db 0 of a new connection: untouched

    @async_test
    async def test_wrong_password_is_unavailable(self):
        with self.assertRaises(RedisUnavailable):
            await self.client(password="wrong").execute("PING")

    @async_test
    async def test_stalled_server_times_out_and_recovers(self):
        client = self.client(readtimeout=0.5, writetimeout=0.5)
        self.assertEqual(await client.execute("PING"), b"PONG")
        self.server.pause()
        try:
            started = reactor.seconds()
            with self.assertRaises(RedisUnavailable):
                await client.execute("PING")
            self.assertLess(reactor.seconds() - started, 4.0)
            # Failing fast meanwhile, without a new connection per call.
            with self.assertRaises(RedisUnavailable):
                await client.execute("PING")
        finally:
            self.server.resume()
        await deferLater(1.1)
        self.assertEqual(await client.execute("PING"), b"PONG")

    @async_test
    async def test_silent_server(self):
        port = reactor.listenTCP(0, protocol.Factory.forProtocol(_Silent), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = RedisClient(RedisSettings(addr="127.0.0.1:{}".format(port.getHost().port), readtimeout=0.3, writetimeout=0.3),
                             reactor)
        self.addCleanup(client.close)
        with self.assertRaises(RedisUnavailable):
            await client.execute("PING")

    @async_test
    async def test_nothing_listening(self):
        self.server.stop()
        with self.assertRaises(RedisUnavailable):
            await self.client().execute("PING")


class PoolTests(unittest.TestCase):
    """``redis.pool`` on the one pipelined connection, against redis-server."""

    def setUp(self):
        self.server = start_redis(self)

    def client(self, **overrides):
        options = dict(addr=self.server.addr, readtimeout=5.0, writetimeout=5.0, dialtimeout=5.0)
        options.update(overrides)
        client = RedisClient(RedisSettings(**options), reactor)
        self.addCleanup(client.close)
        return client

    def connected(self):
        """Clients redis-server has, besides the one asking."""
        info = self.server.command("INFO", "clients").decode()
        count = int(info.split("connected_clients:")[1].split()[0])
        return count - 1

    @async_test
    async def test_maxactive_refuses_lookups_not_invalidations(self):
        client = self.client(maxactive=1)
        blocked = defer.ensureDeferred(client.pipeline([("BLPOP", "nothing", "1")]))
        with self.assertRaises(RedisBusy):
            await client.execute("PING")
        self.assertEqual(await client.pipeline([("PING",)], limited=False), [b"PONG"])
        self.assertEqual(await blocked, [None])
        self.assertEqual(client.active, 0)
        self.assertEqual(await client.execute("PING"), b"PONG")

    @async_test
    async def test_no_bound_without_maxactive(self):
        client = self.client(maxactive=0)
        calls = [defer.ensureDeferred(client.pipeline([("INCR", "n")])) for _ in range(200)]
        self.assertEqual(client.active, 200)
        replies = [(await call)[0] for call in calls]
        self.assertEqual(sorted(replies), list(range(1, 201)))

    @async_test
    async def test_maxidle_zero_keeps_no_idle_connection(self):
        client = self.client(maxidle=0)
        self.assertEqual(await client.execute("PING"), b"PONG")
        await deferLater(0.2)
        self.assertEqual(self.connected(), 0)
        self.assertEqual(await client.execute("PING"), b"PONG")

    @async_test
    async def test_idletimeout(self):
        client = self.client(maxidle=4, idletimeout=0.5)
        self.assertEqual(await client.execute("PING"), b"PONG")
        await deferLater(0.1)
        self.assertEqual(self.connected(), 1)
        await deferLater(1.0)
        self.assertEqual(self.connected(), 0)
        self.assertEqual(await client.execute("PING"), b"PONG")
        self.assertEqual(self.connected(), 1)

    @async_test
    async def test_connection_kept_without_idletimeout(self):
        client = self.client(maxidle=4, idletimeout=0)
        self.assertEqual(await client.execute("PING"), b"PONG")
        await deferLater(0.5)
        self.assertEqual(self.connected(), 1)


class TLSTests(unittest.TestCase):
    """``redis.tls.enabled``: redis-server's TLS port, its certificate checked."""

    def setUp(self):
        from tests.test_service_daemon import make_certificate

        work = os.path.abspath(self.mktemp())
        os.makedirs(work)
        self.cert, key, _ = make_certificate(work, "redis")
        self.server = start_redis(self, tls=(self.cert, key))

    def client(self):
        settings = RedisSettings(addr="localhost:{}".format(self.server.tls_port), tls=True,
                                 readtimeout=5.0, writetimeout=5.0, dialtimeout=5.0)
        client = RedisClient(settings, reactor)
        self.addCleanup(client.close)
        return client

    def trust(self, path):
        previous = os.environ.get("SSL_CERT_FILE")
        os.environ["SSL_CERT_FILE"] = path

        def restore():
            if previous is None:
                os.environ.pop("SSL_CERT_FILE", None)
            else:
                os.environ["SSL_CERT_FILE"] = previous

        self.addCleanup(restore)

    @async_test
    async def test_trusted_certificate(self):
        self.trust(self.cert)
        client = self.client()
        self.assertEqual(await client.pipeline([("SET", "k", "v"), ("GET", "k")]), [b"OK", b"v"])
        self.assertEqual(self.server.command("GET", "k"), b"v")

    @async_test
    async def test_untrusted_certificate_is_unavailable(self):
        self.trust(os.path.join(os.path.dirname(self.cert), "nothing.pem"))
        with self.assertRaises(RedisUnavailable):
            await self.client().execute("PING")
        self.assertIsNone(self.server.command("GET", "k"))


def deferLater(seconds):
    from twisted.internet import task

    return task.deferLater(reactor, seconds, lambda: None)


class FleetTests(unittest.TestCase):
    """Two daemons on one storage and one Redis (as a load balancer sees them)."""

    def setUp(self):
        self.server = start_redis(self)
        shared = ValidatingDriver(InMemoryDriver(reactor=reactor))
        self.caches = []
        self.here = self.registry(shared)
        self.there = self.registry(shared)

    def registry(self, driver):
        client = RedisClient(RedisSettings(addr=self.server.addr, readtimeout=0.5, writetimeout=0.5), reactor)
        self.addCleanup(client.close)
        cache = RedisDescriptors(client)
        self.caches.append(cache)
        return Registry(driver, REDIS_CACHE, reactor=reactor, descriptors=cache)

    async def settled(self):
        for cache in self.caches:
            await cache.settled()

    async def assert_unknown(self, attempt):
        with self.assertRaises(RegistryError) as caught:
            await attempt
        self.assertEqual(caught.exception.code, "BLOB_UNKNOWN")

    @async_test
    async def test_distribution_layout(self):
        digest = (await put_blob(self.here, "r", sha(b"blob"), b"blob")).digest
        await self.here.blobs.stat("r", digest)
        await self.settled()
        fields = self.server.command("HGETALL", "blobs::" + str(digest))
        self.assertEqual(dict(zip(fields[::2], fields[1::2])),
                         {b"digest": str(digest).encode(), b"size": b"4", b"mediatype": b"application/octet-stream"})
        self.assertEqual(self.server.command("SISMEMBER", "repository::r::blobs", str(digest)), 1)
        self.assertEqual(self.server.command("HGET", "repository::r::blobs::" + str(digest), "mediatype"),
                         b"application/octet-stream")

    @async_test
    async def test_answers_from_what_distribution_wrote(self):
        digest = (await put_blob(self.here, "r", sha(b"blob"), b"blob")).digest
        # As Distribution's cache writes it, with a size storage does not
        # have: the answer can only come from Redis.
        self.server.command("HSET", "blobs::" + str(digest), "digest", str(digest), "size", "99",
                            "mediatype", "application/x-test")
        self.server.command("SADD", "repository::r::blobs", str(digest))
        descriptor = await self.there.blobs.stat("r", digest)
        self.assertEqual((descriptor.size, descriptor.media_type), (99, "application/x-test"))
        # Distribution's delete clears the global hash and leaves the set.
        self.server.command("HDEL", "blobs::" + str(digest), "digest", "size", "mediatype")
        self.assertEqual((await self.there.blobs.stat("r", digest)).size, 4)

    @async_test
    async def test_delete_through_another_daemon(self):
        digest = (await put_blob(self.here, "r", sha(b"blob"), b"blob")).digest
        await self.here.blobs.stat("r", digest)
        await self.settled()
        await self.there.blobs.delete("r", digest)
        await self.assert_unknown(self.here.blobs.stat("r", digest))
        self.assertEqual(self.server.command("SISMEMBER", "repository::r::blobs", str(digest)), 0)
        # The generation counter the delete bumped goes away in time.
        ttl = self.server.command("TTL", generation_key(digest))
        self.assertTrue(GENERATION_TTL - 60 < ttl <= GENERATION_TTL, ttl)

    @async_test
    async def test_fill_after_another_daemons_delete_is_refused(self):
        digest = (await put_blob(self.here, "r", sha(b"blob"), b"blob")).digest
        ticket = await self.caches[0].link("r", digest)
        await self.there.blobs.delete("r", digest)
        ticket.fill(True)  # read storage before the delete, answered after it
        await self.settled()
        self.assertEqual(self.server.command("SISMEMBER", "repository::r::blobs", str(digest)), 0)

    @async_test
    async def test_manifest_delete_and_retag(self):
        for blob in (b"config", b"layer", b"other"):
            await put_blob(self.here, "r", sha(blob), blob)
        first, _ = await self.here.manifests.put("r", "v1", manifest_body(b"config", [b"layer"]), mf.OCI_MANIFEST)
        await self.here.manifests.get("r", "v1")
        await self.here.blobs.stat("r", first)
        second, _ = await self.there.manifests.put("r", "v1", manifest_body(b"config", [b"other"]), mf.OCI_MANIFEST)
        self.assertEqual((await self.here.manifests.get("r", "v1")).digest, second)
        await self.settled()
        await self.there.manifests.delete("r", first)
        await self.assert_unknown(self.here.blobs.stat("r", first))

    @async_test
    async def test_redis_down_and_back(self):
        warnings = []

        def observe(event):
            if "redis at" in str(event.get("log_format", "")):
                warnings.append(event)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        digest = (await put_blob(self.here, "r", sha(b"blob"), b"blob")).digest
        await self.here.blobs.stat("r", digest)
        await self.there.blobs.stat("r", digest)
        await self.settled()
        self.server.pause()
        try:
            # Slow Redis: answers come from storage, a delete is still seen.
            for _ in range(3):
                self.assertEqual((await self.here.blobs.stat("r", digest)).size, 4)
            await self.there.blobs.delete("r", digest)
            await self.assert_unknown(self.here.blobs.stat("r", digest))
            other = (await put_blob(self.here, "r", sha(b"other"), b"other")).digest
            self.assertEqual((await self.there.blobs.stat("r", other)).size, 5)
        finally:
            self.server.resume()
        self.assertEqual([e["log_level"].name for e in warnings], ["warn", "warn"])  # one per daemon
        self.assertGreater(self.caches[0].fallbacks, 0)
        self.assertEqual([cache.outages for cache in self.caches], [1, 1])
        await deferLater(1.1)
        # Back: the delete made during the outage reaches Redis before anything else.
        await self.assert_unknown(self.there.blobs.stat("r", digest))
        await self.assert_unknown(self.here.blobs.stat("r", digest))
        self.assertEqual(self.server.command("SISMEMBER", "repository::r::blobs", str(digest)), 0)
        self.assertEqual([cache.down for cache in self.caches], [False, False])
