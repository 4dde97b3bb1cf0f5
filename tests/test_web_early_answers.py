"""
Early answers on the real daemon's wire: a request with a body answered
before its body was used (401, 404, 413, 416, 400 on PATCH, PUT and POST),
followed at once by a second request on the same connection. A body that
fits the discard bound (256 KiB, as Go's server) is dropped and the second
request answered; a bigger one is cut: the answer says ``Connection: close``
and the connection closes. A huge or endless body without credentials gets
its 401 at once, without the daemon reading it.
"""

import base64
import hashlib
import http.client
import os
import re
import socket
import ssl
import threading
import time

from twisted.trial import unittest

from tests.support.daemon import minimal_config, start_daemon
from tests.support.reference import start_reference
from tests.test_auth_daemon import write_htpasswd

KiB = 1024
MiB = 1024 * KiB
DISCARD_BOUND = 256 * KiB

CREDENTIALS = b"Authorization: Basic " + base64.b64encode(b"alice:wonderland")
SECOND = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
ZERO_DIGEST = b"sha256:" + hashlib.sha256(b"").hexdigest().encode()
UNKNOWN_UPLOAD = b"/v2/a/b/blobs/uploads/0b9a1f50-1111-4222-8333-944455556666"


def with_digest(path, digest=ZERO_DIGEST):
    return path + (b"&" if b"?" in path else b"?") + b"digest=" + digest


def chunked(size, piece=16 * KiB):
    """C{size} bytes in chunked transfer encoding, C{piece} bytes a chunk."""
    out = []
    while size > 0:
        n = min(piece, size)
        out.append(b"%x\r\n" % n + b"c" * n + b"\r\n")
        size -= n
    out.append(b"0\r\n\r\n")
    return b"".join(out)


class Body:
    """A request body: its framing headers and bytes."""

    def __init__(self, name, size, is_chunked=False):
        self.name = name
        self.size = size
        self.is_chunked = is_chunked

    @property
    def fits(self):
        """True when the daemon drops it and keeps the connection."""
        return self.size <= DISCARD_BOUND

    def headers(self):
        if self.is_chunked:
            return [b"Transfer-Encoding: chunked"]
        return [b"Content-Length: %d" % self.size]

    def data(self):
        return chunked(self.size) if self.is_chunked else b"b" * self.size


BODIES = [
    Body("empty", 0),
    Body("20 bytes", 20),
    Body("64 KiB", 64 * KiB),
    Body("8 MiB", 8 * MiB),
    Body("chunked 60 KiB", 60 * KiB, is_chunked=True),
    Body("chunked 8 MiB", 8 * MiB, is_chunked=True),
]


class Connection:
    """One client connection: sends in a thread, reads answers here."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buffer = b""
        self.sent = 0
        self.stop = threading.Event()
        self.sender = None

    def send(self, pieces):
        """Send C{pieces} (an iterable of bytes) in the background; errors end it."""

        def run():
            try:
                for piece in pieces:
                    if self.stop.is_set():
                        return
                    self.sock.sendall(piece)
                    self.sent += len(piece)
            except OSError:
                pass

        self.sender = threading.Thread(target=run, daemon=True)
        self.sender.start()

    def _fill(self):
        chunk = self.sock.recv(256 * KiB)
        if not chunk:
            return False
        self.buffer += chunk
        return True

    def response(self):
        """The next answer as (status, headers, body), or None at EOF."""
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                if self.buffer:
                    raise AssertionError("connection closed inside an answer: {!r}".format(self.buffer[:200]))
                return None
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get(b"content-length", b"0"))
        while len(self.buffer) < length:
            if not self._fill():
                raise AssertionError("connection closed inside a body")
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, headers, body

    def close(self):
        self.stop.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        if self.sender is not None:
            self.sender.join(30)


class EarlyAnswerChecks:
    """The checks, for any registry listening on C{self.port} with htpasswd (alice)."""

    def setUp(self):
        self.work = os.path.abspath(self.mktemp())
        os.makedirs(self.work)
        self.htpasswd = os.path.join(self.work, "htpasswd")
        write_htpasswd(self.htpasswd, {"alice": "wonderland"})
        self.root = os.path.join(self.work, "storage")
        self.port = self.start()

    def connect(self):
        connection = Connection(self.port)
        self.addCleanup(connection.close)
        return connection

    def start_upload(self):
        connection = self.connect()
        connection.send([b"POST /v2/a/b/blobs/uploads/ HTTP/1.1\r\nHost: x\r\n" + CREDENTIALS
                         + b"\r\nContent-Length: 0\r\n\r\n"])
        status, headers, _ = connection.response()
        self.assertEqual(status, 202)
        return re.sub(rb"^https?://[^/]+", b"", headers[b"location"])

    def exchange(self, method, path, headers, body, expected):
        """
        The request, then L{SECOND} on the same connection: sent at once
        (pipelined), and sent once the first answer is in (as Go clients
        reuse connections); checks both ends, as described above.
        """
        head = b"%s %s HTTP/1.1\r\nHost: x\r\n" % (method, path) + b"".join(h + b"\r\n" for h in headers + body.headers())
        request = head + b"\r\n" + body.data()
        for pipelined in (True, False):
            what = "{} {} with {}{}".format(method.decode(), path.decode(), body.name,
                                            ", pipelined" if pipelined else "")
            connection = self.connect()
            connection.send([request + SECOND] if pipelined else [request])
            first = self.response(connection, what)
            self.assertIsNotNone(first, what)
            status, response_headers, _ = first
            self.assertEqual(status, expected, what)
            if body.fits:
                self.assertNotEqual(response_headers.get(b"connection"), b"close", what)
                if not pipelined:
                    connection.sender.join(30)
                    connection.sock.sendall(SECOND)
                second = self.response(connection, what + ", second request")
                self.assertIsNotNone(second, what + ": the second request was not answered")
                self.assertEqual(second[0], 200, what)
            else:
                self.assertEqual(response_headers.get(b"connection"), b"close", what)
                self.assertIsNone(self.response(connection, what + ", after the answer"),
                                  what + ": answered after a cut body")
            connection.close()

    def response(self, connection, what):
        try:
            return connection.response()
        except socket.timeout:
            self.fail(what + ": nothing within the timeout")

    def each_body(self, method, path, headers, expected, bodies=BODIES):
        for body in bodies:
            self.exchange(method, path() if callable(path) else path, headers, body, expected)

    def stored(self):
        """Every file under the storage root with its content."""
        files = {}
        for directory, _, names in os.walk(self.root):
            for name in names:
                with open(os.path.join(directory, name), "rb") as f:
                    files[os.path.join(directory, name)] = f.read()
        return files

    def test_401_without_credentials(self):
        upload = self.start_upload()
        before = self.stored()
        self.each_body(b"PATCH", upload, [], 401)
        self.each_body(b"PUT", with_digest(upload), [], 401)
        self.each_body(b"POST", b"/v2/a/b/blobs/uploads/?digest=" + ZERO_DIGEST, [], 401)
        self.each_body(b"PUT", b"/v2/a/b/manifests/v1", [b"Content-Type: application/vnd.oci.image.manifest.v1+json"],
                       401)
        # Nothing of any of those requests reached storage.
        self.assertEqual(self.stored(), before)

    def test_404(self):
        self.each_body(b"PATCH", UNKNOWN_UPLOAD, [CREDENTIALS], 404)
        self.each_body(b"PUT", UNKNOWN_UPLOAD + b"?digest=" + ZERO_DIGEST, [CREDENTIALS], 404)
        self.each_body(b"POST", b"/v2/nothing-here", [CREDENTIALS], 404)



class EarlyAnswerTests(EarlyAnswerChecks, unittest.TestCase):
    def start(self):
        config = minimal_config(
            storage={"filesystem": {"rootdirectory": self.root}},
            auth={"htpasswd": {"realm": "early", "path": self.htpasswd}},
        )
        return start_daemon(self, config, workdir=self.work).port

    def test_413(self):
        big = [body for body in BODIES if body.size > 4 * MiB]
        self.each_body(b"PUT", b"/v2/a/b/manifests/v1", [CREDENTIALS], 413, big)
        self.each_body(b"PATCH", b"/elsewhere", [CREDENTIALS], 413, big)
        self.each_body(b"POST", b"/elsewhere", [CREDENTIALS], 413, big)

    def test_416(self):
        for method in (b"PATCH", b"PUT"):
            for body in BODIES:
                upload = self.start_upload()
                if method == b"PUT":
                    upload = with_digest(upload)
                # An offset the upload is not at.
                headers = [CREDENTIALS, b"Content-Range: %d-%d" % (1000, 1000 + max(body.size, 1) - 1)]
                self.exchange(method, upload, headers, body, 416)

    def test_400(self):
        self.each_body(b"PATCH", b"/v2/Not_A_Name/blobs/uploads/x", [CREDENTIALS], 400)
        for body in BODIES:
            self.exchange(b"PUT", with_digest(self.start_upload(), b"sha256:nothex"), [CREDENTIALS], body, 400)
        self.each_body(b"POST", b"/v2/a/b/blobs/uploads/?digest=sha256:nothex", [CREDENTIALS], 400)

    def test_pipelined_answers_in_order(self):
        # Three early answers and a normal one, all sent before any answer.
        upload = self.start_upload()
        connection = self.connect()
        requests = [
            b"PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n" % upload + b"x" * 20,
            b"PATCH %s HTTP/1.1\r\nHost: x\r\n%s\r\nContent-Length: 20\r\nContent-Range: 22-41\r\n\r\n"
            % (upload, CREDENTIALS) + b"x" * 20,
            b"POST /v2/nothing-here HTTP/1.1\r\nHost: x\r\n%s\r\nTransfer-Encoding: chunked\r\n\r\n" % CREDENTIALS
            + chunked(100 * KiB),
            SECOND,
        ]
        connection.send([b"".join(requests)])
        statuses = [connection.response()[0] for _ in requests]
        self.assertEqual(statuses, [401, 416, 404, 200])



class ReferenceEarlyAnswerTests(EarlyAnswerChecks, unittest.TestCase):
    """
    The same checks against Debian's docker-registry (Distribution 2.8 on
    Go's net/http): what this module expects is what Go's server does.
    """

    def start(self):
        server = start_reference(self.root, workdir=self.work, htpasswd=self.htpasswd)
        self.addCleanup(server.kill)
        return server.port


class UnreadBodyTests(unittest.TestCase):
    """Bodies nobody will use are not read: the 401 comes at once."""

    def setUp(self):
        work = os.path.abspath(self.mktemp())
        os.makedirs(work)
        htpasswd = os.path.join(work, "htpasswd")
        write_htpasswd(htpasswd, {"alice": "wonderland"})
        config = minimal_config(auth={"htpasswd": {"realm": "early", "path": htpasswd}})
        self.daemon = start_daemon(self, config, workdir=work)

    def answer_while_sending(self, pieces):
        connection = Connection(self.daemon.port)
        self.addCleanup(connection.close)
        started = time.monotonic()
        connection.send(pieces)
        first = connection.response()
        elapsed = time.monotonic() - started
        self.assertIsNotNone(first)
        status, headers, _ = first
        self.assertEqual((status, headers.get(b"connection")), (401, b"close"))
        # The daemon closes its end after the answer.
        self.assertIsNone(connection.response())
        connection.close()
        return elapsed, connection.sent

    def test_one_gib_patch(self):
        size = 1024 * MiB
        head = (b"PATCH /v2/a/b/blobs/uploads/x HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
        piece = b"\0" * MiB
        elapsed, sent = self.answer_while_sending([head] + [piece] * 1024)
        self.assertLess(elapsed, 10.0)
        self.assertLess(sent, size // 4)

    def test_endless_chunked_post(self):
        head = (b"POST /v2/a/b/blobs/uploads/?digest=%s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                % ZERO_DIGEST)
        chunk = b"%x\r\n" % (64 * KiB) + b"\0" * (64 * KiB) + b"\r\n"

        def endless():
            yield head
            while True:
                yield chunk

        elapsed, sent = self.answer_while_sending(endless())
        self.assertLess(elapsed, 10.0)
        self.assertLess(sent, 256 * MiB)

    def test_answered_before_the_body_is_sent(self):
        # Only the head and a little of a 3 MiB body are sent: the answer
        # comes without waiting for the rest, whatever the body was for.
        targets = [
            (b"PATCH", b"/v2/a/b/blobs/uploads/x"),
            (b"PUT", b"/v2/a/b/blobs/uploads/x?digest=" + ZERO_DIGEST),
            (b"POST", b"/v2/a/b/blobs/uploads/?digest=" + ZERO_DIGEST),
            (b"PUT", b"/v2/a/b/manifests/v1"),
            (b"POST", b"/v2/a/b/blobs/uploads/"),
            (b"POST", b"/v2/nothing-here"),
        ]
        for method, path in targets:
            connection = Connection(self.daemon.port)
            self.addCleanup(connection.close)
            connection.send([b"%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (method, path, 3 * MiB)
                             + b"x" * (10 * KiB)])
            try:
                status, headers, _ = connection.response()
            except socket.timeout:
                self.fail("{} {}: no answer before the body".format(method, path))
            self.assertEqual((status, headers.get(b"connection")), (401, b"close"), (method, path))
            connection.close()

    def test_expect_100_continue(self):
        head = (b"PATCH %s HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 20\r\n%s\r\n")
        # Refused: the answer comes instead of "100 Continue", the body is
        # never asked for, and the connection closes.
        connection = Connection(self.daemon.port)
        self.addCleanup(connection.close)
        connection.sock.sendall(head % (b"/v2/a/b/blobs/uploads/x", b""))
        status, headers, _ = connection.response()
        self.assertEqual((status, headers.get(b"connection")), (401, b"close"))
        self.assertIsNone(connection.response())
        # Accepted: asked for once authenticated, then stored.
        connection = Connection(self.daemon.port)
        self.addCleanup(connection.close)
        authorization = CREDENTIALS + b"\r\n"
        connection.sock.sendall(b"POST /v2/a/b/blobs/uploads/ HTTP/1.1\r\nHost: x\r\n%sContent-Length: 0\r\n\r\n"
                                % authorization)
        status, headers, _ = connection.response()
        self.assertEqual(status, 202)
        location = re.sub(rb"^https?://[^/]+", b"", headers[b"location"])
        connection.sock.sendall(head % (location, authorization))
        self.assertEqual(connection.response()[0], 100)
        connection.sock.sendall(b"y" * 20)
        status, headers, _ = connection.response()
        self.assertEqual((status, headers.get(b"range")), (202, b"0-19"))

    def whole_body_then_answer(self, method, path, body, headers=None):
        """As Python's http.client (and curl): the whole body is written before the answer is read."""
        connection = http.client.HTTPConnection("127.0.0.1", self.daemon.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            response.read()
            return response.status, response.getheader("connection")
        finally:
            connection.close()

    def test_answer_reaches_a_client_still_writing(self):
        # After a cut body the daemon reads and drops what the client still
        # sends for a moment before closing: a close with the client's bytes
        # unread would break its write before it reads the answer.
        for size in (8 * MiB, 32 * MiB):
            self.assertEqual(self.whole_body_then_answer("PATCH", "/v2/a/b/blobs/uploads/x", b"z" * size),
                             (401, "close"))
        # The same for requests refused by the channel itself.
        self.assertEqual(
            self.whole_body_then_answer("PATCH", "/v2/a/b/blobs/uploads/x", b"z" * (8 * MiB),
                                        {"X-Big": "h" * (70 * KiB)}),
            (431, "close"),
        )


class TLSEarlyAnswerTests(unittest.TestCase):
    """The same over TLS, whose close differs (no half-close under TLS)."""

    def setUp(self):
        from tests.test_service_daemon import make_certificate

        work = os.path.abspath(self.mktemp())
        os.makedirs(work)
        cert, key, _ = make_certificate(work, "early")
        self.daemon = start_daemon(self, minimal_config(http={"tls": {"certificate": cert, "key": key}}),
                                   workdir=work, scheme="https")
        self.context = ssl.create_default_context()
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE

    def request(self, size):
        connection = http.client.HTTPSConnection("127.0.0.1", self.daemon.port, timeout=30, context=self.context)
        try:
            connection.request("PATCH", "/elsewhere", body=b"z" * size)
            response = connection.getresponse()
            response.read()
            status = response.status, response.getheader("connection")
            if status[1] != "close":
                connection.request("GET", "/")
                second = connection.getresponse()
                second.read()
                status += (second.status,)
            return status
        finally:
            connection.close()

    def test_cut_and_discarded_bodies(self):
        self.assertEqual(self.request(100 * KiB), (413, None, 200))
        self.assertEqual(self.request(8 * MiB), (413, "close"))

    def test_closed_with_tls_close_notify(self):
        # The close after a cut body is TLS's own (close_notify), not a bare
        # TCP close under it, which TLS clients take for a truncation attack.
        raw = socket.create_connection(("127.0.0.1", self.daemon.port), timeout=30)
        tls = self.context.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False)
        self.addCleanup(tls.close)
        tls.sendall(b"PATCH /elsewhere HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (8 * MiB)
                    + b"z" * (64 * KiB))
        received = b""
        while True:
            chunk = tls.recv(65536)  # SSLEOFError without close_notify
            if not chunk:
                break
            received += chunk
        self.assertTrue(received.startswith(b"HTTP/1.1 413 "), received[:100])
        self.assertIn(b"\r\nConnection: close\r\n", received)
