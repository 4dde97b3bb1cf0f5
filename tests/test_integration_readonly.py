"""
The real daemon serving a tree Distribution wrote from a read-only volume
(the tree bind-mounted read-only in a private mount namespace, which needs
root) and in read-only mode: every read answers as it should, nothing in
the tree changes (not even a stale temporary file a listing comes across),
nothing is logged as an error.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys

from twisted.trial import unittest

from tests.support.daemon import start_daemon
from tests.support.rawhttp import add_query, path_of, request
from tests.support.reference import reference_config, start_reference
from tests.support.requirements import require_binary, require_external

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
# The daemon, in a mount namespace of its own where its root directory ($0)
# is a read-only bind mount of itself; the mount goes when the process does.
READ_ONLY_VOLUME = ('mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"')


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def snapshot(root):
    """{relative path: (mode, size, mtime_ns, content)} of everything under C{root}."""
    found = {}
    for directory, directories, files in os.walk(root):
        for name in directories + files:
            path = os.path.join(directory, name)
            st = os.lstat(path)
            content = None
            if name in files:
                with open(path, "rb") as f:
                    content = f.read()
            found[os.path.relpath(path, root)] = (st.st_mode, st.st_size, st.st_mtime_ns, content)
    return found


def can_mount_read_only(scratch):
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    os.makedirs(scratch, exist_ok=True)
    probe = subprocess.run([unshare, "--mount", "--propagation", "private", "sh", "-c",
                            READ_ONLY_VOLUME + ' && ! touch "$0/x" 2>/dev/null', scratch, "true"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return probe.returncode == 0 and not os.path.exists(os.path.join(scratch, "x"))


class ReadOnlyTreeTests(unittest.TestCase):
    def setUp(self):
        require_external("docker-registry and the spectroreg daemon")
        require_binary("docker-registry")
        self.work = os.path.abspath(self.mktemp())
        self.root = os.path.join(self.work, "root")
        os.makedirs(self.root)
        self.pushed = self.write_tree()

    def call(self, server, method, path, body=b"", headers=None):
        return request(server, method, path, body, headers)

    def push_blob(self, server, name, data):
        response = self.call(server, "POST", "/v2/{}/blobs/uploads/".format(name))
        self.assertEqual(response.status, 202, response.describe())
        response = self.call(server, "PUT", add_query(path_of(response.header("location")), digest=sha(data)), data)
        self.assertEqual(response.status, 201, response.describe())

    def push_manifest(self, server, name, reference, config, layers, **extra):
        for blob in [config] + layers:
            self.push_blob(server, name, blob)
        document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": sha(config), "size": len(config)},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(blob),
                                "size": len(blob)} for blob in layers]}
        document.update(extra)
        body = json.dumps(document, sort_keys=True).encode("utf-8")
        response = self.call(server, "PUT", "/v2/{}/manifests/{}".format(name, reference), body,
                             {"Content-Type": OCI_MANIFEST})
        self.assertEqual(response.status, 201, response.describe())
        return body

    def write_tree(self):
        """Distribution pushes an image, a referrer of it, and leaves an upload open."""
        server = start_reference(self.root, os.path.join(self.work, "docker-registry"))
        try:
            subject = self.push_manifest(server, "ns/app", "v1", b"config", [b"layer"])
            referrer = self.push_manifest(
                server, "ns/app", "sig", b"{}", [b"signature"], artifactType="application/x-sig",
                subject={"mediaType": OCI_MANIFEST, "digest": sha(subject), "size": len(subject)})
            response = self.call(server, "POST", "/v2/ns/app/blobs/uploads/")
            upload = path_of(response.header("location")).split("?")[0]
        finally:
            server.stop()
        # A leftover of a spectroreg that crashed while writing a tag, long ago.
        leftover = os.path.join(self.root, "docker/registry/v2/repositories/ns/app/_manifests/tags",
                                ".spectroreg~0123456789abcdef")
        with open(leftover, "wb") as f:
            f.write(b"sha256:")
        os.utime(leftover, (1e9, 1e9))
        return {"subject": subject, "referrer": referrer, "upload": upload}

    def serve(self, readonly_mode, read_only_volume):
        config = reference_config(self.root)
        config["storage"]["cache"] = {"blobdescriptor": "inmemory"}
        # Without a secret, upload URLs need no _state: Distribution's upload is reachable.
        del config["http"]["secret"]
        if readonly_mode:
            config["storage"]["maintenance"]["readonly"] = {"enabled": True}
        argv = None
        if read_only_volume:
            if not can_mount_read_only(os.path.join(self.work, "probe")):
                raise unittest.SkipTest("read-only bind mounts need root (CAP_SYS_ADMIN) and unshare")
            argv = [shutil.which("unshare"), "--mount", "--propagation", "private", "sh", "-c",
                    READ_ONLY_VOLUME, self.root, sys.executable, "-m", "spectroreg", "serve", "{config}"]
        return start_daemon(self, config, timeout=30.0, argv=argv,
                            workdir=os.path.join(self.work, "spectroreg-{}-{}".format(readonly_mode, read_only_volume)))

    def assert_reads(self, server):
        subject, referrer = self.pushed["subject"], self.pushed["referrer"]
        before = snapshot(self.root)
        reads = [
            ("/v2/", 200),
            ("/v2/_catalog", 200),
            ("/v2/ns/app/tags/list", 200),
            ("/v2/ns/app/manifests/v1", 200),
            ("/v2/ns/app/manifests/" + sha(subject), 200),
            ("/v2/ns/app/manifests/absent", 404),
            ("/v2/ns/app/blobs/" + sha(b"layer"), 200),
            ("/v2/ns/app/blobs/" + sha(b"absent"), 404),
            ("/v2/ns/app/referrers/" + sha(subject), 200),
            ("/v2/ns/app/referrers/" + sha(subject) + "?artifactType=application/x-sig", 200),
            ("/v2/ns/app/referrers/" + sha(b"nothing"), 200),
            ("/v2/other/referrers/" + sha(subject), 200),
            ("/v2/other/tags/list", 404),
            (self.pushed["upload"], 204),
        ]
        for method in ("GET", "HEAD"):
            for path, status in reads:
                response = self.call(server, method, path)
                self.assertEqual(response.status, status, (method, path, response.describe()))
        response = self.call(server, "GET", "/v2/ns/app/referrers/" + sha(subject))
        self.assertEqual([d["digest"] for d in json.loads(response.body)["manifests"]], [sha(referrer)])
        self.assertEqual(json.loads(self.call(server, "GET", "/v2/_catalog").body)["repositories"], ["ns/app"])
        self.assertEqual(json.loads(self.call(server, "GET", "/v2/ns/app/tags/list").body)["tags"], ["sig", "v1"])
        self.assertEqual(snapshot(self.root), before)
        server.stop()
        log = server.log_text()
        self.assertNotIn("Traceback", log)
        self.assertNotIn("internal error", log)

    def test_read_only_volume(self):
        self.assert_reads(self.serve(readonly_mode=False, read_only_volume=True))

    def test_read_only_mode(self):
        self.assert_reads(self.serve(readonly_mode=True, read_only_volume=False))

    def test_read_only_mode_on_read_only_volume(self):
        self.assert_reads(self.serve(readonly_mode=True, read_only_volume=True))
