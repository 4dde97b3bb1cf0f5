"""
Pure registry and API logic, table-tested: names, tags, digests, routes,
errors, layout paths, manifests, ranges, URLs, and the reading of client
input (decimals, headers, hosts) (the caches: test_registry_cache).
"""

import base64
import calendar
import hashlib
import hmac
import json

from twisted.internet.address import IPv4Address
from twisted.trial import unittest
from twisted.web.http_headers import Headers

from spectroreg.api import routes
from spectroreg.api.ranges import RangeNotSatisfiable, parse_content_range, parse_range
from spectroreg.api.urls import check_upload_state, read_upload_state, upload_state
from spectroreg.web.urls import URLBuilder
from spectroreg.registry import manifests as mf
from spectroreg.registry import paths
from spectroreg.registry.digests import digest_of, parse_digest
from spectroreg.api.errors import CODES, APIError, from_registry_error
from spectroreg.registry.errors import ManifestTooLarge, RegistryError, UploadOffsetMismatch
from spectroreg.registry.names import check_name, is_valid_name, is_valid_tag, is_valid_upload_id
from spectroreg.web.headers import (MalformedHeader, decode_header, header_text, header_text_or_none, is_host,
                                    is_scheme, is_valid_host_header)
from spectroreg.web.numbers import INT64_MAX, parse_decimal

SHA = "sha256:" + "a" * 64
SHA512 = "sha512:" + "b" * 128


class NameTests(unittest.SynchronousTestCase):
    def test_valid(self):
        for name in ["a", "foo", "foo/bar", "a0/b1/c2", "foo.bar", "foo_bar", "foo__bar", "foo-bar",
                     "foo---bar", "library/ubuntu", "a/b/c/d/e", "blobs/manifests", "x" * 255]:
            self.assertTrue(is_valid_name(name), name)
            self.assertEqual(check_name(name), name)

    def test_invalid(self):
        for name in ["", "Foo", "foo/", "/foo", "foo//bar", "foo..bar", "foo___bar", "-foo", "foo-",
                     "foo.", ".foo", "foo bar", "foo:bar", "é", "x" * 256, "a/" * 127 + "bb"]:
            self.assertFalse(is_valid_name(name), name)
            with self.assertRaises(RegistryError) as caught:
                check_name(name)
            self.assertEqual(caught.exception.code, "NAME_INVALID")
            self.assertEqual(from_registry_error(caught.exception).status, 400)

    def test_tags(self):
        for tag in ["latest", "v1.0", "_x", "A-b_c.d", "a" * 128, "0"]:
            self.assertTrue(is_valid_tag(tag), tag)
        for tag in ["", ".x", "-x", "a" * 129, "a:b", "a/b", "a b", "é"]:
            self.assertFalse(is_valid_tag(tag), tag)


class DigestTests(unittest.SynchronousTestCase):
    def test_valid(self):
        for text in [SHA, SHA512]:
            digest = parse_digest(text)
            self.assertEqual(str(digest), text)
        self.assertEqual(parse_digest(SHA.encode("ascii")), parse_digest(SHA))

    def test_invalid(self):
        cases = [
            "", "sha256", "sha256:", ":" + "a" * 64, "sha256:" + "a" * 63, "sha256:" + "a" * 65,
            "sha256:" + "A" * 64, "sha512:" + "a" * 64, "sha256:" + "g" * 64, "SHA256:" + "a" * 64,
            "md5:" + "a" * 32, "sha384:" + "a" * 96, "sha256:%%%", "sha256:a b", b"\xff:\xff",
        ]
        for text in cases:
            with self.assertRaises(RegistryError) as caught:
                parse_digest(text)
            self.assertEqual((caught.exception.code, from_registry_error(caught.exception).status), ("DIGEST_INVALID", 400), text)

    def test_unknown_algorithm_says_so(self):
        with self.assertRaises(RegistryError) as caught:
            parse_digest("md5:" + "a" * 32)
        self.assertIn("unsupported", caught.exception.detail)

    def test_digest_of(self):
        self.assertEqual(str(digest_of(b"")),
                         "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        self.assertEqual(digest_of(b"x", "sha512").algorithm, "sha512")


class RouteTests(unittest.SynchronousTestCase):
    def test_table(self):
        table = [
            ("", routes.Route(routes.BASE)),
            ("_catalog", routes.Route(routes.CATALOG)),
            ("foo/tags/list", routes.Route(routes.TAGS, "foo")),
            ("a/b/c/tags/list", routes.Route(routes.TAGS, "a/b/c")),
            ("foo/manifests/latest", routes.Route(routes.MANIFEST, "foo", "latest")),
            ("foo/manifests/" + SHA, routes.Route(routes.MANIFEST, "foo", SHA)),
            ("foo/blobs/" + SHA, routes.Route(routes.BLOB, "foo", SHA)),
            ("foo/blobs/uploads/", routes.Route(routes.UPLOAD_START, "foo")),
            ("foo/blobs/uploads", routes.Route(routes.UPLOAD_START, "foo")),
            ("foo/blobs/uploads/abc-123", routes.Route(routes.UPLOAD, "foo", "abc-123")),
            ("foo/referrers/" + SHA, routes.Route(routes.REFERRERS, "foo", SHA)),
            # Names holding the route words are parsed from the right.
            ("blobs/manifests/x", routes.Route(routes.MANIFEST, "blobs", "x")),
            ("a/blobs/b/manifests/v1", routes.Route(routes.MANIFEST, "a/blobs/b", "v1")),
            ("a/manifests/b/blobs/" + SHA, routes.Route(routes.BLOB, "a/manifests/b", SHA)),
            ("tags/list/tags/list", routes.Route(routes.TAGS, "tags/list")),
            ("a/blobs/uploads/b/blobs/uploads/", routes.Route(routes.UPLOAD_START, "a/blobs/uploads/b")),
            ("foo", None),
            ("foo/bar", None),
            ("foo/unknown/x", None),
        ]
        for path, expected in table:
            self.assertEqual(routes.match(path.split("/") if path else []), expected, path)

    def test_invalid_names(self):
        for path in ["Foo/manifests/x", "foo//bar/tags/list", "-x/blobs/uploads/", "x" * 256 + "/tags/list"]:
            with self.assertRaises(RegistryError) as caught:
                routes.match(path.split("/"))
            self.assertEqual(caught.exception.code, "NAME_INVALID", path)

    def test_methods(self):
        self.assertEqual(set(routes.METHODS), {routes.BASE, routes.CATALOG, routes.TAGS, routes.MANIFEST,
                                               routes.BLOB, routes.UPLOAD_START, routes.UPLOAD,
                                               routes.REFERRERS})
        self.assertIn("HEAD", routes.METHODS[routes.BLOB])
        self.assertIn("HEAD", routes.METHODS[routes.MANIFEST])
        self.assertNotIn("PUT", routes.METHODS[routes.BLOB])


class ErrorTests(unittest.SynchronousTestCase):
    def test_codes(self):
        expected = {
            "BLOB_UNKNOWN": 404, "BLOB_UPLOAD_INVALID": 400, "BLOB_UPLOAD_UNKNOWN": 404,
            "DIGEST_INVALID": 400, "MANIFEST_BLOB_UNKNOWN": 400, "MANIFEST_INVALID": 400,
            "MANIFEST_UNKNOWN": 404, "NAME_INVALID": 400, "NAME_UNKNOWN": 404, "SIZE_INVALID": 400,
            "UNAUTHORIZED": 401, "DENIED": 403, "UNSUPPORTED": 405, "TOOMANYREQUESTS": 429,
        }
        for code, status in expected.items():
            self.assertEqual(CODES[code][1], status, code)
            error = from_registry_error(RegistryError(code, detail="d"))
            self.assertEqual((error.status, error.headers), (status, ()), code)
            document = json.loads(error.body())
            self.assertEqual(document, {"errors": [{"code": code, "message": CODES[code][0], "detail": "d"}]})

    def test_status_override(self):
        error = APIError("BLOB_UPLOAD_INVALID", status=416, headers=[("Range", "0-1")])
        self.assertEqual((error.status, error.headers), (416, (("Range", "0-1"),)))

    def test_every_code_raised_has_an_answer(self):
        # The registry raises codes; the API's table answers them: none may be missing.
        import os
        import re

        import spectroreg

        root = os.path.dirname(spectroreg.__file__)
        raised = set()
        for directory, _, files in os.walk(root):
            for name in files:
                if name.endswith(".py"):
                    with open(os.path.join(directory, name), encoding="utf-8") as source:
                        raised.update(re.findall(r'(?:RegistryError|APIError|__init__)\(\s*"([A-Z_]+)"', source.read()))
        self.assertIn("BLOB_UPLOAD_INVALID", raised)
        self.assertEqual(sorted(raised - set(CODES)), [])

    def test_domain_errors_carry_no_http(self):
        # The registry layer decides codes and details; statuses and headers
        # are the API's (spectroreg.api.errors).
        error = RegistryError("BLOB_UNKNOWN", detail="d")
        self.assertEqual((error.code, error.detail), ("BLOB_UNKNOWN", "d"))
        for attribute in ("status", "headers", "body"):
            self.assertFalse(hasattr(error, attribute), attribute)

    def test_typed_domain_errors(self):
        cases = [
            (UploadOffsetMismatch(5, 3), 416, "BLOB_UPLOAD_INVALID", (("Range", "0-2"),),
             "chunk starts at 5, upload has 3 bytes"),
            (UploadOffsetMismatch(5, 0), 416, "BLOB_UPLOAD_INVALID", (("Range", "0-0"),),
             "chunk starts at 5, upload has 0 bytes"),
            (ManifestTooLarge(), 413, "MANIFEST_INVALID", (), "manifest exceeds 4 MiB"),
        ]
        for error, status, code, headers, detail in cases:
            self.assertIsInstance(error, RegistryError)
            answer = from_registry_error(error)
            self.assertEqual((answer.status, answer.code, answer.headers, answer.detail),
                             (status, code, headers, detail))
            self.assertEqual(answer.message, CODES[code][0])


class PathTests(unittest.SynchronousTestCase):
    def test_layout(self):
        digest = parse_digest("sha256:" + "ab" + "c" * 62)
        hexa = digest.hex
        root = "/docker/registry/v2"
        table = [
            (paths.blob_data(digest), root + "/blobs/sha256/ab/" + hexa + "/data"),
            (paths.layer_link("a/b", digest), root + "/repositories/a/b/_layers/sha256/" + hexa + "/link"),
            (paths.revision_link("a/b", digest),
             root + "/repositories/a/b/_manifests/revisions/sha256/" + hexa + "/link"),
            (paths.tag_current_link("a/b", "v1"), root + "/repositories/a/b/_manifests/tags/v1/current/link"),
            (paths.tag_index_link("a/b", "v1", digest),
             root + "/repositories/a/b/_manifests/tags/v1/index/sha256/" + hexa + "/link"),
            (paths.upload_data("a/b", "u-1"), root + "/repositories/a/b/_uploads/u-1/data"),
            (paths.upload_startedat("a/b", "u-1"), root + "/repositories/a/b/_uploads/u-1/startedat"),
            (paths.referrers_complete("a/b"), root + "/repositories/a/b/_referrers/complete"),
        ]
        for actual, expected in table:
            self.assertEqual(actual, expected)


def _desc(media_type="application/vnd.oci.image.layer.v1.tar", digest=SHA, size=1, **extra):
    value = {"mediaType": media_type, "digest": digest, "size": size}
    value.update(extra)
    return value


def _image(media_type=mf.OCI_MANIFEST, **extra):
    document = {"schemaVersion": 2, "config": _desc("application/vnd.oci.image.config.v1+json"),
                "layers": [_desc()]}
    if media_type:
        document["mediaType"] = media_type
    document.update(extra)
    return json.dumps(document).encode("utf-8")


def _index(media_type=mf.OCI_INDEX, **extra):
    document = {"schemaVersion": 2, "manifests": [_desc(mf.OCI_MANIFEST, SHA512)]}
    if media_type:
        document["mediaType"] = media_type
    document.update(extra)
    return json.dumps(document).encode("utf-8")


class ManifestTests(unittest.SynchronousTestCase):
    def test_types(self):
        table = [
            (_image(), None, mf.OCI_MANIFEST),
            (_image(None), mf.OCI_MANIFEST, mf.OCI_MANIFEST),
            (_image(None), None, mf.OCI_MANIFEST),
            (_image(mf.DOCKER_MANIFEST), mf.DOCKER_MANIFEST, mf.DOCKER_MANIFEST),
            (_index(), mf.OCI_INDEX, mf.OCI_INDEX),
            (_index(None), None, mf.OCI_INDEX),
            (_index(mf.DOCKER_LIST), "application/vnd.docker.distribution.manifest.list.v2+json; charset=x",
             mf.DOCKER_LIST),
        ]
        for body, content_type, expected in table:
            self.assertEqual(mf.parse_manifest(body, content_type).media_type, expected)
            self.assertEqual(mf.media_type_of(body), expected)

    def test_served_as_validated(self):
        """The type a body is validated as is the type it is served with."""
        both = {"config": _desc("application/vnd.oci.image.config.v1+json"), "layers": [_desc()],
                "manifests": [_desc(mf.OCI_MANIFEST, SHA512)]}
        table = [
            (_index(None, manifests=[]), mf.OCI_INDEX, mf.OCI_INDEX),
            (_image(None, manifests=None), None, mf.OCI_MANIFEST),
            (_image(None, annotations=None, subject=None, artifactType=None), mf.OCI_MANIFEST, mf.OCI_MANIFEST),
            (_image(layers=[_desc(data="aGk=", urls=None, annotations={"a": "b"})]), None, mf.OCI_MANIFEST),
            (_index(manifests=[_desc(mf.OCI_MANIFEST, platform={
                "architecture": "arm64", "os": "linux", "os.version": "1", "os.features": ["a"],
                "variant": "v8", "features": []})]), None, mf.OCI_INDEX),
            (_index(mf.DOCKER_LIST, manifests=[_desc(mf.DOCKER_MANIFEST, platform=None)]), mf.DOCKER_LIST,
             mf.DOCKER_LIST),
        ]
        for body, content_type, expected in table:
            self.assertEqual(mf.parse_manifest(body, content_type).media_type, expected, body)
            self.assertEqual(mf.media_type_of(body), expected, body)
        # Refused, whatever the Content-Type: both an image and an index.
        for media_type in (None, mf.OCI_MANIFEST, mf.OCI_INDEX, mf.DOCKER_MANIFEST, mf.DOCKER_LIST):
            document = dict(both, schemaVersion=2)
            if media_type:
                document["mediaType"] = media_type
            for content_type in (None, mf.OCI_MANIFEST, mf.OCI_INDEX, media_type):
                with self.assertRaises(RegistryError, msg=(media_type, content_type)):
                    mf.parse_manifest(json.dumps(document).encode(), content_type)

    def test_strict_json_and_types(self):
        nan = float("nan")
        table = [
            _image(annotations={"x": nan}),
            _image(annotations={"x": float("inf")}),
            _image(annotations={"x": -float("inf")}),
            _image(annotations={"x": {"y": 1}}),
            _image(annotations={"x": 1}),
            _image(annotations={"x": None}),
            _image(annotations={"x": ["y"]}),
            _image(annotations=["x"]),
            _image(annotations="x"),
            _image(layers=[_desc(annotations={"x": 1})]),
            _image(layers=[_desc(annotations={"x": nan})]),
            _image(layers=[_desc(size=2 ** 63)]),
            _image(layers=[_desc(size=1.0)]),
            _image(layers=[_desc(size=True)]),
            _image(layers=[_desc(size=None)]),
            _image(layers=[_desc(size=nan)]),
            _image(layers=[_desc(digest=SHA + "\n")]),
            _image(layers=[_desc(digest=None)]),
            _image(layers=[_desc(media_type=None)]),
            _image(layers=[_desc(media_type=5)]),
            _image(layers=[_desc(media_type="")]),
            _image(layers=[_desc(urls="http://x")]),
            _image(layers=[_desc(urls=[1])]),
            _image(layers=[_desc(data="not base64!")]),
            _image(layers=[_desc(data=5)]),
            _image(layers=[_desc(artifactType=5)]),
            _image(config=_desc(platform="linux")),
            _image(layers=["x"]),
            _image(layers=None, mediaType=mf.DOCKER_MANIFEST),
            _image(schemaVersion=2.0),
            _image(schemaVersion=True),
            _image(schemaVersion="2"),
            _image(mediaType=5),
            _image(artifactType=5),
            _image(artifactType=""),
            _image(subject=_desc(mf.OCI_MANIFEST, SHA512, annotations={"x": nan})),
            _image(subject="x"),
            _index(manifests=[_desc(mf.OCI_MANIFEST, platform={"architecture": 1, "os": "linux"})]),
            _index(manifests=[_desc(mf.OCI_MANIFEST, platform={"architecture": "a", "os": None or 5})]),
            _index(manifests=[_desc(mf.OCI_MANIFEST, platform={"os.features": "x"})]),
            _index(manifests=[_desc(mf.OCI_MANIFEST, platform={"features": [1]})]),
            _index(manifests=[_desc(mf.OCI_MANIFEST, platform={"variant": {}})]),
            _index(manifests=[_desc(mf.OCI_MANIFEST, platform=[])]),
            _index(manifests="x"),
            _index(mf.DOCKER_LIST, manifests=[_desc(mf.DOCKER_MANIFEST, platform={"os.version": 1})]),
            _index(annotations={"x": 1}),
            _index(config=_desc()),
            _index(layers=[]),
            _image(manifests=[]),
            _image(mf.DOCKER_MANIFEST, manifests=[]),
            _index(mf.DOCKER_LIST, layers=[]),
            b'{"schemaVersion": 2, "config": {"mediaType": "a/b", "digest": "' + SHA.encode()
            + b'", "size": 1e400}, "layers": []}',
            b'{"schemaVersion": 2, "config": {"mediaType": "a/b", "digest": "' + SHA.encode()
            + b'", "size": 1}, "layers": [], "x": -Infinity}',
            b'{"schemaVersion": 2, "x": NaN, "manifests": []}',
            b'{"schemaVersion": 2, "manifests": []}\x00',
        ]
        for body in table:
            with self.assertRaises(RegistryError, msg=body) as caught:
                mf.parse_manifest(body)
            self.assertEqual(caught.exception.code, "MANIFEST_INVALID", body)

    def test_content_type_must_agree(self):
        table = [
            (_image(None), mf.OCI_INDEX),
            (_index(None), mf.OCI_MANIFEST),
            (_index(None), mf.DOCKER_LIST),
            (_image(mf.DOCKER_MANIFEST), mf.OCI_MANIFEST),
            (_image(), mf.DOCKER_MANIFEST),
            (_index(mf.DOCKER_LIST), mf.OCI_INDEX),
            (_index(), mf.DOCKER_LIST),
        ]
        for body, content_type in table:
            with self.assertRaises(RegistryError, msg=(body, content_type)):
                mf.parse_manifest(body, content_type)

    def test_references(self):
        manifest = mf.parse_manifest(_image(layers=[_desc(size=5), _desc(digest=SHA512, urls=["http://x"])]))
        self.assertEqual([str(d.digest) for d in manifest.references()], [SHA, SHA])
        self.assertEqual(manifest.artifact_type, "application/vnd.oci.image.config.v1+json")
        index = mf.parse_manifest(_index())
        self.assertEqual([str(d.digest) for d in index.manifests], [SHA512])
        self.assertEqual(index.references(), [])

    def test_subject_and_artifact_type(self):
        manifest = mf.parse_manifest(_image(subject=_desc(mf.OCI_MANIFEST, SHA512), artifactType="x/y",
                                            annotations={"a": "b"}))
        self.assertEqual(str(manifest.subject.digest), SHA512)
        self.assertEqual(manifest.artifact_type, "x/y")
        self.assertEqual(manifest.annotations, {"a": "b"})

    def test_invalid(self):
        table = [
            (b"not json", None),
            (b"[]", None),
            (b"\xff\xfe", None),
            (_image(), mf.OCI_INDEX),
            (_image("application/x-unknown"), None),
            (_image(None), "application/x-unknown"),
            (_image(mf.DOCKER_MANIFEST, artifactType="x"), None),
            (_image(subject={"digest": SHA}), None),
            (_image(config=None), None),
            (_image(layers="x"), None),
            (_image(layers=[_desc(digest="sha256:bad")]), None),
            (_image(layers=[_desc(size=-1)]), None),
            (_image(layers=[_desc(size="1")]), None),
            (_image(layers=[{"digest": SHA, "size": 1}]), None),
            (_index(manifests=None), None),
            (_image(schemaVersion=1), None),
            (_image(None), mf.DOCKER_MANIFEST),
            (json.dumps({"schemaVersion": 2, "mediaType": mf.DOCKER_MANIFEST,
                         "config": _desc()}).encode(), None),
        ]
        for body, content_type in table:
            with self.assertRaises(RegistryError) as caught:
                mf.parse_manifest(body, content_type)
            self.assertEqual(caught.exception.code, "MANIFEST_INVALID", (body, content_type))


class RangeTests(unittest.SynchronousTestCase):
    def test_range(self):
        table = [
            (None, 10, None),
            ("bytes=0-4", 10, (0, 5)),
            ("bytes=5-", 10, (5, 5)),
            ("bytes=5-100", 10, (5, 5)),
            ("bytes=-3", 10, (7, 3)),
            ("bytes=-30", 10, (0, 10)),
            ("bytes=9-9", 10, (9, 1)),
            ("bytes=0-1,3-4", 10, None),
        ]
        for header, size, expected in table:
            self.assertEqual(parse_range(header, size), expected, header)

    def test_unsatisfiable(self):
        for header in ["bytes=10-", "bytes=10-20", "bytes=5-2", "bytes=-0", "bytes=-", "bytes=a-b",
                       "items=0-1", "bytes", "bytes=0-1-2", "bytes=-" + "9" * 5000, "bytes=" + "9" * 5000 + "-",
                       "bytes=0-" + "9" * 5000, "bytes=-9223372036854775808", "bytes=\u0663-", "bytes=0-1\n",
                       "bytes=1_0-"]:
            with self.assertRaises(RangeNotSatisfiable):
                parse_range(header, 10)

    def test_content_range(self):
        self.assertEqual(parse_content_range(None), None)
        self.assertEqual(parse_content_range("0-99"), (0, 99))
        self.assertEqual(parse_content_range("bytes 100-199/*"), (100, 199))
        self.assertEqual(parse_content_range("bytes=5-9"), (5, 9))
        for bad in ["", "5", "9-5", "a-b", "-5", "0-" + "9" * 5000, "9" * 30 + "-" + "9" * 31, "0-1\n",
                    "\u0663-\u0664", "1_0-20"]:
            with self.assertRaises(ValueError):
                parse_content_range(bad)


class UploadStateTests(unittest.SynchronousTestCase):
    def test_state(self):
        self.assertIsNone(upload_state(None, "a", "u"))
        self.assertTrue(check_upload_state(None, "a", "u", None))
        token = upload_state("secret", "a", "u")
        self.assertEqual(token, upload_state("secret", "a", "u"))
        self.assertTrue(check_upload_state("secret", "a", "u", token))
        for name, upload, state in [("a", "v", token), ("b", "u", token), ("a", "u", None), ("a", "u", "x"),
                                    ("a", "u", "\u00e9"), ("a", "u", "\ufffd" * 24), ("a", "u", token + "\n")]:
            self.assertFalse(check_upload_state("secret", name, upload, state))
        self.assertNotEqual(token, upload_state("other", "a", "u"))

    # Locations answered by Debian's docker-registry (Distribution 2.8)
    # with http.secret "spectroreg-tests": after POST, and after a PATCH of
    # 5 bytes (Offset 5, StartedAt read back from ``startedat``).
    DISTRIBUTION_POST = (
        "library/demo", "3dfc02cc-9a7c-4d89-9f20-88f89648f55f",
        "AwoksA1KVPxtW4gdwAYTvLGzeLY8IxyeuohmTnrCEUd7Ik5hbWUiOiJsaWJyYXJ5L2RlbW8iLCJVVUlEIjoiM2RmYzAyY2MtOWE3Yy"
        "00ZDg5LTlmMjAtODhmODk2NDhmNTVmIiwiT2Zmc2V0IjowLCJTdGFydGVkQXQiOiIyMDI2LTEyLTAyVDIxOjIzOjA2LjgxMTUzNzUw"
        "NVoifQ==")
    DISTRIBUTION_PATCH = (
        "library/demo", "13d5214f-74b5-4890-b0c7-e6d43e69b3d7",
        "qtbLTseQ6jCvsXrVQgIGC4bUUqypgfpdSWJ4MPxzlp57Ik5hbWUiOiJsaWJyYXJ5L2RlbW8iLCJVVUlEIjoiMTNkNTIxNGYtNzRiNS00"
        "ODkwLWIwYzctZTZkNDNlNjliM2Q3IiwiT2Zmc2V0Ijo1LCJTdGFydGVkQXQiOiIyMDI2LTEyLTAyVDIxOjIzOjE2WiJ9")

    def test_distribution_tokens_accepted(self):
        for name, upload, token in (self.DISTRIBUTION_POST, self.DISTRIBUTION_PATCH):
            self.assertTrue(check_upload_state("spectroreg-tests", name, upload, token))
            self.assertFalse(check_upload_state("other-secret", name, upload, token))
            self.assertFalse(check_upload_state("spectroreg-tests", "library/other", upload, token))
            self.assertFalse(check_upload_state("spectroreg-tests", name, upload[:-1] + "0", token))
            for mangled in (token[:-1], token + "\n", "\n" + token, token + "=="):
                self.assertFalse(check_upload_state("spectroreg-tests", name, upload, mangled))
            tampered = ("B" if token[0] == "A" else "A") + token[1:]
            self.assertFalse(check_upload_state("spectroreg-tests", name, upload, tampered))
        self.assertEqual(read_upload_state("spectroreg-tests", self.DISTRIBUTION_PATCH[2]), {
            "Name": "library/demo", "UUID": "13d5214f-74b5-4890-b0c7-e6d43e69b3d7", "Offset": 5,
            "StartedAt": "2026-12-02T21:23:16Z"})

    def test_our_token_is_distributions_format(self):
        # Distribution's check (registry/handlers/hmac.go): URL-safe base64
        # with padding of HMAC-SHA256(secret, message) + message, the
        # message being Go's JSON of blobUploadState.
        name, upload, expected = self.DISTRIBUTION_PATCH
        started = calendar.timegm((2026, 12, 2, 21, 23, 16, 0, 0, 0))
        token = upload_state("spectroreg-tests", name, upload, 5, started)
        self.assertEqual(token, expected)
        raw = base64.urlsafe_b64decode(token)
        self.assertEqual(raw[:32], hmac.new(b"spectroreg-tests", raw[32:], hashlib.sha256).digest())
        self.assertEqual(raw[32:], b'{"Name":"library/demo","UUID":"13d5214f-74b5-4890-b0c7-e6d43e69b3d7",'
                                   b'"Offset":5,"StartedAt":"2026-12-02T21:23:16Z"}')

    def test_previous_format_still_accepted(self):
        legacy = base64.urlsafe_b64encode(
            hmac.new(b"secret", b"a\0u", hashlib.sha256).digest()[:18]).decode("ascii")
        self.assertTrue(check_upload_state("secret", "a", "u", legacy))
        self.assertFalse(check_upload_state("secret", "a", "v", legacy))
        self.assertFalse(check_upload_state("other", "a", "u", legacy))


class TrailingNewlineTests(unittest.SynchronousTestCase):
    """``$`` matches before a final newline; every pattern must take the whole value."""

    def test_names_tags_upload_ids(self):
        for suffix in ["\n", "\r", "\x00", "\n\n", " "]:
            self.assertFalse(is_valid_name("base/app" + suffix), repr(suffix))
            with self.assertRaises(RegistryError):
                check_name("base/app" + suffix)
            self.assertFalse(is_valid_tag("v1" + suffix), repr(suffix))
            self.assertFalse(is_valid_upload_id("abc" + suffix), repr(suffix))
        self.assertTrue(is_valid_upload_id("5b8c7d0e-1f2a-4b3c-9d4e-5f6a7b8c9d0e"))
        for bad in ["", ".", "..", "a/b", "a" * 129]:
            self.assertFalse(is_valid_upload_id(bad), bad)

    def test_digests(self):
        for text in [SHA + "\n", SHA512 + "\n", "sha256\n:" + "a" * 64, SHA + "\x00"]:
            with self.assertRaises(RegistryError) as caught:
                parse_digest(text)
            self.assertEqual(caught.exception.code, "DIGEST_INVALID", repr(text))

    def test_long_names_are_refused_before_matching(self):
        with self.assertRaises(RegistryError) as caught:
            check_name("a" * 16000)
        self.assertIn("must not exceed", caught.exception.detail["reason"])


class DecimalTests(unittest.SynchronousTestCase):
    def test_table(self):
        table = [
            ("0", 0), ("7", 7), ("007", 7), (str(INT64_MAX), INT64_MAX), ("0" * 5000 + "1", 1),
            (str(INT64_MAX + 1), None), ("9" * 5000, None), ("", None), ("-1", None), ("+1", None),
            (" 1", None), ("1 ", None), ("1_0", None), ("1\n", None), ("\u0663", None), ("1.0", None),
            (None, None), (b"1", None),
        ]
        for text, expected in table:
            self.assertEqual(parse_decimal(text), expected, repr(text)[:40])


class HeaderTests(unittest.SynchronousTestCase):
    def test_decode(self):
        self.assertEqual(decode_header(b"bytes=0-1\t x"), "bytes=0-1\t x")
        for bad in [b"\xff", b"caf\xc3\xa9", b"a\x00b", b"a\x7fb", b"a\x1bb"]:
            with self.assertRaises(MalformedHeader):
                decode_header(bad, "range")

    def test_request_header_by_bytes_name(self):
        request = FakeRequest({b"range": [b"bytes=\xff-"], b"host": [b"a:1", b"b:2"]})
        with self.assertRaises(MalformedHeader):
            header_text(request, "range")
        self.assertIsNone(header_text_or_none(request, "range"))
        self.assertEqual(header_text(request, "host"), "b:2")
        self.assertIsNone(header_text(request, "x-missing"))

    def test_host_header_bytes(self):
        for value in [b"", b"reg.example", b"reg.example:5000", b"[::1]:5000", b"a_b-c~d", b"%41"]:
            self.assertTrue(is_valid_host_header(value), value)
        for value in [b"\xff", b"a b", b"a/b", b"a\x00", b"a\tb", b"caf\xc3\xa9", b"a@b", b'a"b']:
            self.assertFalse(is_valid_host_header(value), value)

    def test_hosts_and_schemes(self):
        for host in ["example.com", "example.com:5000", "127.0.0.1:1", "[::1]:5000", "[::1]", "a_b.local"]:
            self.assertTrue(is_host(host), host)
        for host in ["", "a b", "a/b", "a\x00", "a:b:c:port", "x" * 2000, "a:123456", None]:
            self.assertFalse(is_host(host), host)
        for scheme in ["http", "https", "git+ssh"]:
            self.assertTrue(is_scheme(scheme), scheme)
        for scheme in ["", "1http", "ht tp", "h\u00e9", "http:"]:
            self.assertFalse(is_scheme(scheme), scheme)


class FakeRequest:
    """What URLBuilder and the header helpers read from a request."""

    def __init__(self, headers, secure=False):
        self.requestHeaders = Headers(headers)
        self.prepath = [b"v2"]
        self._secure = secure

    def isSecure(self):
        return self._secure

    def getHost(self):
        return IPv4Address("TCP", "10.0.0.1", 5000)


class URLBuilderTests(unittest.SynchronousTestCase):
    def test_malformed_headers_are_ignored(self):
        table = [
            ({b"host": [b"reg.example:5000"]}, "http://reg.example:5000/v2"),
            ({b"host": [b"\xff"]}, "http://10.0.0.1:5000/v2"),
            ({b"host": [b"a b"]}, "http://10.0.0.1:5000/v2"),
            ({b"host": [b"h"], b"x-forwarded-host": [b"\xff"]}, "http://h/v2"),
            ({b"host": [b"h"], b"x-forwarded-host": [b"a/b, c"]}, "http://h/v2"),
            ({b"host": [b"h"], b"x-forwarded-host": [b"p.example, c"]}, "http://p.example/v2"),
            ({b"host": [b"h"], b"x-forwarded-proto": [b"\xff"]}, "http://h/v2"),
            ({b"host": [b"h"], b"x-forwarded-proto": [b"ht tp"]}, "http://h/v2"),
            ({b"host": [b"h"], b"x-forwarded-proto": [b"https"]}, "https://h/v2"),
            ({b"host": [b"h"], b"forwarded": [b"host=\xff;proto=https"]}, "http://h/v2"),
            ({b"host": [b"h"], b"forwarded": [b"host=a/b;proto=1x"]}, "http://h/v2"),
            ({b"host": [b"h"], b"forwarded": [b'host="f.example";proto=https']}, "https://f.example/v2"),
            ({b"host": [b"h"], b"x-forwarded-port": [b"9" * 5000]}, "http://h/v2"),
            ({b"host": [b"h"], b"x-forwarded-port": [b"\xd9\xa3"]}, "http://h/v2"),
            ({b"host": [b"h"], b"x-forwarded-port": [b"8443"]}, "http://h:8443/v2"),
        ]
        for headers, expected in table:
            self.assertEqual(URLBuilder(FakeRequest(headers), None).root, expected, headers)
