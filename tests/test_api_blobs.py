"""
Blobs (end-2, end-10): pulls, ranges, deletes, cross-repository mounts, the descriptor cache and redirects,
through a real Site in memory on the in-memory driver.
"""

from twisted.internet import defer

from spectroreg.config.settings import StorageSettings
from tests.support.api import BASE, EMPTY_SHA, APITestCase, parse, sha, sha512
from tests.support.asynctest import async_test


class BlobTests(APITestCase):
    @async_test
    async def test_monolithic_post_and_pull(self):
        data = b"x" * 100000
        response = await self.request("POST", "repo/blobs/uploads/?digest=" + sha(data), data=data)
        self.assertEqual(response.code, 201)
        self.assertEqual(self.header(response, "location"), BASE + "repo/blobs/" + sha(data))
        self.assertEqual(self.header(response, "docker-content-digest"), sha(data))
        response = await self.request("GET", "repo/blobs/" + sha(data))
        self.assertEqual((response.code, response.body), (200, data))
        self.assertEqual(self.header(response, "docker-content-digest"), sha(data))
        self.assertEqual(response.length, len(data))

    @async_test
    async def test_head(self):
        digest = await self.push_blob("repo", b"abc")
        response = await self.request("HEAD", "repo/blobs/" + digest)
        self.assertEqual((response.code, response.body), (200, b""))
        self.assertEqual(self.header(response, "content-length"), "3")
        self.assertEqual(self.header(response, "docker-content-digest"), digest)

    @async_test
    async def test_unknown(self):
        for method in ("GET", "HEAD"):
            response = await self.request(method, "repo/blobs/" + sha(b"nothing"))
            self.assertError(response, 404, "BLOB_UNKNOWN")

    @async_test
    async def test_not_linked_in_other_repository(self):
        digest = await self.push_blob("one", b"private")
        response = await self.request("GET", "two/blobs/" + digest)
        self.assertError(response, 404, "BLOB_UNKNOWN")

    @async_test
    async def test_invalid_digest(self):
        for digest in ["sha256:abc", "nope", "sha256:" + "G" * 64, "md5:" + "a" * 32]:
            response = await self.request("GET", "repo/blobs/" + digest)
            self.assertError(response, 400, "DIGEST_INVALID")

    @async_test
    async def test_sha512(self):
        data = b"sha512 content"
        response = await self.request("POST", "repo/blobs/uploads/?digest=" + sha512(data), data=data)
        self.assertEqual(response.code, 201, response.body)
        response = await self.request("GET", "repo/blobs/" + sha512(data))
        self.assertEqual((response.code, response.body), (200, data))

    @async_test
    async def test_range(self):
        digest = await self.push_blob("repo", b"0123456789")
        table = [("bytes=2-5", b"2345", "bytes 2-5/10"), ("bytes=7-", b"789", "bytes 7-9/10"),
                 ("bytes=-2", b"89", "bytes 8-9/10")]
        for header, expected, content_range in table:
            response = await self.request("GET", "repo/blobs/" + digest, headers={"Range": header})
            self.assertEqual((response.code, response.body), (206, expected), header)
            self.assertEqual(self.header(response, "content-range"), content_range)
        response = await self.request("HEAD", "repo/blobs/" + digest, headers={"Range": "bytes=2-5"})
        self.assertEqual((response.code, self.header(response, "content-length")), (206, "4"))

    @async_test
    async def test_bad_range(self):
        digest = await self.push_blob("repo", b"0123456789")
        for header in ["bytes=10-", "bytes=9-2", "bytes=x"]:
            response = await self.request("GET", "repo/blobs/" + digest, headers={"Range": header})
            self.assertError(response, 416, "SIZE_INVALID")
            self.assertEqual(self.header(response, "content-range"), "bytes */10")

    @async_test
    async def test_delete(self):
        digest = await self.push_blob("repo", b"doomed")
        response = await self.request("DELETE", "repo/blobs/" + digest)
        self.assertEqual(response.code, 202)
        response = await self.request("GET", "repo/blobs/" + digest)
        self.assertError(response, 404, "BLOB_UNKNOWN")
        response = await self.request("DELETE", "repo/blobs/" + digest)
        self.assertError(response, 404, "BLOB_UNKNOWN")

    @async_test
    async def test_empty_blob(self):
        response = await self.request("POST", "repo/blobs/uploads/?digest=" + EMPTY_SHA, data=b"")
        self.assertEqual(response.code, 201, response.body)
        response = await self.request("GET", "repo/blobs/" + EMPTY_SHA)
        self.assertEqual((response.code, response.body), (200, b""))


class MountTests(APITestCase):
    @async_test
    async def test_mount_from(self):
        digest = await self.push_blob("source", b"shared")
        response = await self.request("POST", "target/blobs/uploads/?mount={}&from=source".format(digest))
        self.assertEqual(response.code, 201)
        self.assertEqual(self.header(response, "location"), BASE + "target/blobs/" + digest)
        self.assertEqual(self.header(response, "docker-content-digest"), digest)
        response = await self.request("GET", "target/blobs/" + digest)
        self.assertEqual(response.body, b"shared")

    @async_test
    async def test_mount_without_from(self):
        digest = await self.push_blob("source", b"shared")
        response = await self.request("POST", "target/blobs/uploads/?mount=" + digest)
        self.assertEqual(response.code, 201)

    @async_test
    async def test_mount_missing_starts_upload(self):
        response = await self.request("POST", "target/blobs/uploads/?mount={}&from=source".format(sha(b"none")))
        self.assertEqual(response.code, 202)
        self.assertIsNotNone(self.header(response, "docker-upload-uuid"))

    @async_test
    async def test_mount_from_repository_without_it(self):
        digest = await self.push_blob("elsewhere", b"shared")
        response = await self.request("POST", "target/blobs/uploads/?mount={}&from=source".format(digest))
        self.assertEqual(response.code, 202)

    @async_test
    async def test_mount_invalid_digest(self):
        response = await self.request("POST", "target/blobs/uploads/?mount=bad&from=source")
        self.assertError(response, 400, "DIGEST_INVALID")


class CacheTests(APITestCase):
    storage = StorageSettings(driver="inmemory", delete_enabled=True, blobdescriptor_cache="inmemory")

    @async_test
    async def test_cache_never_answers_for_deleted_blob(self):
        digest = await self.push_blob("repo", b"cached")
        response = await self.request("HEAD", "repo/blobs/" + digest)
        self.assertEqual(response.code, 200)
        self.assertIsNotNone(self.registry.cache.get(parse(digest)))
        await self.request("DELETE", "repo/blobs/" + digest)
        response = await self.request("HEAD", "repo/blobs/" + digest)
        self.assertError(response, 404, "BLOB_UNKNOWN")
        # Data removed behind the registry's back (garbage collection): GET notices.
        digest = await self.push_blob("other", b"collected")
        await self.request("HEAD", "other/blobs/" + digest)
        await self.registry.driver.delete("/docker/registry/v2/blobs/sha256/{0}/{1}".format(
            digest[7:9], digest[7:]))
        response = await self.request("GET", "other/blobs/" + digest)
        self.assertError(response, 404, "BLOB_UNKNOWN")
        self.assertIsNone(self.registry.cache.get(parse(digest)))


class RedirectTests(APITestCase):
    @async_test
    async def test_redirect(self):
        digest = await self.push_blob("repo", b"far away")

        def redirect_url(path, method="GET"):
            return defer.succeed("https://bucket.example/" + path.rsplit("/", 2)[-2] + "?sig=1")

        self.registry.driver.driver.redirect_url = redirect_url
        response = await self.request("GET", "repo/blobs/" + digest)
        self.assertEqual(response.code, 307, response.body)
        self.assertEqual(self.header(response, "location"), "https://bucket.example/{}?sig=1".format(digest[7:]))
        response = await self.request("HEAD", "repo/blobs/" + digest)
        self.assertEqual(response.code, 200)


class RedirectDisabledTests(APITestCase):
    storage = StorageSettings(driver="inmemory", redirect_disable=True)

    @async_test
    async def test_no_redirect(self):
        digest = await self.push_blob("repo", b"near")
        self.registry.driver.driver.redirect_url = lambda path, method="GET": defer.succeed("https://x/")
        response = await self.request("GET", "repo/blobs/" + digest)
        self.assertEqual((response.code, response.body), (200, b"near"))
