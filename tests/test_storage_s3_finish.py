"""
Closing an upload on S3 when S3 fails part-way: the daemon (in process,
listening on 127.0.0.1) stores in moto through a proxy that lets the first k
S3 requests of the final ``PUT ?digest=`` through and breaks every later one,
for k = 0, 1, ... until the PUT needs no more. The client then retries as
clients do (ask the upload's Range, send what is missing, PUT again): the
retry always ends in 201 and the blob reads back exact.

The blob (6 MiB, parts of 5 MiB, server-side copies above 5 MiB) takes every
multipart path a 64 MiB layer takes with the default settings.
"""

import dataclasses
import hashlib
import re

import treq
from twisted.internet import reactor
from twisted.web.client import HTTPConnectionPool
from twisted.trial import unittest

from spectroreg.config.settings import StorageSettings, UploadPurgingSettings
from spectroreg.service import makeService
from spectroreg.storage.errors import StorageError
from spectroreg.storage.s3.client import RetryPolicy
from spectroreg.storage.testing import deterministic_chunks
from tests.support.asynctest import async_test
from tests.support.moto import S3Proxy, fresh_bucket, s3_settings, start_moto
from tests.support.web import port_of, settings_for

MiB = 1024 * 1024
PART = 5 * MiB
SIZE = 6 * MiB + 12345
FAST_RETRY = RetryPolicy(attempts=3, base=0.01, cap=0.05)


class FinishRetryTests(unittest.TestCase):
    timeout = 900

    def setUp(self):
        # A server of its own without signature checks: what is tested is
        # the order of the requests, not their signatures.
        server = start_moto(auth=False)
        self.addCleanup(server.stop)
        self.server, self.bucket = fresh_bucket(self, server)
        self.proxy = S3Proxy(self.server.host, self.server.port)
        self.proxy.listen()
        self.addCleanup(self.proxy.stop)
        s3 = s3_settings(
            self.server, self.bucket, regionendpoint=self.proxy.endpoint, chunksize=PART,
            multipartcopychunksize=PART, multipartcopythresholdsize=PART)
        storage = StorageSettings(
            driver="s3", s3=s3, redirect_disable=True,
            uploadpurging=UploadPurgingSettings(enabled=False))
        settings = dataclasses.replace(settings_for(access_log=False), storage=storage)
        service = makeService(settings, reactor=reactor)
        service.handle_sighup = False
        # Broken requests are retried a few times, quickly: the faults here
        # last until the test lifts them.
        service.registry.driver.driver.client.retry = FAST_RETRY
        service.privilegedStartService()
        service.startService()
        self.addCleanup(lambda: service.running and service.stopService())
        self.base = "http://127.0.0.1:{}".format(port_of(service))
        # A connection per request: what is tested is storage, not reuse.
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(self.pool.closeCachedConnections)

    def break_after(self, count, marks):
        """Let C{count} S3 requests about C{marks} (upload id, digest) through, then break them all."""
        seen = [0]

        def rule(method, target, operation, headers):
            if not any(mark in target for mark in marks):
                return None  # another upload's requests
            seen[0] += 1
            return "reset" if seen[0] > count else None

        self.proxy.rule = rule
        return seen

    async def request(self, method, url, data=None, headers=None):
        if url.startswith("/"):
            url = self.base + url
        response = await treq.request(method, url, data=data, headers=headers or {}, pool=self.pool)
        body = await response.content()
        return response, body

    async def start(self, data):
        response, _ = await self.request("POST", "/v2/retry/me/blobs/uploads/")
        self.assertEqual(response.code, 202)
        location = response.headers.getRawHeaders("location")[0]
        response, _ = await self.request(
            "PATCH", location, data, {"Content-Type": ["application/octet-stream"]})
        self.assertEqual(response.code, 202)
        return response.headers.getRawHeaders("location")[0]

    def with_digest(self, location, digest):
        return location + ("&" if "?" in location else "?") + "digest=" + digest

    async def retry(self, location, data, digest):
        """What a client does after a failed PUT: ask, send what is missing, PUT."""
        response, _ = await self.request("GET", location)
        self.assertEqual(response.code, 204, "the upload outlives a failed finish")
        end = int(re.match(r"^0-(\d+)$", response.headers.getRawHeaders("range")[0]).group(1))
        stored = end + 1 if end else 0
        body = b""
        headers = {}
        if stored not in (0, len(data)):
            body = data[stored:]
            headers = {"Content-Range": ["{}-{}".format(stored, len(data) - 1)],
                       "Content-Type": ["application/octet-stream"]}
        response, text = await self.request("PUT", self.with_digest(location, digest), body, headers)
        return response, text, stored

    @async_test
    async def test_fault_after_each_request_of_the_finish(self):
        outcomes = []
        for k in range(60):
            data = b"".join(deterministic_chunks(SIZE - 8, seed=100 + k)) + b"%08d" % k
            hexdigest = hashlib.sha256(data).hexdigest()
            digest = "sha256:" + hexdigest
            location = await self.start(data)
            upload_id = location.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
            seen = self.break_after(k, (upload_id, hexdigest))
            response, _ = await self.request("PUT", self.with_digest(location, digest))
            self.proxy.rule = None
            if response.code == 201:
                outcomes.append((k, "201 without a fault"))
                requests = seen[0]
            else:
                self.assertGreaterEqual(response.code, 500, k)
                response, text, stored = await self.retry(location, data, digest)
                self.assertEqual(response.code, 201, (k, text))
                outcomes.append((k, stored))
            response, body = await self.request("GET", "/v2/retry/me/blobs/" + digest)
            self.assertEqual(response.code, 200, k)
            self.assertEqual(hashlib.sha256(body).hexdigest(), hexdigest, k)
            response, _ = await self.request("GET", location)
            self.assertEqual(response.code, 404, k)
            if outcomes[-1][1] == "201 without a fault":
                break
        else:
            self.fail("the finish never went through: {}".format(outcomes))
        # Faults hit every step: before the last part, in the server-side
        # copy (the upload still holds everything), after it (nothing left).
        self.assertGreater(requests, 8, outcomes)
        retried = [stored for _, stored in outcomes[:-1]]
        self.assertIn(0, retried, outcomes)
        self.assertIn(SIZE, retried, outcomes)
        keys = [key for key in self.server.keys(self.bucket) if "/_uploads/" in key]
        self.assertEqual(keys, [])
        # Each broken PUT logged its storage error (a 500 is logged as ours).
        self.flushLoggedErrors(StorageError)
