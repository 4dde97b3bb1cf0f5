"""
Every endpoint and rule of the OCI Distribution Spec 1.1 (end-1 … end-13,
upload cancel, catalog) through a real Site in memory
(``treq.testing.StubTreq``) on the in-memory driver.
"""

import hashlib
import json

from twisted.internet import defer, task
from twisted.trial import unittest
from zope.interface import implementer

from spectroreg.api.testing import make_api_resource, make_registry, make_root, make_settings, stub_client
from spectroreg.auth.interfaces import IAuthenticator, TooManyRequests, Unauthorized
from spectroreg.config.settings import CatalogSettings, HTTPSettings, StorageSettings
from spectroreg.registry import manifests as mf
from tests.support.asynctest import async_test

BASE = "http://registry.test/v2/"
EMPTY_SHA = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha512(data):
    return "sha512:" + hashlib.sha512(data).hexdigest()


def descriptor(data, media_type="application/vnd.oci.image.layer.v1.tar", **extra):
    value = {"mediaType": media_type, "digest": sha(data), "size": len(data)}
    value.update(extra)
    return value


def image_manifest(config, layers, media_type=mf.OCI_MANIFEST, config_type="application/vnd.oci.image.config.v1+json",
                   **extra):
    document = {"schemaVersion": 2, "mediaType": media_type,
                "config": descriptor(config, config_type),
                "layers": [descriptor(layer) for layer in layers]}
    document.update(extra)
    return json.dumps(document, sort_keys=True).encode("utf-8")


class APITestCase(unittest.TestCase):
    storage = StorageSettings(driver="inmemory", delete_enabled=True)
    http = HTTPSettings()
    authenticator = None
    catalog = CatalogSettings()

    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(1700000000)
        self.settings = make_settings(storage=self.storage, http=self.http, catalog=self.catalog)
        self.registry = make_registry(self.settings, reactor=self.clock)
        self.api = make_api_resource(self.registry, self.settings, authenticator=self.authenticator)
        self.client = stub_client(make_root(self.api))

    async def request(self, method, path, data=None, headers=None, url=None):
        response = await self.client.request(method, url or (BASE + path), data=data, headers=headers or {},
                                             allow_redirects=False)
        body = await response.content()
        response.body = body
        return response

    def header(self, response, name):
        values = response.headers.getRawHeaders(name)
        return values[0] if values else None

    def assertError(self, response, status, code):
        self.assertEqual(response.code, status, response.body)
        if response.body:
            document = json.loads(response.body)
            self.assertEqual(document["errors"][0]["code"], code)
            self.assertIn("message", document["errors"][0])
            self.assertIn("detail", document["errors"][0])
        self.assertEqual(self.header(response, "docker-distribution-api-version"), "registry/2.0")

    async def push_blob(self, name, data):
        response = await self.request("POST", "{}/blobs/uploads/?digest={}".format(name, sha(data)), data=data)
        self.assertEqual(response.code, 201, response.body)
        return sha(data)

    async def push_image(self, name, tag, layers=(b"layer-one", b"layer-two"), config=b'{"c":1}', **extra):
        for blob in list(layers) + [config]:
            await self.push_blob(name, blob)
        body = image_manifest(config, layers, **extra)
        response = await self.request("PUT", "{}/manifests/{}".format(name, tag), data=body,
                                      headers={"Content-Type": json.loads(body)["mediaType"]})
        self.assertEqual(response.code, 201, response.body)
        return body, sha(body)

    async def start_upload(self, name="repo"):
        response = await self.request("POST", name + "/blobs/uploads/")
        self.assertEqual(response.code, 202, response.body)
        return self.header(response, "location")


class BaseTests(APITestCase):
    @async_test
    async def test_end1(self):
        response = await self.request("GET", "")
        self.assertEqual((response.code, json.loads(response.body)), (200, {}))
        self.assertEqual(self.header(response, "docker-distribution-api-version"), "registry/2.0")
        self.assertEqual(self.header(response, "content-type"), "application/json; charset=utf-8")

    @async_test
    async def test_head_end1(self):
        response = await self.request("HEAD", "")
        self.assertEqual((response.code, response.body), (200, b""))

    @async_test
    async def test_unknown_route(self):
        response = await self.request("GET", "repo/nothing")
        self.assertError(response, 404, "NAME_UNKNOWN")

    @async_test
    async def test_invalid_name(self):
        for path in ["Repo/tags/list", "re..po/manifests/x", "a//b/blobs/" + EMPTY_SHA]:
            response = await self.request("GET", path)
            self.assertError(response, 400, "NAME_INVALID")

    @async_test
    async def test_long_name(self):
        response = await self.request("GET", "a" * 256 + "/tags/list")
        self.assertError(response, 400, "NAME_INVALID")

    @async_test
    async def test_method_not_allowed(self):
        response = await self.request("PUT", "repo/blobs/" + EMPTY_SHA)
        self.assertError(response, 405, "UNSUPPORTED")
        response = await self.request("POST", "")
        self.assertError(response, 405, "UNSUPPORTED")


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


class DeleteDisabledTests(APITestCase):
    storage = StorageSettings(driver="inmemory", delete_enabled=False)

    @async_test
    async def test_deletes_refused(self):
        body, digest = await self.push_image("repo", "v1")
        layer = sha(b"layer-one")
        for path in ["repo/blobs/" + layer, "repo/manifests/" + digest, "repo/manifests/v1"]:
            response = await self.request("DELETE", path)
            self.assertError(response, 405, "UNSUPPORTED")
        response = await self.request("GET", "repo/manifests/v1")
        self.assertEqual(response.code, 200)
        response = await self.request("GET", "repo/blobs/" + layer)
        self.assertEqual(response.code, 200)

    @async_test
    async def test_upload_cancel_still_allowed(self):
        location = await self.start_upload()
        response = await self.request("DELETE", None, url=location)
        self.assertEqual(response.code, 204)


class ReadOnlyTests(APITestCase):
    storage = StorageSettings(driver="inmemory", delete_enabled=True, readonly=True)

    @async_test
    async def test_writes_refused(self):
        writes = [
            ("POST", "repo/blobs/uploads/", None),
            ("POST", "repo/blobs/uploads/?digest=" + sha(b"x"), b"x"),
            ("POST", "repo/blobs/uploads/?mount=" + sha(b"x") + "&from=other", None),
            ("PUT", "repo/manifests/v1", image_manifest(b"c", [])),
            ("DELETE", "repo/manifests/v1", None),
            ("DELETE", "repo/blobs/" + sha(b"x"), None),
            ("PATCH", "repo/blobs/uploads/some-id", b"data"),
            ("PUT", "repo/blobs/uploads/some-id?digest=" + sha(b"x"), b"x"),
            ("DELETE", "repo/blobs/uploads/some-id", None),
        ]
        for method, path, data in writes:
            response = await self.request(method, path, data=data)
            self.assertError(response, 405, "UNSUPPORTED")
        self.assertEqual(self.registry.driver.driver._files, {})

    @async_test
    async def test_reads_work(self):
        response = await self.request("GET", "_catalog")
        self.assertEqual(response.code, 200)


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
        self.assertEqual(self.header(response, "location"), after)
        response = await self.request("PUT", None, url=after + "&digest=" + sha(b"x"))
        self.assertEqual(response.code, 201)


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


class ManifestTests(APITestCase):
    @async_test
    async def test_push_and_pull_by_tag_and_digest(self):
        body, digest = await self.push_image("repo", "v1")
        for reference in ("v1", digest):
            response = await self.request("GET", "repo/manifests/" + reference)
            self.assertEqual((response.code, response.body), (200, body))
            self.assertEqual(self.header(response, "content-type"), mf.OCI_MANIFEST)
            self.assertEqual(self.header(response, "docker-content-digest"), digest)
            response = await self.request("HEAD", "repo/manifests/" + reference)
            self.assertEqual((response.code, response.body), (200, b""))
            self.assertEqual(self.header(response, "content-length"), str(len(body)))
            self.assertEqual(self.header(response, "docker-content-digest"), digest)

    @async_test
    async def test_put_answers(self):
        for blob in (b"l", b"c"):
            await self.push_blob("repo", blob)
        body = image_manifest(b"c", [b"l"])
        response = await self.request("PUT", "repo/manifests/v1", data=body,
                                      headers={"Content-Type": mf.OCI_MANIFEST})
        self.assertEqual(response.code, 201)
        self.assertEqual(self.header(response, "location"), BASE + "repo/manifests/" + sha(body))
        self.assertEqual(self.header(response, "docker-content-digest"), sha(body))
        self.assertIsNone(self.header(response, "oci-subject"))

    @async_test
    async def test_bytes_kept_exactly(self):
        await self.push_blob("repo", b"c")
        body = b'{\n  "schemaVersion": 2,\n  "mediaType": "%s",\n  "config": %s,\n  "layers": []\n}\n\n' % (
            mf.OCI_MANIFEST.encode(), json.dumps(descriptor(b"c", "application/vnd.oci.image.config.v1+json")).encode())
        response = await self.request("PUT", "repo/manifests/" + sha(body), data=body,
                                      headers={"Content-Type": mf.OCI_MANIFEST})
        self.assertEqual(response.code, 201, response.body)
        response = await self.request("GET", "repo/manifests/" + sha(body))
        self.assertEqual(response.body, body)

    @async_test
    async def test_docker_types(self):
        await self.push_blob("repo", b"l")
        await self.push_blob("repo", b"c")
        body = image_manifest(b"c", [b"l"], media_type=mf.DOCKER_MANIFEST,
                              config_type="application/vnd.docker.container.image.v1+json")
        response = await self.request("PUT", "repo/manifests/amd64", data=body,
                                      headers={"Content-Type": mf.DOCKER_MANIFEST})
        self.assertEqual(response.code, 201, response.body)
        child = sha(body)
        listing = json.dumps({"schemaVersion": 2, "mediaType": mf.DOCKER_LIST, "manifests": [
            dict(descriptor(body, mf.DOCKER_MANIFEST), platform={"architecture": "amd64", "os": "linux"})]}).encode()
        response = await self.request("PUT", "repo/manifests/multi", data=listing,
                                      headers={"Content-Type": mf.DOCKER_LIST})
        self.assertEqual(response.code, 201, response.body)
        response = await self.request("GET", "repo/manifests/multi")
        self.assertEqual(self.header(response, "content-type"), mf.DOCKER_LIST)
        response = await self.request("GET", "repo/manifests/" + child)
        self.assertEqual(self.header(response, "content-type"), mf.DOCKER_MANIFEST)

    @async_test
    async def test_oci_index(self):
        _, first = await self.push_image("repo", "a", layers=[b"1"])
        second_body, second = await self.push_image("repo", "b", layers=[b"2"])
        index = json.dumps({"schemaVersion": 2, "mediaType": mf.OCI_INDEX, "manifests": [
            {"mediaType": mf.OCI_MANIFEST, "digest": first, "size": 1},
            {"mediaType": mf.OCI_MANIFEST, "digest": second, "size": len(second_body)}]}).encode()
        response = await self.request("PUT", "repo/manifests/index", data=index,
                                      headers={"Content-Type": mf.OCI_INDEX})
        self.assertEqual(response.code, 201, response.body)
        response = await self.request("GET", "repo/manifests/index")
        self.assertEqual((self.header(response, "content-type"), response.body), (mf.OCI_INDEX, index))

    @async_test
    async def test_index_with_missing_manifest(self):
        index = json.dumps({"schemaVersion": 2, "mediaType": mf.OCI_INDEX, "manifests": [
            {"mediaType": mf.OCI_MANIFEST, "digest": sha(b"absent"), "size": 1}]}).encode()
        response = await self.request("PUT", "repo/manifests/index", data=index,
                                      headers={"Content-Type": mf.OCI_INDEX})
        self.assertError(response, 400, "MANIFEST_BLOB_UNKNOWN")

    @async_test
    async def test_missing_blobs(self):
        await self.push_blob("repo", b"c")
        body = image_manifest(b"c", [b"missing layer"])
        response = await self.request("PUT", "repo/manifests/v1", data=body, headers={"Content-Type": mf.OCI_MANIFEST})
        self.assertError(response, 400, "MANIFEST_BLOB_UNKNOWN")
        response = await self.request("GET", "repo/manifests/v1")
        self.assertError(response, 404, "MANIFEST_UNKNOWN")

    @async_test
    async def test_invalid(self):
        await self.push_blob("repo", b"c")
        table = [
            (b"{not json", mf.OCI_MANIFEST),
            (image_manifest(b"c", []), mf.OCI_INDEX),
            (json.dumps({"schemaVersion": 2, "mediaType": mf.OCI_MANIFEST}).encode(), mf.OCI_MANIFEST),
        ]
        for body, content_type in table:
            response = await self.request("PUT", "repo/manifests/v1", data=body,
                                          headers={"Content-Type": content_type})
            self.assertError(response, 400, "MANIFEST_INVALID")

    @async_test
    async def test_digest_reference_must_match(self):
        await self.push_blob("repo", b"c")
        body = image_manifest(b"c", [])
        response = await self.request("PUT", "repo/manifests/" + sha(b"other"), data=body,
                                      headers={"Content-Type": mf.OCI_MANIFEST})
        self.assertError(response, 400, "DIGEST_INVALID")
        response = await self.request("PUT", "repo/manifests/" + sha(body), data=body,
                                      headers={"Content-Type": mf.OCI_MANIFEST})
        self.assertEqual(response.code, 201)

    @async_test
    async def test_sha512_reference(self):
        await self.push_blob("repo", b"c")
        body = image_manifest(b"c", [])
        response = await self.request("PUT", "repo/manifests/" + sha512(body), data=body,
                                      headers={"Content-Type": mf.OCI_MANIFEST})
        self.assertEqual(response.code, 201, response.body)
        self.assertEqual(self.header(response, "docker-content-digest"), sha512(body))
        response = await self.request("GET", "repo/manifests/" + sha512(body))
        self.assertEqual(response.body, body)

    @async_test
    async def test_unknown(self):
        for reference in ("nope", sha(b"nope")):
            for method in ("GET", "HEAD"):
                response = await self.request(method, "repo/manifests/" + reference)
                self.assertError(response, 404, "MANIFEST_UNKNOWN")

    @async_test
    async def test_invalid_reference(self):
        response = await self.request("GET", "repo/manifests/sha256:zz")
        self.assertError(response, 400, "DIGEST_INVALID")
        response = await self.request("GET", "repo/manifests/-bad-tag")
        self.assertError(response, 404, "MANIFEST_UNKNOWN")
        response = await self.request("PUT", "repo/manifests/-bad-tag", data=b"{}")
        self.assertError(response, 400, "MANIFEST_INVALID")

    @async_test
    async def test_four_mib_accepted_larger_refused(self):
        await self.push_blob("repo", b"c")
        base = json.loads(image_manifest(b"c", []))
        base["annotations"] = {"pad": ""}
        overhead = len(json.dumps(base).encode())
        base["annotations"]["pad"] = "x" * (4 * 1024 * 1024 - overhead)
        body = json.dumps(base).encode()
        self.assertEqual(len(body), 4 * 1024 * 1024)
        response = await self.request("PUT", "repo/manifests/big", data=body, headers={"Content-Type": mf.OCI_MANIFEST})
        self.assertEqual(response.code, 201, response.body[:200])
        base["annotations"]["pad"] += "x"
        response = await self.request("PUT", "repo/manifests/bigger", data=json.dumps(base).encode(),
                                      headers={"Content-Type": mf.OCI_MANIFEST})
        self.assertError(response, 413, "MANIFEST_INVALID")

    @async_test
    async def test_tag_moves(self):
        _, first = await self.push_image("repo", "latest", layers=[b"1"])
        _, second = await self.push_image("repo", "latest", layers=[b"2"])
        response = await self.request("GET", "repo/manifests/latest")
        self.assertEqual(self.header(response, "docker-content-digest"), second)
        response = await self.request("GET", "repo/manifests/" + first)
        self.assertEqual(response.code, 200)

    @async_test
    async def test_delete_by_digest(self):
        _, digest = await self.push_image("repo", "v1")
        await self.push_image("repo", "v2", layers=[b"other"])
        response = await self.request("DELETE", "repo/manifests/" + digest)
        self.assertEqual(response.code, 202)
        for reference in (digest, "v1"):
            response = await self.request("GET", "repo/manifests/" + reference)
            self.assertError(response, 404, "MANIFEST_UNKNOWN")
        response = await self.request("GET", "repo/tags/list")
        self.assertEqual(json.loads(response.body)["tags"], ["v2"])
        response = await self.request("DELETE", "repo/manifests/" + digest)
        self.assertError(response, 404, "MANIFEST_UNKNOWN")

    @async_test
    async def test_delete_invalid_reference(self):
        response = await self.request("DELETE", "repo/manifests/sha256:nothex")
        self.assertError(response, 400, "DIGEST_INVALID")
        response = await self.request("DELETE", "repo/blobs/sha256:nothex")
        self.assertError(response, 400, "DIGEST_INVALID")

    @async_test
    async def test_delete_by_tag_untags(self):
        _, digest = await self.push_image("repo", "v1")
        response = await self.request("DELETE", "repo/manifests/v1")
        self.assertEqual(response.code, 202)
        response = await self.request("GET", "repo/manifests/v1")
        self.assertError(response, 404, "MANIFEST_UNKNOWN")
        response = await self.request("GET", "repo/manifests/" + digest)
        self.assertEqual(response.code, 200)
        response = await self.request("DELETE", "repo/manifests/v1")
        self.assertError(response, 404, "MANIFEST_UNKNOWN")


class TagTests(APITestCase):
    @async_test
    async def test_list_and_paging(self):
        await self.push_image("repo", "c")
        for tag in ("a", "b", "d", "E"):
            body = (await self.request("GET", "repo/manifests/c")).body
            response = await self.request("PUT", "repo/manifests/" + tag, data=body,
                                          headers={"Content-Type": mf.OCI_MANIFEST})
            self.assertEqual(response.code, 201)
        response = await self.request("GET", "repo/tags/list")
        self.assertEqual(json.loads(response.body), {"name": "repo", "tags": ["E", "a", "b", "c", "d"]})
        self.assertIsNone(self.header(response, "link"))
        table = [
            ("?n=2", ["E", "a"], '</v2/repo/tags/list?n=2&last=a>; rel="next"'),
            ("?n=2&last=a", ["b", "c"], '</v2/repo/tags/list?n=2&last=c>; rel="next"'),
            ("?n=2&last=c", ["d"], None),
            ("?n=0", [], None),
            ("?last=b", ["c", "d"], None),
            ("?n=10", ["E", "a", "b", "c", "d"], None),
            ("?n=5", ["E", "a", "b", "c", "d"], None),
        ]
        for query, tags, link in table:
            response = await self.request("GET", "repo/tags/list" + query)
            self.assertEqual(json.loads(response.body)["tags"], tags, query)
            self.assertEqual(self.header(response, "link"), link, query)

    @async_test
    async def test_bad_n(self):
        await self.push_image("repo", "c")
        for query in ("?n=x", "?n=-1"):
            response = await self.request("GET", "repo/tags/list" + query)
            self.assertEqual(response.code, 400)

    @async_test
    async def test_unknown_repository(self):
        response = await self.request("GET", "nothing/tags/list")
        self.assertError(response, 404, "NAME_UNKNOWN")

    @async_test
    async def test_head(self):
        await self.push_image("repo", "c")
        response = await self.request("HEAD", "repo/tags/list")
        self.assertEqual((response.code, response.body), (200, b""))
        self.assertNotEqual(self.header(response, "content-length"), "0")


class CatalogTests(APITestCase):
    catalog = CatalogSettings(maxentries=3)

    @async_test
    async def test_catalog(self):
        for name in ("b", "a/x", "a", "c/d/e", "d"):
            await self.push_image(name, "v1")
        await self.push_blob("only-blobs", b"x")
        await self.start_upload("only-upload")
        response = await self.request("GET", "_catalog")
        self.assertEqual(json.loads(response.body), {"repositories": ["a", "a/x", "b"]})
        self.assertEqual(self.header(response, "link"), '</v2/_catalog?last=b&n=3>; rel="next"')
        response = await self.request("GET", "_catalog?n=2&last=a/x")
        self.assertEqual(json.loads(response.body), {"repositories": ["b", "c/d/e"]})
        response = await self.request("GET", "_catalog?n=100&last=b")
        self.assertEqual(json.loads(response.body), {"repositories": ["c/d/e", "d", "only-blobs"]})
        self.assertIsNone(self.header(response, "link"))
        response = await self.request("GET", "_catalog?n=0")
        self.assertEqual(json.loads(response.body), {"repositories": []})

    @async_test
    async def test_empty(self):
        response = await self.request("GET", "_catalog")
        self.assertEqual(json.loads(response.body), {"repositories": []})


class ReferrerTests(APITestCase):
    async def push_referrer(self, name, subject_body, tag=None, artifact_type=None, config_type=None,
                            annotations=None):
        config = b"{}"
        await self.push_blob(name, config)
        await self.push_blob(name, b"sig")
        extra = {"subject": descriptor(subject_body, mf.OCI_MANIFEST)}
        if artifact_type:
            extra["artifactType"] = artifact_type
        if annotations:
            extra["annotations"] = annotations
        body = image_manifest(config, [b"sig"], config_type=config_type or "application/vnd.oci.empty.v1+json",
                              **extra)
        response = await self.request("PUT", "{}/manifests/{}".format(name, tag or sha(body)), data=body,
                                      headers={"Content-Type": mf.OCI_MANIFEST})
        self.assertEqual(response.code, 201, response.body)
        self.assertEqual(self.header(response, "oci-subject"), sha(subject_body))
        return body

    @async_test
    async def test_referrers(self):
        subject, subject_digest = await self.push_image("repo", "v1")
        signature = await self.push_referrer("repo", subject, artifact_type="application/x-signature",
                                             annotations={"k": "v"})
        sbom = await self.push_referrer("repo", subject, config_type="application/x-sbom")
        response = await self.request("GET", "repo/referrers/" + subject_digest)
        self.assertEqual(response.code, 200)
        self.assertEqual(self.header(response, "content-type"), mf.OCI_INDEX)
        document = json.loads(response.body)
        self.assertEqual((document["schemaVersion"], document["mediaType"]), (2, mf.OCI_INDEX))
        found = {d["digest"]: d for d in document["manifests"]}
        self.assertEqual(set(found), {sha(signature), sha(sbom)})
        self.assertEqual(found[sha(signature)], {"mediaType": mf.OCI_MANIFEST, "digest": sha(signature),
                                                 "size": len(signature), "artifactType": "application/x-signature",
                                                 "annotations": {"k": "v"}})
        self.assertEqual(found[sha(sbom)]["artifactType"], "application/x-sbom")
        self.assertIsNone(self.header(response, "oci-filters-applied"))
        response = await self.request("GET", "repo/referrers/{}?artifactType=application/x-sbom".format(subject_digest))
        self.assertEqual([d["digest"] for d in json.loads(response.body)["manifests"]], [sha(sbom)])
        self.assertEqual(self.header(response, "oci-filters-applied"), "artifactType")

    @async_test
    async def test_dangling_subject(self):
        ghost = b'{"ghost": true}'
        referrer = await self.push_referrer("repo", ghost)
        response = await self.request("GET", "repo/referrers/" + sha(ghost))
        self.assertEqual([d["digest"] for d in json.loads(response.body)["manifests"]], [sha(referrer)])

    @async_test
    async def test_empty_and_unknown(self):
        response = await self.request("GET", "nothing/referrers/" + sha(b"x"))
        self.assertEqual(response.code, 200)
        self.assertEqual(json.loads(response.body)["manifests"], [])

    @async_test
    async def test_invalid_digest(self):
        response = await self.request("GET", "repo/referrers/sha256:bad")
        self.assertError(response, 400, "DIGEST_INVALID")

    @async_test
    async def test_deleted_referrer_leaves(self):
        subject, subject_digest = await self.push_image("repo", "v1")
        referrer = await self.push_referrer("repo", subject)
        response = await self.request("DELETE", "repo/manifests/" + sha(referrer))
        self.assertEqual(response.code, 202)
        response = await self.request("GET", "repo/referrers/" + subject_digest)
        self.assertEqual(json.loads(response.body)["manifests"], [])

    @async_test
    async def test_rebuilt_when_index_missing(self):
        """
        A tree written by Distribution has no referrers index: a GET answers
        from the revisions without writing; the next push builds the index.
        """
        subject, subject_digest = await self.push_image("repo", "v1")
        referrer = await self.push_referrer("repo", subject)
        await self.registry.driver.delete("/docker/registry/v2/repositories/repo/_referrers")
        files = dict(self.registry.driver.driver._files)
        response = await self.request("GET", "repo/referrers/" + subject_digest)
        self.assertEqual([d["digest"] for d in json.loads(response.body)["manifests"]], [sha(referrer)])
        self.assertEqual(self.registry.driver.driver._files, files)
        await self.push_image("repo", "v2", layers=(b"another",))
        self.assertIn("/docker/registry/v2/repositories/repo/_referrers/complete", self.registry.driver.driver._files)
        response = await self.request("GET", "repo/referrers/" + subject_digest)
        self.assertEqual([d["digest"] for d in json.loads(response.body)["manifests"]], [sha(referrer)])


class URLTests(APITestCase):
    @async_test
    async def test_from_request_with_forwarded_headers(self):
        response = await self.request("POST", "repo/blobs/uploads/", headers={
            "X-Forwarded-Proto": "https", "X-Forwarded-Host": "public.example:8443"})
        self.assertTrue(self.header(response, "location").startswith("https://public.example:8443/v2/repo/"))
        response = await self.request("POST", "repo/blobs/uploads/", headers={
            "Forwarded": 'for=1.2.3.4;proto=https;host="f.example"'})
        self.assertTrue(self.header(response, "location").startswith("https://f.example/v2/repo/"))
        response = await self.request("POST", "repo/blobs/uploads/", headers={
            "X-Forwarded-Proto": "https, http", "Forwarded": "proto=http", "X-Forwarded-Host": "a.example, b",
            "X-Forwarded-Port": "444"})
        self.assertTrue(self.header(response, "location").startswith("https://a.example:444/v2/repo/"))
        response = await self.request("POST", "repo/blobs/uploads/")
        self.assertTrue(self.header(response, "location").startswith("http://registry.test/v2/repo/"))


class HostURLTests(APITestCase):
    http = HTTPSettings(host="https://registry.example.com:5443/")

    @async_test
    async def test_absolute_from_host(self):
        response = await self.request("POST", "repo/blobs/uploads/")
        self.assertTrue(self.header(response, "location").startswith("https://registry.example.com:5443/v2/repo/"))


class RelativeURLTests(APITestCase):
    http = HTTPSettings(relativeurls=True)

    @async_test
    async def test_relative(self):
        response = await self.request("POST", "repo/blobs/uploads/")
        location = self.header(response, "location")
        self.assertTrue(location.startswith("/v2/repo/blobs/uploads/"), location)
        response = await self.request("PATCH", None, url="http://registry.test" + location, data=b"ab")
        self.assertEqual(response.code, 202)

    @async_test
    async def test_relative_under_prefix(self):
        self.client = stub_client(make_root(self.api, prefix=[b"pre", b"fix"]))
        response = await self.request("POST", None, url="http://registry.test/pre/fix/v2/repo/blobs/uploads/")
        self.assertTrue(self.header(response, "location").startswith("/pre/fix/v2/repo/blobs/uploads/"))


@implementer(IAuthenticator)
class FakeAuthenticator:
    realm = "test-realm"

    def __init__(self):
        self.calls = []
        self.throttled = False

    def challenge(self):
        return [("WWW-Authenticate", 'Basic realm="test-realm"')]

    def authenticate(self, authorization, client):
        self.calls.append((authorization, client))
        if self.throttled:
            return defer.fail(TooManyRequests(30))
        if authorization == b"Basic good":
            return defer.succeed("alice")
        return defer.fail(Unauthorized())


class AuthTests(APITestCase):
    def setUp(self):
        self.authenticator = FakeAuthenticator()
        APITestCase.setUp(self)

    @async_test
    async def test_challenge(self):
        for path in ["", "repo/tags/list", "_catalog", "repo/blobs/" + EMPTY_SHA]:
            response = await self.request("GET", path)
            self.assertError(response, 401, "UNAUTHORIZED")
            self.assertEqual(self.header(response, "www-authenticate"), 'Basic realm="test-realm"')
        response = await self.request("GET", "", headers={"Authorization": "Basic good"})
        self.assertEqual(response.code, 200)

    @async_test
    async def test_too_many(self):
        self.authenticator.throttled = True
        response = await self.request("GET", "")
        self.assertError(response, 429, "TOOMANYREQUESTS")
        self.assertEqual(self.header(response, "retry-after"), "30")

    @async_test
    async def test_nothing_stored_before_authentication(self):
        good = {"Authorization": "Basic good"}
        response = await self.request("POST", "repo/blobs/uploads/", headers=good)
        location = self.header(response, "location")
        before = dict(self.registry.driver.driver._files)
        for method, url in [("POST", BASE + "repo/blobs/uploads/?digest=" + sha(b"evil")),
                            ("PATCH", location), ("PUT", location + "?digest=" + sha(b"evil"))]:
            response = await self.request(method, None, url=url, data=b"evil")
            self.assertError(response, 401, "UNAUTHORIZED")
        self.assertEqual(set(self.registry.driver.driver._files), set(before))
        self.assertEqual([bytes(before[p].data) for p in before if p.endswith("/data")], [b""])
        response = await self.request("PATCH", None, url=location, data=b"good", headers=good)
        self.assertEqual(response.code, 202)

    @async_test
    async def test_authenticated_once_per_request(self):
        good = {"Authorization": "Basic good"}
        await self.request("POST", "repo/blobs/uploads/?digest=" + sha(b"x"), data=b"x", headers=good)
        self.assertEqual(len(self.authenticator.calls), 1)
        self.assertEqual(self.authenticator.calls[0], (b"Basic good", "127.0.0.1"))


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


def parse(digest):
    from spectroreg.registry.digests import parse_digest

    return parse_digest(digest)


class InternalErrorTests(APITestCase):
    @async_test
    async def test_unexpected_exception_is_500_and_logged(self):
        async def broken(*args, **kwargs):
            raise RuntimeError("boom")

        self.registry.catalog = broken
        response = await self.request("GET", "_catalog")
        self.assertError(response, 500, "UNKNOWN")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


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


class ClientMistakesTests(APITestCase):
    """Whatever a client sends, the answer is never a 500."""

    @async_test
    async def test_no_500(self):
        await self.push_image("repo", "v1")
        location = await self.start_upload()
        upload = location.split("/v2/", 1)[1]
        nested = b"[" * 100000 + b"]" * 100000
        cases = [
            ("GET", "repo/blobs/" + EMPTY_SHA, None, {"Range": "bytes=abc"}),
            ("GET", "repo/blobs/" + EMPTY_SHA, None, {"Range": "bytes=99999999999999999999-"}),
            ("PATCH", upload, b"x", {"Content-Range": "bytes=abc"}),
            ("PATCH", upload, b"x", {"Content-Range": "5-1"}),
            ("PUT", upload + "?digest=", b"x", {}),
            ("PUT", upload + "?digest=sha256:" + "0" * 64 + "&digest=x", b"", {}),
            ("GET", "repo/tags/list?n=abc", None, {}),
            ("GET", "repo/tags/list?n=99999999999999999999999", None, {}),
            ("GET", "_catalog?n=-5", None, {}),
            ("GET", "_catalog?last=%ff%fe", None, {}),
            ("POST", "repo/blobs/uploads/?mount=&from=", None, {}),
            ("POST", "repo/blobs/uploads/?mount=" + EMPTY_SHA + "&from=NOT..VALID", None, {}),
            ("POST", "repo/blobs/uploads/?digest=", b"x", {}),
            ("PUT", "repo/manifests/v2", nested, {"Content-Type": mf.OCI_MANIFEST}),
            ("PUT", "repo/manifests/v2", b"\x00\xff" * 10, {"Content-Type": mf.OCI_MANIFEST}),
            ("PUT", "repo/manifests/v2", b'{"schemaVersion": 2, "config": 5}', {}),
            ("PUT", "repo/manifests/v2", b'{"schemaVersion": 2, "manifests": [{"size": 1e400}]}',
             {"Content-Type": mf.OCI_INDEX}),
            ("PUT", "repo/manifests/v2", b'{"schemaVersion": 2, "mediaType": 7}', {}),
            ("GET", "repo/referrers/" + EMPTY_SHA + "?artifactType=%00", None, {}),
            ("GET", "%ff%fe/tags/list", None, {}),
            ("GET", "repo/manifests/%ff", None, {}),
            ("GET", "repo/blobs/uploads/%ff", None, {}),
            ("OPTIONS", "repo/manifests/v1", None, {}),
            ("TRACE", "", None, {}),
        ]
        for method, path, data, headers in cases:
            response = await self.request(method, path, data=data, headers=headers)
            self.assertLess(response.code, 500, (method, path, response.body[:300]))
            if response.code >= 400 and method != "HEAD":
                self.assertIn(b'"errors"', response.body, (method, path))


class InterfaceTests(unittest.TestCase):
    def test_resource(self):
        from twisted.web.resource import IResource
        from zope.interface.verify import verifyObject

        settings = make_settings()
        api = make_api_resource(make_registry(settings), settings)
        self.assertTrue(verifyObject(IResource, api))

    def test_request_factory(self):
        from twisted.web.iweb import IRequest
        from twisted.web.server import Request

        from spectroreg.api import RegistryRequest

        self.assertTrue(issubclass(RegistryRequest, Request))
        self.assertTrue(IRequest.implementedBy(RegistryRequest))

    def test_hashing_consumer(self):
        import hashlib

        from twisted.internet.interfaces import IConsumer
        from zope.interface.verify import verifyObject

        from spectroreg.registry.uploads import HashingConsumer

        self.assertTrue(verifyObject(IConsumer, HashingConsumer(hashlib.sha256())))
