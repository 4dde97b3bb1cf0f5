"""
Tags lists (end-8) and the catalog,
through a real Site in memory on the in-memory driver.
"""

import json


from spectroreg.config.settings import CatalogSettings
from spectroreg.registry import manifests as mf
from tests.support.api import APITestCase
from tests.support.asynctest import async_test


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
