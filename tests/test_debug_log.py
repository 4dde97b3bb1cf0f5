"""
``log.level: debug`` shows what the registry decides: auth outcomes (user and
reason, never the credentials), storage operations, cache hits and misses,
and each change of an upload's state. At ``info`` none of it is logged.
"""

import hashlib
import os
import re
from urllib.parse import urlsplit

from twisted.trial import unittest

from tests.support.daemon import minimal_config, start_daemon
from tests.test_auth_daemon import basic, push_small_image, write_htpasswd

PASSWORD = "Debug-Log-Password-4417"


class DebugLogTests(unittest.TestCase):
    def run_daemon(self, level):
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        htpasswd = os.path.join(directory, "htpasswd")
        write_htpasswd(htpasswd, {"alice": PASSWORD})
        config = minimal_config(
            log={"level": level},
            storage={"filesystem": {"rootdirectory": os.path.join(directory, "data")}},
            auth={"htpasswd": {"realm": "debug test", "path": htpasswd}},
        )
        daemon = start_daemon(self, config)
        good = basic("alice", PASSWORD)
        self.assertEqual(daemon.request("GET", "/v2/", {"Authorization": basic("alice", "wrong")}).status, 401)
        manifest = push_small_image(daemon, good)
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        for _ in range(2):
            self.assertEqual(daemon.request("GET", "/v2/demo/app/manifests/" + digest, {"Authorization": good}).status, 200)
        started = daemon.request("POST", "/v2/demo/app/blobs/uploads/", {"Authorization": good})
        self.assertEqual(started.status, 202)
        location = urlsplit(dict((k.lower(), v) for k, v in started.headers)["location"])
        self.assertEqual(daemon.request("DELETE", location.path + "?" + location.query, {"Authorization": good}).status, 204)
        daemon.stop()
        return daemon.log_text()

    def test_debug(self):
        log = self.run_daemon("debug")
        debug = [line for line in log.splitlines() if "level=debug" in line]
        expected = [
            r"auth for 127\.0\.0\.1 GET /v2/: refused \(Unauthorized: wrong user name or password\)",
            r"auth for 127\.0\.0\.1 PUT /v2/demo/app/manifests/v1: accepted user alice",
            r"storage put_content /docker/registry/v2/repositories/demo/app/_manifests/tags/v1/current/link: ok",
            r"storage stat /docker/registry/v2/blobs/sha256/\S+/data: (ok|PathNotFound)",
            r"cache manifest sha256:\S+: miss",
            r"cache manifest sha256:\S+: hit",
            r"upload \S+ in demo/app: started at 0 bytes",
            r"upload \S+ in demo/app: complete at \d+ bytes",
            r"upload \S+ in demo/app: published as sha256:\S+ at \d+ bytes",
            r"upload \S+ in demo/app: deleted",
        ]
        for pattern in expected:
            self.assertTrue(any(re.search(pattern, line) for line in debug),
                            "no debug line matching {!r} in:\n{}".format(pattern, "\n".join(debug)))
        self.assertNotIn(PASSWORD, log)

    def test_info(self):
        log = self.run_daemon("info")
        self.assertNotIn("level=debug", log)
        self.assertIn("level=info", log)
