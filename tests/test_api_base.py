"""
The base endpoint (end-1), routing, URLs, authentication, read-only and delete-disabled registries, client mistakes and internal errors,
through a real Site in memory on the in-memory driver.
"""

import json

from twisted.trial import unittest

from spectroreg.api.testing import make_api_resource, make_registry, make_root, make_settings, stub_client
from spectroreg.config.settings import HTTPSettings, StorageSettings
from spectroreg.registry import manifests as mf
from tests.support.api import BASE, EMPTY_SHA, APITestCase, FakeAuthenticator, image_manifest, sha
from tests.support.asynctest import async_test


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


class InternalErrorTests(APITestCase):
    @async_test
    async def test_unexpected_exception_is_500_and_logged(self):
        async def broken(*args, **kwargs):
            raise RuntimeError("boom")

        self.registry.catalog.names = broken
        response = await self.request("GET", "_catalog")
        self.assertError(response, 500, "UNKNOWN")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


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
