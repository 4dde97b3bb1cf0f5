"""
Hostile input against the real daemon, over raw sockets.

Every route, with each path segment, query parameter and header the API
parses replaced by (or suffixed with) hostile bytes: a newline, a NUL,
bytes that are not UTF-8, huge numbers, very long values, path traversal.
Whatever the answer, it is never a 500, the daemon never logs a
traceback, and a refused request (4xx) leaves the storage tree exactly as
it was, byte for byte.
"""

import base64
import hashlib
import json
import os

import bcrypt
from twisted.trial import unittest

from tests.support.daemon import minimal_config, start_daemon
from tests.support.paths import snapshot
from tests.support.rawhttp import exchange, path_of, request

NAME = "hostile/app"
TAG = "v1"
SECRET = "hostile-input-secret"

HUGE = b"9" * 5000
NO_LENGTH = object()
LONG = b"a" * 10000

# Pieces of a request line: percent-encoded (Twisted decodes them into the
# segment) and raw.
PATH_VALUES = [
    b"%0A", b"%0D%0A", b"%00", b"%FF", b"%C3%A9", b"\xff", b"%20", b"%2F..%2F", b"..", b"%2E%2E",
    HUGE, LONG,
]
QUERY_VALUES = [
    b"%0A", b"%00", b"%FF", b"%C3%A9", HUGE, LONG, b"-1", b"%2B1", b"1_0", b"%D9%A3", b"",
]
HEADER_VALUES = [
    b"\xff", b"caf\xc3\xa9", b"\x00", b"a\x01\x7fb", HUGE, LONG, b"", b" ",
]
HEADER_SPECIFIC = {
    "Range": [b"bytes=-" + HUGE, b"bytes=" + HUGE + b"-", b"bytes=0-" + HUGE, b"bytes=\xff-", b"bytes=0-1\x00",
              b"bytes=-9223372036854775808", b"bytes=\xd9\xa3-", b"bytes=0-1,\xff"],
    "Content-Range": [b"0-" + HUGE, HUGE + b"-" + HUGE, b"\xff-\xff", b"bytes 0-19/\xff", b"0-19\x00"],
    "Content-Type": [b"application/vnd.oci.image.manifest.v1+json\xff", b"\xff; charset=utf-8",
                     b"application/vnd.oci.image.manifest.v1+json; x=\"\xff\""],
    "Host": [b"\xff", b"a b", b"a/b", b"[::1", b"x:" + HUGE],
    "X-Forwarded-Host": [b"\xff", b"a/b, c", b"a\x00b"],
    "X-Forwarded-Proto": [b"\xff", b"ht tp", b"https\x00"],
    "X-Forwarded-Port": [HUGE, b"\xd9\xa3", b"-1"],
    "Forwarded": [b"host=\xff", b"proto=\xff;host=x", b'host="a/b";proto=1x', b"for=" + LONG],
    "Accept": [b"\xff", LONG],
    "Authorization": [b"Basic \xff", b"Basic " + base64.b64encode(b"\xff:\xff"), b"\x00"],
}




def describe_change(before, after):
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(p for p in set(before) & set(after) if before[p] != after[p])
    return "added {}, removed {}, changed {}".format(added[:5], removed[:5], changed[:5])


def short(data):
    return repr(data if len(data) < 120 else data[:100] + b"...(" + str(len(data)).encode() + b" bytes)")


class HostileRequests:
    """Sends requests to one daemon and checks each answer and the tree."""

    def __init__(self, testcase, daemon, root):
        self.testcase = testcase
        self.daemon = daemon
        self.root = root
        self.tree = snapshot(root)
        self.count = 0
        self.failures = []

    def send(self, method, target, headers=(), body=b"", content_length=None):
        lines = [method + b" " + target + b" HTTP/1.1", b"Host: " + self.daemon.netloc.encode()]
        names = {name.lower() for name, _ in headers}
        lines = [line for line in lines if not (line.startswith(b"Host:") and b"host" in names)]
        for name, value in headers:
            lines.append(name + b": " + value)
        if content_length is NO_LENGTH:
            pass
        elif content_length is not None:
            lines.append(b"Content-Length: " + content_length)
        elif body or method in (b"PUT", b"PATCH", b"POST"):
            lines.append(b"Content-Length: " + str(len(body)).encode())
        lines.append(b"Connection: close")
        data = b"\r\n".join(lines) + b"\r\n\r\n" + body
        status, response_headers, response_body, received = exchange(
            self.daemon.host, self.daemon.port, data, timeout=60.0)
        self.count += 1
        what = "{} {} {}".format(method.decode(), short(target), [(n, short(v)) for n, v in headers])
        if status is None:
            self.failures.append("{}: no HTTP answer ({})".format(what, short(received)))
            return status
        if status >= 500:
            self.failures.append("{}: {} {}".format(what, status, short(response_body)))
        after = snapshot(self.root)
        if after != self.tree:
            if status >= 400:
                self.failures.append("{}: answered {} but storage changed: {}".format(
                    what, status, describe_change(self.tree, after)))
            self.tree = after
        return status

    def check(self):
        log = self.daemon.log_text()
        for marker in ("Traceback", "internal error", "Unhandled"):
            at = log.find(marker)
            if at >= 0:
                excerpt = log[max(0, at - 300):at + 3000]
                self.failures.append("the log holds {!r}:\n{}".format(marker, excerpt))
        # Guard against a loop that silently sent nothing.
        self.testcase.assertGreater(self.count, 0)
        if self.failures:
            self.testcase.fail("{} of {} hostile requests misbehaved:\n{}".format(
                len(self.failures), self.count, "\n".join(self.failures[:40])))


class HostileInputTests(unittest.TestCase):
    """The daemon over filesystem storage, with deletes and an HTTP secret."""

    # Over a thousand requests each, on a loaded machine.
    timeout = 900

    def setUp(self):
        work = os.path.abspath(self.mktemp())
        self.root = os.path.join(work, "root")
        os.makedirs(self.root)
        config = minimal_config(
            storage={"filesystem": {"rootdirectory": self.root}, "delete": {"enabled": True}},
            http={"secret": SECRET},
        )
        self.daemon = start_daemon(self, config, workdir=os.path.join(work, "daemon"))
        self.blob = b"hostile input blob"
        self.blob_digest = "sha256:" + hashlib.sha256(self.blob).hexdigest()
        response = request(self.daemon, "POST", "/v2/{}/blobs/uploads/?digest={}".format(NAME, self.blob_digest),
                           self.blob)
        self.assertEqual(response.status, 201, response.describe())
        config_blob = b"{}"
        self.config_digest = "sha256:" + hashlib.sha256(config_blob).hexdigest()
        response = request(self.daemon, "POST", "/v2/{}/blobs/uploads/?digest={}".format(NAME, self.config_digest),
                           config_blob)
        self.assertEqual(response.status, 201, response.describe())
        self.manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": self.config_digest, "size": len(config_blob)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": self.blob_digest, "size": len(self.blob)}],
        }).encode()
        self.manifest_digest = "sha256:" + hashlib.sha256(self.manifest).hexdigest()
        response = request(self.daemon, "PUT", "/v2/{}/manifests/{}".format(NAME, TAG), self.manifest,
                           {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        self.assertEqual(response.status, 201, response.describe())
        response = request(self.daemon, "POST", "/v2/{}/blobs/uploads/".format(NAME))
        self.assertEqual(response.status, 202, response.describe())
        self.upload = path_of(response.header("location"))
        self.upload_id = response.header("docker-upload-uuid")
        self.hostile = HostileRequests(self, self.daemon, self.root)

    def routes(self):
        """(methods, path template parts) for every route; each part is (kind, value)."""
        name = NAME.encode()
        blob = self.blob_digest.encode()
        upload_id = self.upload_id.encode()
        state = self.upload.partition("?")[2].encode()
        return [
            ([b"GET", b"HEAD"], [b"/v2/", b"", b""], b""),
            ([b"GET"], [b"/v2/", b"_catalog", b""], b""),
            ([b"GET", b"HEAD"], [b"/v2/", name, b"/tags/list"], b""),
            ([b"GET", b"HEAD", b"PUT", b"DELETE"], [b"/v2/", name, b"/manifests/", TAG.encode()], b""),
            ([b"GET", b"HEAD", b"DELETE"], [b"/v2/", name, b"/manifests/", self.manifest_digest.encode()], b""),
            ([b"GET", b"HEAD", b"DELETE"], [b"/v2/", name, b"/blobs/", blob], b""),
            ([b"POST"], [b"/v2/", name, b"/blobs/uploads/"], b""),
            ([b"GET", b"HEAD", b"PATCH", b"PUT", b"DELETE"], [b"/v2/", name, b"/blobs/uploads/", upload_id],
             b"?" + state),
            ([b"GET", b"HEAD"], [b"/v2/", name, b"/referrers/", self.manifest_digest.encode()], b""),
        ]

    def variants(self, parts):
        """Each variable part (odd positions) replaced by, and suffixed with, each hostile value."""
        for position in range(1, len(parts), 2):
            original = parts[position]
            pieces = original.split(b"/")
            for value in PATH_VALUES:
                for replaced in (original + value, value, b"/".join(pieces[:-1] + [value])):
                    yield b"".join(parts[:position] + [replaced] + parts[position + 1:])

    def body_for(self, method, parts):
        if method == b"PUT" and b"/manifests/" in parts:
            return self.manifest, [(b"Content-Type", b"application/vnd.oci.image.manifest.v1+json")]
        if method in (b"PATCH", b"PUT"):
            return b"x" * 20, []
        return b"", []

    def test_path_segments(self):
        """Every path segment of every route, for every method it has."""
        for methods, parts, query in self.routes():
            for method in methods:
                body, headers = self.body_for(method, parts)
                for path in self.variants(parts):
                    self.hostile.send(method, path + query, headers, body)
        self.hostile.check()

    def test_query_parameters(self):
        """n, last, mount, from, digest, artifactType and _state."""
        name = NAME.encode()
        digest = self.blob_digest.encode()
        upload = self.upload.encode()
        targets = [
            (b"GET", b"/v2/_catalog?n={v}"), (b"GET", b"/v2/_catalog?n=1&last={v}"),
            (b"GET", b"/v2/" + name + b"/tags/list?n={v}"), (b"GET", b"/v2/" + name + b"/tags/list?n=1&last={v}"),
            (b"POST", b"/v2/" + name + b"/blobs/uploads/?mount={v}"),
            (b"POST", b"/v2/" + name + b"/blobs/uploads/?mount=" + digest + b"{v}"),
            (b"POST", b"/v2/" + name + b"/blobs/uploads/?mount=" + digest + b"&from={v}"),
            (b"POST", b"/v2/other/app/blobs/uploads/?mount=" + digest + b"&from=" + name + b"{v}"),
            (b"POST", b"/v2/" + name + b"/blobs/uploads/?digest={v}"),
            (b"POST", b"/v2/" + name + b"/blobs/uploads/?digest=" + digest + b"{v}"),
            (b"PUT", upload + b"&digest={v}"),
            (b"PUT", upload + b"&digest=" + digest + b"{v}"),
            (b"PATCH", upload.partition(b"?")[0] + b"?_state={v}"),
            (b"GET", b"/v2/" + name + b"/referrers/" + self.manifest_digest.encode() + b"?artifactType={v}"),
        ]
        for method, template in targets:
            for value in QUERY_VALUES:
                if value == b"" and not template.endswith(b"={v}"):
                    continue  # the valid value itself
                body = self.blob if b"digest=" in template and method == b"POST" else b""
                if method in (b"PUT", b"PATCH"):
                    body = b"x" * 20
                self.hostile.send(method, template.replace(b"{v}", value), (), body)
        self.hostile.check()

    def test_headers(self):
        """Each header we parse, on the routes that read it."""
        name = NAME.encode()
        blob_path = b"/v2/" + name + b"/blobs/" + self.blob_digest.encode()
        upload = self.upload.encode()
        manifest_headers = [(b"Content-Type", b"application/vnd.oci.image.manifest.v1+json")]
        where = [
            (b"GET", blob_path, b"", []),
            (b"HEAD", blob_path, b"", []),
            (b"PATCH", upload, b"x" * 20, []),
            (b"POST", b"/v2/" + name + b"/blobs/uploads/", b"", []),
            (b"GET", b"/v2/" + name + b"/tags/list?n=0", b"", []),
            (b"GET", b"/v2/" + name + b"/manifests/" + TAG.encode(), b"", []),
            (b"PUT", b"/v2/" + name + b"/manifests/" + TAG.encode(), self.manifest, manifest_headers),
        ]
        for header, specific in sorted(HEADER_SPECIFIC.items()):
            for value in HEADER_VALUES + specific:
                for method, target, body, base in where:
                    headers = [(n, v) for n, v in base if n.lower() != header.lower().encode()]
                    headers.append((header.encode(), value))
                    self.hostile.send(method, target, headers, body)
        self.hostile.check()


    def test_new_manifest_under_hostile_tags(self):
        """A manifest not stored yet, pushed under a hostile tag, is not stored at all."""
        manifest = json.loads(self.manifest)
        manifest["annotations"] = {"pushed": "under a hostile tag"}
        body = json.dumps(manifest).encode()
        headers = [(b"Content-Type", b"application/vnd.oci.image.manifest.v1+json")]
        for value in PATH_VALUES + [b"v2%0A", b"v2%0D", b"v2%00", b"v2%FF", b"v2%20"]:
            status = self.hostile.send(b"PUT", b"/v2/" + NAME.encode() + b"/manifests/" + value, headers, body)
            if status not in (400, 404, 414):
                self.hostile.failures.append("PUT under tag {}: {}".format(short(value), status))
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        response = request(self.daemon, "GET", "/v2/{}/manifests/{}".format(NAME, digest))
        self.assertEqual(response.status, 404, response.describe())
        self.hostile.check()

    def test_framing_and_other_paths(self):
        """Content-Length, Transfer-Encoding, and paths outside the API."""
        upload = self.upload.encode()
        for value in [HUGE, b"-1", b"\xff", b"1_0", b" 20", b"20, 20", b"+20", b"0x14", b"\xd9\xa3"]:
            self.hostile.send(b"PATCH", upload, (), b"x" * 20, content_length=value)
        for value in [b"\xff", b"chunked\x00", b"gzip, chunked, chunked", LONG]:
            self.hostile.send(b"PATCH", upload, [(b"Transfer-Encoding", value)], b"0\r\n\r\n",
                              content_length=NO_LENGTH)
        for value in [b"\xff", b"a b", b"a/b", b"a\x00b", b"caf\xc3\xa9"]:
            # Go's server refuses a Host it would not put in a URL.
            status = self.hostile.send(b"GET", b"/v2/", [(b"Host", value)])
            if status != 400:
                self.hostile.failures.append("Host {}: {}, not 400".format(short(value), status))
        for value in PATH_VALUES:
            for prefix in (b"/", b"/v2", b"/v2/", b"/x/"):
                self.hostile.send(b"GET", prefix + value)
        self.hostile.check()


class HostileCredentialsTests(unittest.TestCase):
    """``Authorization`` with htpasswd on: refused (401), never a 500."""

    timeout = 300

    def test_authorization(self):
        work = os.path.abspath(self.mktemp())
        os.makedirs(work)
        htpasswd = os.path.join(work, "htpasswd")
        with open(htpasswd, "wb") as f:
            f.write(b"user:" + bcrypt.hashpw(b"secret", bcrypt.gensalt(4)) + b"\n")
        root = os.path.join(work, "root")
        os.makedirs(root)
        config = minimal_config(
            storage={"filesystem": {"rootdirectory": root}},
            auth={"htpasswd": {"realm": "hostile", "path": htpasswd}},
        )
        daemon = start_daemon(self, config, workdir=os.path.join(work, "daemon"))
        hostile = HostileRequests(self, daemon, root)

        def basic(raw):
            return b"Basic " + base64.b64encode(raw)

        values = HEADER_VALUES + HEADER_SPECIFIC["Authorization"] + [
            basic(b"user"), basic(b"user:\xff"), basic(b"\xff\xfe:secret"), basic(b"user:secret\x00"),
            basic(b"user:" + LONG), basic(b":"), b"Basic ====", b"Basic a", b"Basic " + HUGE, b"Bearer x",
            b"basic " + base64.b64encode(b"user:wrong"), b"Basic  " + base64.b64encode(b"user:wrong"),
        ]
        for value in values:
            status = hostile.send(b"GET", b"/v2/", [(b"Authorization", value)])
            self.assertIn(status, (400, 401, 429), short(value))
        hostile.check()
