"""
The S3 driver against moto's server with signature checking on.

The shared driver suite runs unchanged; the S3-specific tests check what
only S3 has: object keys exactly as Distribution's, headers every object
carries, presigned redirects, resumable writers whose state lives in the
bucket, server-side multipart copy, and behaviour under faults injected by
a proxy (503 SlowDown, connections cut mid-body, refused connections).
"""

import hashlib
import urllib.request

from twisted.trial import unittest

from spectroreg.storage.base import ValidatingDriver
from spectroreg.storage.errors import PathNotFound, StorageError
from spectroreg.storage.s3 import S3Driver, S3Error
from spectroreg.storage.s3.client import RetryPolicy
from spectroreg.storage.testing import (
    HashingConsumer,
    StorageDriverTestsMixin,
    deterministic_chunks,
    deterministic_digest,
)
from tests.support.asynctest import async_test
from tests.support.moto import S3Proxy, fresh_bucket, s3_settings, start_moto
from tests.support.stores import finish_upload

MiB = 1024 * 1024
FAST_RETRY = RetryPolicy(attempts=4, base=0.01, cap=0.05)


def make_driver(test, server=None, retry=FAST_RETRY, **overrides):
    """An S3Driver on a fresh bucket; @return: (driver, server, bucket)."""
    server, bucket = fresh_bucket(test, server)
    driver = S3Driver(s3_settings(server, bucket, **overrides), retry=retry)
    test.addCleanup(driver.close)
    return driver, server, bucket


class S3DriverTests(StorageDriverTestsMixin, unittest.TestCase):
    """The shared driver suite, on moto."""

    stat_sees_unfinished = False

    def make_driver(self):
        driver, self.server, self.bucket = make_driver(self)
        return driver

    async def assert_nothing_left(self, driver):
        await StorageDriverTestsMixin.assert_nothing_left(self, driver)
        # Below the driver: no object, no multipart upload in flight.
        self.assertEqual(self.server.keys(self.bucket), [])
        self.assertEqual(self.server.uploads(self.bucket), [])


async def read_all(driver, path, offset=0, length=None):
    consumer = HashingConsumer(keep=True)
    await driver.read(path, consumer, offset, length)
    return consumer.data


def parts_of(server, bucket, key, upload_id):
    """C{[(number, size)]} of an upload in flight, as S3 lists them."""
    listing = server.s3().list_parts(Bucket=bucket, Key=key, UploadId=upload_id)
    return [(part["PartNumber"], part["Size"]) for part in listing.get("Parts", [])]


async def write_chunks(writer, total, seed):
    for chunk in deterministic_chunks(total, seed=seed):
        await writer.write(chunk)


class KeyAndHeaderTests(unittest.TestCase):
    """What lands in the bucket is what Distribution writes."""

    @async_test
    async def test_keys_with_rootdirectory(self):
        driver, server, bucket = make_driver(self, rootdirectory="/some/root/")
        await driver.put_content("/docker/registry/v2/repositories/r/_layers/link", b"x")
        self.assertEqual(server.keys(bucket), ["some/root/docker/registry/v2/repositories/r/_layers/link"])
        self.assertEqual(driver.key("/docker/registry/v2"), "some/root/docker/registry/v2")
        self.assertEqual(await driver.list("/"), ["/docker"])

    @async_test
    async def test_keys_without_rootdirectory(self):
        driver, server, bucket = make_driver(self)
        await driver.put_content("/docker/registry/v2/blobs/sha256/ab/abcd/data", b"x")
        self.assertEqual(server.keys(bucket), ["docker/registry/v2/blobs/sha256/ab/abcd/data"])

    @async_test
    async def test_object_headers(self):
        """Every object: application/octet-stream, SSE AES256 with encrypt, the storage class."""
        driver, server, bucket = make_driver(self, encrypt=True, storageclass="STANDARD_IA")
        await driver.put_content("/small", b"x")
        writer = await driver.writer("/big")
        await write_chunks(writer, 11 * MiB, 1)
        await writer.commit()
        await driver.move("/small", "/moved")
        s3 = server.s3()
        for key in ("big", "moved"):
            head = s3.head_object(Bucket=bucket, Key=key)
            self.assertEqual(head["ContentType"], "application/octet-stream", key)
            self.assertEqual(head["ServerSideEncryption"], "AES256", key)
            self.assertEqual(head.get("StorageClass"), "STANDARD_IA", key)

    @async_test
    async def test_kms_headers(self):
        driver, _, _ = make_driver(self, encrypt=True, keyid="alias/registry")
        headers = driver.object_headers()
        self.assertEqual(headers["x-amz-server-side-encryption"], "aws:kms")
        self.assertEqual(headers["x-amz-server-side-encryption-aws-kms-key-id"], "alias/registry")
        self.assertEqual(headers["x-amz-acl"], "private")

    @async_test
    async def test_bad_signature_rejected(self):
        """moto checks signatures here: a wrong secret is refused, not retried."""
        driver, server, bucket = make_driver(self, secretkey="wrong")
        error = await self.assertFailure(driver.put_content("/x", b"x"), S3Error)
        self.assertEqual(error.code, "SignatureDoesNotMatch")
        self.assertFalse(error.retriable)
        self.assertEqual(driver.client.retries, 0)


class RedirectTests(unittest.TestCase):
    @async_test
    async def test_presigned_url_fetches(self):
        """
        The presigned GET URL serves the object. moto answers presigned GETs
        with a 500 when it checks signatures, so this runs on a moto of its
        own without signature checking; the URL is checked for SigV4 fields.
        """
        server = start_moto(auth=False)
        self.addCleanup(server.stop)
        driver, _, bucket = make_driver(self, server)
        await driver.put_content("/docker/blob", b"content")
        url = await driver.redirect_url("/docker/blob")
        self.assertIn("X-Amz-Algorithm=AWS4-HMAC-SHA256", url)
        self.assertIn("X-Amz-Signature=", url)
        self.assertIn("/{}/docker/blob?".format(bucket), url)
        from twisted.internet import threads

        fetched = await threads.deferToThread(lambda: urllib.request.urlopen(url, timeout=10).read())
        self.assertEqual(fetched, b"content")

    @async_test
    async def test_redirect_disabled(self):
        server, bucket = fresh_bucket(self)
        driver = S3Driver(s3_settings(server, bucket), redirect=False)
        self.addCleanup(driver.close)
        self.assertIsNone(await driver.redirect_url("/x"))


class ResumableWriterTests(unittest.TestCase):
    @async_test
    async def test_resume_from_another_driver(self):
        """A closed writer continues from a new driver (another daemon): the upload is in the bucket."""
        first, server, bucket = make_driver(self, rootdirectory="r")
        path = "/docker/registry/v2/repositories/x/_uploads/u/data"
        key = "r" + path
        data = b"".join(deterministic_chunks(13 * MiB + 5, seed=4))
        writer = await first.writer(path)
        await writer.write(data[:7 * MiB])
        await writer.close()
        # What Distribution finds: one upload on the key with the bytes as
        # its parts, nothing else in the bucket.
        [(upload_key, upload_id)] = server.uploads(bucket)
        self.assertEqual(upload_key, key)
        self.assertEqual(parts_of(server, bucket, key, upload_id), [(1, 7 * MiB)])
        self.assertEqual(server.keys(bucket), [])
        # Not a file until committed: no listing or stat shows it.
        await self.assertFailure(
            first.list("/docker/registry/v2/repositories/x/_uploads/u"), PathNotFound)
        await self.assertFailure(first.stat(path), PathNotFound)
        await first.close()

        second = S3Driver(s3_settings(server, bucket, rootdirectory="r"), retry=FAST_RETRY)
        self.addCleanup(second.close)
        writer = await second.writer(path, append=True)
        self.assertEqual(writer.size, 7 * MiB)
        await writer.write(data[7 * MiB:7 * MiB + 100])
        await writer.close()  # a part of 100 bytes: S3 takes it as the last one
        [(_, upload_id)] = server.uploads(bucket)
        self.assertEqual(parts_of(server, bucket, key, upload_id), [(1, 7 * MiB), (2, 100)])

        third = S3Driver(s3_settings(server, bucket, rootdirectory="r"), retry=FAST_RETRY)
        self.addCleanup(third.close)
        writer = await third.writer(path, append=True)
        self.assertEqual(writer.size, 7 * MiB + 100)
        await writer.write(data[7 * MiB + 100:7 * MiB + 200])
        await writer.close()
        # The small last part was completed into the object, which became
        # the first part of a new upload (a server-side copy): one upload,
        # no object left.
        [(_, upload_id)] = server.uploads(bucket)
        self.assertEqual(parts_of(server, bucket, key, upload_id), [(1, 7 * MiB + 100), (2, 100)])
        self.assertEqual(server.keys(bucket), [])
        writer = await third.writer(path, append=True)
        await writer.write(data[7 * MiB + 200:])
        await writer.commit()
        self.assertEqual(await read_all(third, path), data)
        await third.close()
        self.assertEqual(server.keys(bucket), [key])
        self.assertEqual(server.uploads(bucket), [])

    @async_test
    async def test_append_to_committed_object(self):
        driver, server, bucket = make_driver(self)
        big = b"".join(deterministic_chunks(6 * MiB, seed=5))
        for name, first in (("small", b"abc"), ("big", big)):
            await driver.put_content("/" + name, first)
            writer = await driver.writer("/" + name, append=True)
            self.assertEqual(writer.size, len(first))
            await writer.write(b"more")
            await writer.commit()
            self.assertEqual(await driver.get_content("/" + name), first + b"more")
        self.assertEqual(server.uploads(bucket), [])

    @async_test
    async def test_delete_aborts_unfinished_uploads(self):
        driver, server, bucket = make_driver(self)
        writer = await driver.writer("/up/u/data")
        await writer.write(b"x" * (6 * MiB))
        await writer.close()
        await driver.put_content("/up/u/startedat", b"now")
        self.assertEqual(len(server.uploads(bucket)), 1)
        await driver.delete("/up")
        self.assertEqual(server.uploads(bucket), [])
        self.assertEqual(server.keys(bucket), [])

    @async_test
    async def test_memory_bound(self):
        """Parts in flight are bounded: write() waits for uploads."""
        driver, _, _ = make_driver(self, chunksize=5 * MiB)
        writer = await driver.writer("/m")
        peak = 0
        digest = hashlib.sha256()
        for chunk in deterministic_chunks(40 * MiB, seed=6, sizes=(MiB,)):
            digest.update(chunk)
            await writer.write(chunk)
            peak = max(peak, len(writer._in_flight))
            self.assertLess(len(writer._buffer), 5 * MiB)
        self.assertLessEqual(peak, driver.parts_in_flight)
        await writer.commit()
        consumer = HashingConsumer()
        await driver.read("/m", consumer)
        self.assertEqual(consumer.hash.hexdigest(), digest.hexdigest())

    @async_test
    async def test_multipart_copy(self):
        """Above multipartcopythresholdsize, move copies in parts on the server."""
        server, bucket = fresh_bucket(self)
        proxy = S3Proxy(server.host, server.port)
        proxy.listen()
        self.addCleanup(proxy.stop)
        driver = S3Driver(s3_settings(
            server, bucket, regionendpoint=proxy.endpoint, multipartcopythresholdsize=5 * MiB,
            multipartcopychunksize=5 * MiB, multipartcopymaxconcurrency=2), retry=FAST_RETRY)
        self.addCleanup(driver.close)
        await driver.put_content("/src", b"".join(deterministic_chunks(12 * MiB, seed=8)))
        proxy.stats.reset()
        await driver.move("/src", "/dst")
        self.assertEqual(proxy.stats.requests["UploadPartCopy"], 3)
        self.assertEqual(proxy.stats.requests["CopyObject"], 0)
        consumer = HashingConsumer()
        await driver.read("/dst", consumer)
        self.assertEqual(consumer.hash.hexdigest(), deterministic_digest(12 * MiB, seed=8))
        await self.assertFailure(driver.stat("/src"), PathNotFound)


class FaultTests(unittest.TestCase):
    """A proxy between the driver and moto breaks requests; data stays right."""

    def setUp(self):
        self.server, self.bucket = fresh_bucket(self)
        self.proxy = S3Proxy(self.server.host, self.server.port)
        self.proxy.listen()
        self.addCleanup(self.proxy.stop)
        self.driver = S3Driver(
            s3_settings(self.server, self.bucket, regionendpoint=self.proxy.endpoint),
            retry=FAST_RETRY, idle_timeout=5.0)
        self.addCleanup(self.driver.close)

    def fail_first(self, count, action, operations):
        left = [count]

        def rule(method, target, operation, headers):
            if operation in operations and left[0] > 0:
                left[0] -= 1
                return action
            return None

        self.proxy.rule = rule

    @async_test
    async def test_slowdown_retried(self):
        self.fail_first(2, "503", {"UploadPart", "PutObject", "CompleteMultipartUpload",
                                   "CreateMultipartUpload"})
        writer = await self.driver.writer("/a")
        await write_chunks(writer, 23 * MiB, 10)
        await writer.commit()
        self.assertEqual(self.proxy.faults, 2)
        self.assertGreaterEqual(self.driver.client.retries, 2)
        consumer = HashingConsumer()
        await self.driver.read("/a", consumer)
        self.assertEqual(consumer.hash.hexdigest(), deterministic_digest(23 * MiB, seed=10))

    @async_test
    async def test_every_operation_survives_a_slowdown(self):
        """Each kind of request gets one 503 first; all succeed."""
        seen = set()

        def rule(method, target, operation, headers):
            if operation not in seen:
                seen.add(operation)
                return "503"
            return None

        self.proxy.rule = rule
        await self.driver.put_content("/d/f", b"hello")
        self.assertEqual(await self.driver.get_content("/d/f"), b"hello")
        self.assertEqual((await self.driver.stat("/d/f")).size, 5)
        self.assertEqual(await self.driver.list("/d"), ["/d/f"])
        await self.driver.move("/d/f", "/d/g")
        await self.driver.delete("/d")
        self.assertEqual(self.server.keys(self.bucket), [])
        self.assertGreaterEqual(len(seen), 6)

    @async_test
    async def test_reset_connections_retried(self):
        self.fail_first(3, "reset", {"UploadPart", "PutObject", "ListObjectsV2"})
        writer = await self.driver.writer("/b")
        await write_chunks(writer, 12 * MiB, 11)
        await writer.close()
        writer = await self.driver.writer("/b", append=True)
        await writer.commit()
        self.assertEqual((await self.driver.stat("/b")).size, 12 * MiB)
        self.assertEqual(self.proxy.faults, 3)

    @async_test
    async def test_read_resumes_after_cut(self):
        """A GET cut mid-body continues from the byte it stopped at (Range + If-Match)."""
        data = b"".join(deterministic_chunks(3 * MiB, seed=12))
        await self.driver.put_content("/c", data)
        self.fail_first(2, ("cut", MiB), {"GetObject"})
        got = await read_all(self.driver, "/c")
        self.assertEqual(hashlib.sha256(got).hexdigest(), hashlib.sha256(data).hexdigest())
        self.assertEqual(self.proxy.faults, 2)
        self.assertEqual(self.proxy.stats.requests["GetObject"], 3)
        # An offset read resumes too.
        self.fail_first(1, ("cut", 1000), {"GetObject"})
        self.assertEqual(await read_all(self.driver, "/c", 100, 2 * MiB), data[100:100 + 2 * MiB])

    @async_test
    async def test_outage_then_resume(self):
        """
        S3 unreachable mid-upload: the write fails with a retriable
        StorageError, nothing corrupt is visible; once S3 is back the upload
        resumes from the last close and completes intact.
        """
        data = b"".join(deterministic_chunks(27 * MiB, seed=13))
        writer = await self.driver.writer("/o")
        await writer.write(data[:11 * MiB])
        await writer.close()
        writer = await self.driver.writer("/o", append=True)
        self.proxy.refuse = True
        failure = None
        try:
            for start in range(11 * MiB, 22 * MiB, MiB):
                await writer.write(data[start:start + MiB])
            await writer.close()
        except StorageError as error:
            failure = error
        self.assertIsInstance(failure, S3Error)
        self.assertTrue(failure.retriable)
        self.assertGreater(self.proxy.refused, 0)
        # Still down: opening the file fails the same way.
        error = await self.assertFailure(self.driver.writer("/o", append=True), S3Error)
        self.assertTrue(error.retriable)
        self.proxy.refuse = False
        await self.assertFailure(self.driver.stat("/o/x"), PathNotFound)
        writer = await self.driver.writer("/o", append=True)
        self.assertEqual(writer.size, 11 * MiB)
        await writer.write(data[11 * MiB:])
        await writer.commit()
        self.assertEqual(await read_all(self.driver, "/o"), data)
        self.assertEqual(self.server.uploads(self.bucket), [])


class ValidatedFactoryTests(unittest.TestCase):
    def test_from_settings(self):
        from spectroreg.config.errors import ConfigError
        from spectroreg.config.settings import S3Settings

        driver = S3Driver.from_settings(S3Settings(bucket="bucket-name"), redirect=False)
        self.addCleanup(driver.close)
        self.assertEqual(driver.name, "s3")
        self.assertFalse(driver.redirect)
        self.assertRaises(ConfigError, S3Driver.from_settings,
                          S3Settings(bucket="b", chunksize=1024))
        self.assertIsInstance(ValidatingDriver(driver).driver, S3Driver)


class TLSTests(unittest.TestCase):
    """HTTPS endpoints: the certificate is checked unless skipverify."""

    def setUp(self):
        self.server = start_moto(auth=False, tls=True)
        self.addCleanup(self.server.stop)
        self.bucket = self.server.create_bucket()

    def driver(self, **overrides):
        driver = S3Driver(s3_settings(self.server, self.bucket, secure=True, **overrides),
                          retry=RetryPolicy(attempts=2, base=0.01, cap=0.01))
        self.addCleanup(driver.close)
        return driver

    @async_test
    async def test_skipverify(self):
        driver = self.driver(skipverify=True)
        self.assertTrue(self.server.endpoint.startswith("https://"))
        await driver.put_content("/over/tls", b"secret")
        self.assertEqual(await driver.get_content("/over/tls"), b"secret")
        self.assertEqual(await read_all(driver, "/over/tls", 1, 3), b"ecr")

    @async_test
    async def test_self_signed_refused_by_default(self):
        driver = self.driver()
        error = await self.assertFailure(driver.put_content("/x", b"x"), S3Error)
        self.assertIsNone(error.status)
        self.assertEqual(self.server.keys(self.bucket), [])
        # Newer Twisted also logs why it refused moto's certificate (a "*" name).
        from service_identity.exceptions import CertificateError

        self.flushLoggedErrors(CertificateError)


class InFlightTests(unittest.TestCase):
    """Unfinished files are multipart uploads exactly as Distribution keeps them."""

    def setUp(self):
        self.server, self.bucket = fresh_bucket(self)
        self.proxy = S3Proxy(self.server.host, self.server.port)
        self.proxy.listen()
        self.addCleanup(self.proxy.stop)

    def driver(self):
        driver = S3Driver(s3_settings(self.server, self.bucket, regionendpoint=self.proxy.endpoint),
                          retry=FAST_RETRY)
        self.addCleanup(driver.close)
        return driver

    async def append(self, driver, path, data):
        writer = await driver.writer(path, append=True)
        await writer.write(data)
        await writer.close()
        return writer

    def requests(self):
        return {name: count for name, count in self.proxy.stats.requests.items() if count}

    @async_test
    async def test_new_file_closed_empty_is_an_upload_without_parts(self):
        """What Distribution's POST leaves, and what it continues."""
        driver = self.driver()
        writer = await driver.writer("/u/data")
        await writer.close()
        [(key, upload_id)] = self.server.uploads(self.bucket)
        self.assertEqual((key, parts_of(self.server, self.bucket, key, upload_id)), ("u/data", []))
        writer = await driver.writer("/u/data", append=True)
        self.assertEqual(writer.size, 0)
        await writer.write(b"abc")
        await writer.commit()
        self.assertEqual(await driver.get_content("/u/data"), b"abc")
        self.assertEqual(self.server.uploads(self.bucket), [])

    @async_test
    async def test_own_small_part_sent_again(self):
        """Continuing a file this process left: one ListParts, the small part sent again."""
        driver = self.driver()
        writer = await driver.writer("/u/data")
        await writer.write(b"a")
        await writer.close()
        self.proxy.stats.reset()
        writer = await self.append(driver, "/u/data", b"b")
        self.assertEqual(self.requests(), {"ListParts": 1, "UploadPart": 1})
        self.assertEqual(writer.size, 2)
        [(key, upload_id)] = self.server.uploads(self.bucket)
        self.assertEqual(parts_of(self.server, self.bucket, key, upload_id), [(1, 2)])
        writer = await driver.writer("/u/data", append=True)
        await writer.commit()
        self.assertEqual(await driver.get_content("/u/data"), b"ab")

    @async_test
    async def test_size_asked_without_writing_changes_nothing(self):
        driver = self.driver()
        writer = await driver.writer("/u/data")
        await writer.write(b"a")
        await writer.close()
        self.proxy.stats.reset()
        writer = await driver.writer("/u/data", append=True)
        await writer.close()
        self.assertEqual((writer.size, self.requests()), (1, {"ListParts": 1}))

    @async_test
    async def test_another_process_continued_the_file(self):
        ours, theirs = self.driver(), self.driver()
        writer = await ours.writer("/u/data")
        await writer.write(b"a")
        await writer.close()
        await self.append(theirs, "/u/data", b"b")  # another daemon continues the file
        self.proxy.stats.reset()
        # Our upload id is gone (completed into the object, restarted): we
        # look again, as Distribution does, and restart from the object.
        writer = await self.append(ours, "/u/data", b"c")
        self.assertEqual(writer.size, 3)
        self.assertEqual(self.requests(), {
            "ListParts": 2, "ListMultipartUploads": 1, "CompleteMultipartUpload": 1,
            "CreateMultipartUpload": 1, "GetObject": 1, "UploadPart": 1, "DeleteObject": 1})
        writer = await theirs.writer("/u/data", append=True)
        self.assertEqual(writer.size, 3)
        await writer.commit()
        self.assertEqual(await ours.get_content("/u/data"), b"abc")

    @async_test
    async def test_big_file_restarted_by_a_server_side_copy(self):
        ours, theirs = self.driver(), self.driver()
        data = b"".join(deterministic_chunks(6 * MiB + 3, seed=12))
        writer = await ours.writer("/u/data")
        await writer.write(data[:6 * MiB])
        await writer.close()
        await self.append(ours, "/u/data", data[6 * MiB:6 * MiB + 1])  # parts of 6 MiB, 1 byte
        self.proxy.stats.reset()
        writer = await self.append(theirs, "/u/data", data[6 * MiB + 1:])
        self.assertEqual(writer.size, len(data))
        self.assertEqual(self.proxy.stats.requests["UploadPartCopy"], 1)
        writer = await ours.writer("/u/data", append=True)
        await writer.commit()
        self.assertEqual(await read_all(ours, "/u/data"), data)

    @async_test
    async def test_parts_after_a_gap_are_not_the_file(self):
        """A writer cut while parts went up in parallel: only the unbroken run counts."""
        driver = self.driver()
        s3 = self.server.s3()
        first = b"".join(deterministic_chunks(5 * MiB, seed=13))
        upload_id = s3.create_multipart_upload(Bucket=self.bucket, Key="u/data")["UploadId"]
        s3.upload_part(Bucket=self.bucket, Key="u/data", UploadId=upload_id, PartNumber=1, Body=first)
        s3.upload_part(Bucket=self.bucket, Key="u/data", UploadId=upload_id, PartNumber=3, Body=b"stale")
        writer = await driver.writer("/u/data", append=True)
        await writer.close()
        self.assertEqual(writer.size, 5 * MiB)
        writer = await self.append(driver, "/u/data", b"next")
        self.assertEqual(writer.size, 5 * MiB + 4)
        writer = await driver.writer("/u/data", append=True)
        await writer.commit()
        self.assertEqual(await read_all(driver, "/u/data"), first + b"next")
        self.assertEqual(self.server.uploads(self.bucket), [])

    @async_test
    async def test_stat_of_an_upload_in_flight(self):
        """In a directory holding something else (an upload's startedat), stat sees the upload."""
        driver = self.driver()
        await driver.put_content("/u/startedat", b"t")
        writer = await driver.writer("/u/data")
        await writer.write(b"abc")
        await writer.close()
        for stat in (driver, self.driver()):  # this process, and another one
            info = await stat.stat("/u/data")
            self.assertEqual((info.size, info.is_dir), (3, False))
        # Alone in its directory, an upload in flight is no file (as for Distribution).
        writer = await driver.writer("/alone/data")
        await writer.write(b"abc")
        await writer.close()
        await self.assertFailure(driver.stat("/alone/data"), PathNotFound)

    @async_test
    async def test_stat_while_distribution_continues_an_upload(self):
        """The object Distribution leaves at the key while it continues the upload is outgrown."""
        driver = self.driver()
        s3 = self.server.s3()
        s3.put_object(Bucket=self.bucket, Key="u/startedat", Body=b"t")
        first = s3.create_multipart_upload(Bucket=self.bucket, Key="u/data")["UploadId"]
        etag = s3.upload_part(Bucket=self.bucket, Key="u/data", UploadId=first, PartNumber=1,
                              Body=b"a")["ETag"]
        s3.complete_multipart_upload(Bucket=self.bucket, Key="u/data", UploadId=first, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": etag}]})
        second = s3.create_multipart_upload(Bucket=self.bucket, Key="u/data")["UploadId"]
        s3.upload_part(Bucket=self.bucket, Key="u/data", UploadId=second, PartNumber=1, Body=b"ab")
        self.assertEqual((await driver.stat("/u/data")).size, 2)
        writer = await driver.writer("/u/data", append=True)
        self.assertEqual(writer.size, 2)
        await writer.write(b"c")
        await writer.commit()
        self.assertEqual((await driver.stat("/u/data")).size, 3)
        self.assertEqual(await driver.get_content("/u/data"), b"abc")

    @async_test
    async def test_failed_copy_in_a_blob_directory_is_no_file(self):
        """A multipart copy S3 could not abort leaves an upload on a blob's key: still no blob."""
        driver = self.driver()
        s3 = self.server.s3()
        upload_id = s3.create_multipart_upload(Bucket=self.bucket, Key="blobs/ab/data")["UploadId"]
        s3.upload_part(Bucket=self.bucket, Key="blobs/ab/data", UploadId=upload_id, PartNumber=1,
                       Body=b"partial")
        self.proxy.stats.reset()
        await self.assertFailure(driver.stat("/blobs/ab/data"), PathNotFound)
        self.assertEqual(self.requests(), {"ListObjectsV2": 1})
        await driver.delete("/blobs/ab")
        self.assertEqual(self.server.uploads(self.bucket), [])

    @async_test
    async def test_new_writer_replaces_an_upload_in_flight(self):
        driver = self.driver()
        writer = await driver.writer("/u/data")
        await writer.write(b"old")
        await writer.close()
        writer = await driver.writer("/u/data")
        await writer.write(b"new")
        await writer.close()
        self.assertEqual(len(self.server.uploads(self.bucket)), 1)
        writer = await driver.writer("/u/data", append=True)
        self.assertEqual(writer.size, 3)
        await writer.commit()
        self.assertEqual(await driver.get_content("/u/data"), b"new")


class RegistryOnS3Tests(unittest.TestCase):
    """The registry on S3: requests per push, and two daemons sharing one bucket."""

    def setUp(self):
        from spectroreg.config.settings import StorageSettings

        self.server, self.bucket = fresh_bucket(self)
        self.proxy = S3Proxy(self.server.host, self.server.port)
        self.proxy.listen()
        self.addCleanup(self.proxy.stop)
        self.storage = StorageSettings(driver="s3", delete_enabled=True)

    def registry(self):
        from spectroreg.registry import Registry

        driver = S3Driver(s3_settings(self.server, self.bucket, regionendpoint=self.proxy.endpoint,
                                      chunksize=5 * MiB), retry=FAST_RETRY)
        self.addCleanup(driver.close)
        return Registry(ValidatingDriver(driver), self.storage)

    async def patch(self, registry, upload_id, data, offset):
        writer = await registry.uploads.open("r", upload_id, offset)
        await writer.write(data)
        await writer.close()

    @async_test
    async def test_requests_per_push(self):
        """A layer pushed in one PATCH, as docker does; every request counted."""
        from spectroreg.registry.errors import RegistryError

        registry = self.registry()
        # More than a part: one goes with the PATCH, the rest with the PUT.
        data = b"".join(deterministic_chunks(6 * MiB, seed=7))
        digest = sha256_digest(data)
        steps = []

        def step(name):
            steps.append((name, {k: v for k, v in self.proxy.stats.requests.items() if v}))
            self.proxy.stats.reset()

        self.proxy.stats.reset()
        with self.assertRaises(RegistryError):
            await registry.blobs.stat("r", digest)
        step("HEAD")
        upload_id = await registry.uploads.start("r")
        step("POST")
        await self.patch(registry, upload_id, data, 0)
        step("PATCH")
        await finish_upload(registry, "r", upload_id, digest)
        step("PUT")
        self.assertEqual(steps, [
            ("HEAD", {"ListObjectsV2": 1}),
            # startedat, and data as Distribution starts it: an upload in
            # flight (any older one on the key aborted first).
            ("POST", {"PutObject": 1, "ListMultipartUploads": 1, "CreateMultipartUpload": 1}),
            # The upload exists (a listing), its parts (the upload id is
            # known here), a part of 5 MiB and the rest as a part at close.
            ("PATCH", {"ListObjectsV2": 1, "ListParts": 1, "UploadPart": 2}),
            # Two PutObjects: the upload's "verified" marker (so a retried
            # finish can complete), then the repository's link; the upload's
            # directory and anything in flight below it go last.
            ("PUT", {"ListObjectsV2": 2, "ListParts": 1, "CompleteMultipartUpload": 1,
                     "PutObject": 2, "CopyObject": 1, "DeleteObject": 1,
                     "ListMultipartUploads": 1, "DeleteObjects": 1}),
        ])
        self.assertEqual((await registry.blobs.stat("r", digest)).size, 6 * MiB)

    @async_test
    async def test_upload_moves_between_daemons(self):
        """The first chunk goes to the other daemon; later ones alternate."""
        ours, theirs = self.registry(), self.registry()
        upload_id = await ours.uploads.start("r")
        await self.patch(theirs, upload_id, b"a", 0)
        await self.patch(ours, upload_id, b"b", 1)
        await self.patch(theirs, upload_id, b"c", 2)
        self.assertEqual(await ours.uploads.size("r", upload_id), 3)
        descriptor = await finish_upload(ours, "r", upload_id, sha256_digest(b"abc"))
        self.assertEqual(descriptor.size, 3)
        consumer = HashingConsumer(keep=True)
        await theirs.blobs.read(sha256_digest(b"abc"), consumer)
        self.assertEqual(consumer.data, b"abc")

    @async_test
    async def test_upload_cancelled_by_another_daemon(self):
        from spectroreg.registry.errors import RegistryError

        ours, theirs = self.registry(), self.registry()
        upload_id = await ours.uploads.start("r")
        await self.patch(ours, upload_id, b"part", 0)
        await theirs.uploads.cancel("r", upload_id)
        for attempt in (ours.uploads.open("r", upload_id, 4),
                        finish_upload(ours, "r", upload_id, sha256_digest(b"part")),
                        ours.uploads.size("r", upload_id)):
            with self.assertRaises(RegistryError) as caught:
                await attempt
            self.assertEqual(caught.exception.code, "BLOB_UPLOAD_UNKNOWN")
        self.assertEqual(self.server.keys(self.bucket), [])
        self.assertEqual(self.server.uploads(self.bucket), [])


def sha256_digest(data):
    from spectroreg.registry.digests import parse_digest

    return parse_digest("sha256:" + hashlib.sha256(data).hexdigest())
