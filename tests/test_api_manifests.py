"""
Manifests (end-3, end-7, end-9) and referrers (end-12),
through a real Site in memory on the in-memory driver.
"""

import json


from spectroreg.registry import manifests as mf
from tests.support.api import BASE, APITestCase, descriptor, image_manifest, sha, sha512
from tests.support.asynctest import async_test


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
