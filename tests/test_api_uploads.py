"""
Uploads (end-4 … end-6, end-11, end-13, cancel): monolithic, chunked and resumed, with and without streaming,
through a real Site in memory on the in-memory driver.
"""

import base64
import json
import urllib.parse

from spectroreg.api.testing import make_api_resource, make_root, stub_client
from spectroreg.config.settings import HTTPSettings
from tests.support.api import BASE, APITestCase, sha
from tests.support.asynctest import async_test


class UploadTests(APITestCase):
    @async_test
    async def test_post_answers_202(self):
        response = await self.request("POST", "repo/blobs/uploads/")
        self.assertEqual(response.code, 202)
        location = self.header(response, "location")
        upload_id = self.header(response, "docker-upload-uuid")
        self.assertTrue(location.startswith(BASE + "repo/blobs/uploads/"))
        self.assertTrue(location.endswith(upload_id))
        self.assertEqual(self.header(response, "range"), "0-0")

    @async_test
    async def test_chunked_with_stable_location(self):
        data = bytes(range(256)) * 40
        location = await self.start_upload()
        chunks = [data[:1000], data[1000:5000], data[5000:]]
        offset = 0
        for chunk in chunks:
            response = await self.request("PATCH", None, url=location, data=chunk, headers={
                "Content-Range": "{}-{}".format(offset, offset + len(chunk) - 1),
                "Content-Type": "application/octet-stream"})
            self.assertEqual(response.code, 202, response.body)
            offset += len(chunk)
            self.assertEqual(self.header(response, "range"), "0-{}".format(offset - 1))
            self.assertEqual(self.header(response, "location"), location)
            status = await self.request("GET", None, url=location)
            self.assertEqual(status.code, 204)
            self.assertEqual(self.header(status, "range"), "0-{}".format(offset - 1))
            self.assertEqual(self.header(status, "location"), location)
        response = await self.request("PUT", None, url=location + "?digest=" + sha(data))
        self.assertEqual(response.code, 201, response.body)
        self.assertEqual(self.header(response, "location"), BASE + "repo/blobs/" + sha(data))
        response = await self.request("GET", "repo/blobs/" + sha(data))
        self.assertEqual(response.body, data)
        response = await self.request("GET", None, url=location)
        self.assertError(response, 404, "BLOB_UPLOAD_UNKNOWN")

    @async_test
    async def test_patch_without_content_range(self):
        location = await self.start_upload()
        for chunk in (b"abc", b"def"):
            response = await self.request("PATCH", None, url=location, data=chunk)
            self.assertEqual(response.code, 202)
        self.assertEqual(self.header(response, "range"), "0-5")
        response = await self.request("PUT", None, url=location + "?digest=" + sha(b"abcdef"))
        self.assertEqual(response.code, 201)

    @async_test
    async def test_put_carries_last_chunk(self):
        location = await self.start_upload()
        await self.request("PATCH", None, url=location, data=b"first-")
        response = await self.request("PUT", None, url=location + "?digest=" + sha(b"first-last"), data=b"last",
                                      headers={"Content-Range": "6-9"})
        self.assertEqual(response.code, 201, response.body)
        response = await self.request("GET", "repo/blobs/" + sha(b"first-last"))
        self.assertEqual(response.body, b"first-last")

    @async_test
    async def test_out_of_order_chunk(self):
        location = await self.start_upload()
        await self.request("PATCH", None, url=location, data=b"12345", headers={"Content-Range": "0-4"})
        for content_range, data in [("3-7", b"45678"), ("10-14", b"abcde"), ("0-4", b"12345")]:
            response = await self.request("PATCH", None, url=location, data=data,
                                          headers={"Content-Range": content_range})
            self.assertError(response, 416, "BLOB_UPLOAD_INVALID")
        status = await self.request("GET", None, url=location)
        self.assertEqual(self.header(status, "range"), "0-4")

    @async_test
    async def test_content_range_length_mismatch(self):
        location = await self.start_upload()
        response = await self.request("PATCH", None, url=location, data=b"123", headers={"Content-Range": "0-9"})
        self.assertError(response, 416, "BLOB_UPLOAD_INVALID")

    @async_test
    async def test_digest_mismatch_stores_nothing(self):
        location = await self.start_upload()
        await self.request("PATCH", None, url=location, data=b"actual")
        response = await self.request("PUT", None, url=location + "?digest=" + sha(b"claimed"))
        self.assertError(response, 400, "DIGEST_INVALID")
        for digest in (sha(b"claimed"), sha(b"actual")):
            response = await self.request("GET", "repo/blobs/" + digest)
            self.assertError(response, 404, "BLOB_UNKNOWN")
        blobs = [p for p in self.registry.driver.driver._files if "/blobs/" in p and "repositories" not in p]
        self.assertEqual(blobs, [])
        response = await self.request("POST", "repo/blobs/uploads/?digest=" + sha(b"claimed"), data=b"actual")
        self.assertError(response, 400, "DIGEST_INVALID")
        self.assertNotIn("/_uploads/", "".join(self.registry.driver.driver._files))

    @async_test
    async def test_put_invalid_or_missing_digest(self):
        location = await self.start_upload()
        for suffix in ("", "?digest=sha256:short", "?digest=foo"):
            response = await self.request("PUT", None, url=location + suffix, data=b"x")
            self.assertError(response, 400, "DIGEST_INVALID")
        response = await self.request("POST", "repo/blobs/uploads/?digest=bad", data=b"x")
        self.assertError(response, 400, "DIGEST_INVALID")

    @async_test
    async def test_unknown_upload(self):
        for method, suffix in [("GET", ""), ("PATCH", ""), ("PUT", "?digest=" + sha(b"")), ("DELETE", "")]:
            response = await self.request(method, "repo/blobs/uploads/no-such-upload" + suffix, data=b"")
            self.assertError(response, 404, "BLOB_UPLOAD_UNKNOWN")

    @async_test
    async def test_hostile_upload_ids(self):
        location = await self.start_upload("other")
        upload_id = location.rsplit("/", 1)[1]
        for hostile in ["..", ".", "..%2F..%2Fother%2F_uploads%2F" + upload_id, "a%3Db", "x" * 200]:
            for method, suffix in [("GET", ""), ("PATCH", ""), ("PUT", "?digest=" + sha(b"")), ("DELETE", "")]:
                response = await self.request(method, "repo/blobs/uploads/" + hostile + suffix, data=b"")
                self.assertError(response, 404, "BLOB_UPLOAD_UNKNOWN")

    @async_test
    async def test_upload_of_other_repository(self):
        location = await self.start_upload("one")
        response = await self.request("GET", None, url=location.replace("/one/", "/two/"))
        self.assertError(response, 404, "BLOB_UPLOAD_UNKNOWN")

    @async_test
    async def test_cancel(self):
        location = await self.start_upload()
        await self.request("PATCH", None, url=location, data=b"abc")
        response = await self.request("DELETE", None, url=location)
        self.assertEqual(response.code, 204)
        response = await self.request("GET", None, url=location)
        self.assertError(response, 404, "BLOB_UPLOAD_UNKNOWN")
        self.assertNotIn("/_uploads/", "".join(self.registry.driver.driver._files))

    @async_test
    async def test_existing_blob_uploaded_again(self):
        await self.push_blob("repo", b"same")
        digest = await self.push_blob("repo", b"same")
        response = await self.request("GET", "repo/blobs/" + digest)
        self.assertEqual(response.body, b"same")

    @async_test
    async def test_resumable_from_storage_after_restart(self):
        """Another registry on the same storage (no in-memory hash) completes the upload."""
        location = await self.start_upload()
        await self.request("PATCH", None, url=location, data=b"part one, ")
        other = make_api_resource(type(self.registry)(self.registry.driver, self.settings.storage, reactor=self.clock),
                                  self.settings)
        self.client = stub_client(make_root(other))
        await self.request("PATCH", None, url=location, data=b"part two", headers={"Content-Range": "10-17"})
        response = await self.request("PUT", None, url=location + "?digest=" + sha(b"part one, part two"))
        self.assertEqual(response.code, 201, response.body)

    @async_test
    async def test_upload_layout(self):
        location = await self.start_upload()
        upload_id = location.rsplit("/", 1)[1]
        files = self.registry.driver.driver._files
        prefix = "/docker/registry/v2/repositories/repo/_uploads/" + upload_id
        self.assertEqual(bytes(files[prefix + "/startedat"].data), b"2023-11-14T22:13:20Z")
        # An empty ``data`` from the start, as Distribution starts an upload.
        self.assertEqual(bytes(files[prefix + "/data"].data), b"")
        response = await self.request("GET", None, url=location)
        self.assertEqual((response.code, self.header(response, "range")), (204, "0-0"))
        response = await self.request("PATCH", None, url=location, data=b"abc")
        self.assertEqual(response.code, 202)
        self.assertEqual(bytes(files[prefix + "/data"].data), b"abc")


def _state_fields(url):
    """The name, upload and offset a _state token names (Distribution's format: HMAC, then JSON)."""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    message = json.loads(base64.urlsafe_b64decode(query["_state"][0])[32:])
    return message["Name"], message["UUID"], message["Offset"]


class SecretUploadTests(APITestCase):
    http = HTTPSettings(secret="s3cret")

    @async_test
    async def test_state_required(self):
        location = await self.start_upload()
        self.assertIn("?_state=", location)
        bare = location.split("?", 1)[0]
        for method in ("GET", "PATCH", "DELETE"):
            response = await self.request(method, None, url=bare, data=b"x")
            self.assertError(response, 404, "BLOB_UPLOAD_UNKNOWN")
        response = await self.request("PATCH", None, url=location, data=b"x")
        self.assertEqual(response.code, 202)
        # The token names the upload's size, as Distribution's does, so the
        # URL changes; the first one is still accepted.
        after = self.header(response, "location")
        self.assertEqual(after.split("?", 1)[0], bare)
        self.assertNotEqual(after, location)
        response = await self.request("GET", None, url=location)
        self.assertEqual(response.code, 204)
        # The same upload and size as the PATCH's answer (the token's
        # StartedAt is the time of the answer, in whole seconds).
        status = self.header(response, "location")
        self.assertEqual(status.split("?", 1)[0], bare)
        self.assertEqual(_state_fields(status), _state_fields(after))
        response = await self.request("PUT", None, url=after + "&digest=" + sha(b"x"))
        self.assertEqual(response.code, 201)


class FallbackWithoutStreamingTests(APITestCase):
    """With Twisted's own request class (spooled bodies) every upload still works."""

    def setUp(self):
        APITestCase.setUp(self)
        self.client = stub_client(make_root(self.api), streaming=False)

    @async_test
    async def test_uploads(self):
        data = b"spooled" * 1000
        location = await self.start_upload()
        response = await self.request("PATCH", None, url=location, data=data[:10], headers={"Content-Range": "0-9"})
        self.assertEqual(response.code, 202)
        response = await self.request("PUT", None, url=location + "?digest=" + sha(data), data=data[10:])
        self.assertEqual(response.code, 201, response.body)
        await self.push_blob("repo", b"monolithic")
        await self.push_image("repo", "v1")
