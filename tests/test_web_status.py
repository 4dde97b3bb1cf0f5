"""
Status lines: every status the registry sends carries its reason phrase
(Go's, as Distribution's answers), checked on the real daemon's wire.
"""

import hashlib
import os
import re
import socket

from twisted.trial import unittest

from spectroreg.api.errors import CODES
from spectroreg.web.status import REASONS, reason_phrase
from tests.support.daemon import minimal_config, start_daemon
from tests.test_auth_daemon import basic, write_htpasswd

STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3}) ([^\r\n]*)\r\n")


def exchange(port, raw):
    """Send C{raw} on a new connection; the first status line as (code, phrase)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(raw)
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    match = STATUS_LINE.match(data)
    if match is None:
        raise AssertionError("no status line in {!r}".format(data[:200]))
    return int(match.group(1)), match.group(2)


def head(method, path, body=b"", headers=()):
    lines = [b"%s %s HTTP/1.1" % (method, path), b"Host: localhost", b"Connection: close",
             b"Content-Length: %d" % len(body)] + list(headers)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class ReasonTableTests(unittest.TestCase):
    def test_every_error_status_has_its_phrase(self):
        for code, (_, status) in CODES.items():
            self.assertIn(status, REASONS, code)
        for status, phrase in [(429, b"Too Many Requests"), (416, b"Requested Range Not Satisfiable"),
                               (413, b"Request Entity Too Large"), (431, b"Request Header Fields Too Large")]:
            self.assertEqual(reason_phrase(status), phrase)
        self.assertEqual(reason_phrase(599), b"status code 599")


class DaemonStatusLineTests(unittest.TestCase):
    def assert_phrases(self, port, cases):
        seen = []
        for raw, expected in cases:
            code, phrase = exchange(port, raw)
            seen.append((code, phrase))
        self.assertEqual(seen, [(code, REASONS[code]) for _, code in cases])

    def test_registry_statuses(self):
        daemon = start_daemon(self, minimal_config())
        blob = b"status line test"
        digest = b"sha256:" + hashlib.sha256(blob).hexdigest().encode()
        self.assert_phrases(daemon.port, [
            (head(b"GET", b"/v2/"), 200),
            (head(b"POST", b"/v2/a/b/blobs/uploads/?digest=" + digest, blob), 201),
            (head(b"GET", b"/v2/a/b/blobs/" + digest, headers=[b"Range: bytes=0-3"]), 206),
            (head(b"GET", b"/v2/a/b/blobs/" + digest, headers=[b"Range: bytes=100-200"]), 416),
            (head(b"POST", b"/v2/a/b/blobs/uploads/"), 202),
            (head(b"GET", b"/v2/a/b/tags/list?n=x"), 400),
            (head(b"GET", b"/v2/a/b/manifests/nothing"), 404),
            (head(b"PUT", b"/v2/a/b/manifests/big", b"x" * (4 * 1024 * 1024 + 1)), 413),
            (head(b"DELETE", b"/v2/_catalog"), 405),
            (head(b"GET", b"/" + b"x" * 9000), 414),
            (head(b"GET", b"/", headers=[b"X-%d: y" % n for n in range(300)]), 431),
        ])

    def test_throttled_login(self):
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        path = os.path.join(directory, "htpasswd")
        write_htpasswd(path, {"alice": "wonderland"})
        daemon = start_daemon(self, minimal_config(auth={"htpasswd": {"realm": "r", "path": path}}))
        wrong = [(head(b"GET", b"/v2/", headers=[b"Authorization: " + basic("alice", "guess%d" % n).encode()]), 401)
                 for n in range(10)]
        self.assert_phrases(daemon.port, wrong + [
            (head(b"GET", b"/v2/", headers=[b"Authorization: " + basic("alice", "wonderland").encode()]), 429),
        ])
