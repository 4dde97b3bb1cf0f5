"""
What the API tests share: a real Site in memory (``treq.testing.StubTreq``)
on the in-memory driver, requests and error checks, blob, image and upload
helpers, and a fake authenticator.
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


def parse(digest):
    from spectroreg.registry.digests import parse_digest

    return parse_digest(digest)
