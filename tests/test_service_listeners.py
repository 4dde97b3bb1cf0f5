"""
The listening sockets: their listen queue (the kernel's maximum, as Go's
listeners), checked on the real daemon's sockets with ``ss`` and on every
endpoint ``endpoints_for`` makes; plain HTTP sent to the TLS port.
"""

import os
import ssl
import signal
import socket
import subprocess
import time

from twisted.internet.testing import MemoryReactor
from twisted.internet.protocol import Factory
from twisted.trial import unittest

from spectroreg.tls.server import PLAIN_HTTP_ANSWER, looks_like_http
from spectroreg.listeners import SOMAXCONN_PATH, endpoints_for, listen_backlog
from tests.support.daemon import minimal_config, start_daemon
from tests.support.requirements import require_binary
from tests.test_service_daemon import make_certificate


def kernel_backlog():
    with open(SOMAXCONN_PATH) as f:
        return min(int(f.read()), 65535)


def listen_queue(port):
    """The listen queue of the socket listening on TCP C{port} (ss's Send-Q)."""
    ss = require_binary("ss")
    output = subprocess.run(
        [ss, "-Hltn", "sport = :{}".format(port)], check=True, capture_output=True, text=True, timeout=30,
    ).stdout
    queues = [int(line.split()[2]) for line in output.splitlines() if line.strip()]
    if not queues:
        raise AssertionError("nothing listens on {}: {!r}".format(port, output))
    return queues


class BacklogTests(unittest.TestCase):
    def test_kernel_maximum(self):
        if not os.path.exists(SOMAXCONN_PATH):
            raise unittest.SkipTest("no " + SOMAXCONN_PATH)
        self.assertEqual(listen_backlog(), kernel_backlog())

    def test_read_from_the_file(self):
        path = self.mktemp()
        for text, expected in [("4096\n", 4096), ("128", 128), ("200000\n", 65535),
                               ("0\n", socket.SOMAXCONN), ("x\n", socket.SOMAXCONN)]:
            with open(path, "w") as f:
                f.write(text)
            self.assertEqual(listen_backlog(path), expected, text)
        self.assertEqual(listen_backlog(path + ".missing"), socket.SOMAXCONN)

    def test_every_endpoint(self):
        reactor = MemoryReactor()
        unix = os.path.abspath(self.mktemp())
        for addr, net in [("127.0.0.1:0", "tcp"), ("[::1]:0", "tcp"), (":0", "tcp"), (unix, "unix")]:
            for endpoint, _ in endpoints_for(addr, net, reactor, backlog=1234):
                endpoint.listen(Factory())
        backlogs = [server[2] for server in reactor.tcpServers] + [server[2] for server in reactor.unixServers]
        self.assertGreaterEqual(len(backlogs), 4)
        self.assertEqual(set(backlogs), {1234})


class DaemonBacklogTests(unittest.TestCase):
    """The daemon's sockets, plain and TLS, as the kernel reports them."""

    def assert_burst(self, daemon, count=1000):
        # With the daemon stopped, nothing is accepted: every connect must
        # be queued by the kernel. A full queue drops the SYN, and the
        # client waits a second for its retransmit.
        sockets = []
        daemon.signal(signal.SIGSTOP)
        try:
            for _ in range(count):
                sockets.append(socket.create_connection(("127.0.0.1", daemon.port), timeout=0.9))
        finally:
            daemon.signal(signal.SIGCONT)
            for s in sockets:
                s.close()
        self.assertEqual(len(sockets), count)

    def test_plain_listener(self):
        daemon = start_daemon(self, minimal_config())
        self.assertEqual(listen_queue(daemon.port), [kernel_backlog()])
        self.assert_burst(daemon)

    def test_tls_listener(self):
        work = os.path.abspath(self.mktemp())
        os.makedirs(work)
        cert, key, _ = make_certificate(work, "backlog")
        config = minimal_config(http={"tls": {"certificate": cert, "key": key}})
        daemon = start_daemon(self, config, workdir=work, scheme="https")
        self.assertEqual(listen_queue(daemon.port), [kernel_backlog()])


def read_to_end(sock):
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


class PlainHTTPOnTLSPortTests(unittest.TestCase):
    def test_sniffing(self):
        for head in [b"GET /v2/ HTTP/1.1", b"PATCH /v2/a", b"DELETE /", b"HEAD ", b"OPTIONS * HTTP/1.1", b"G", b"PUT"]:
            self.assertTrue(looks_like_http(head), head)
        for head in [b"\x16\x03\x01\x02\x00", b"", b"get /", b"\x80\x2c\x01", b"GET\x00/"]:
            self.assertFalse(looks_like_http(head), head)

    def test_answered_as_go_does(self):
        work = os.path.abspath(self.mktemp())
        os.makedirs(work)
        cert, key, _ = make_certificate(work, "plain")
        daemon = start_daemon(self, minimal_config(http={"tls": {"certificate": cert, "key": key}}),
                              workdir=work, scheme="https")
        requests = [
            b"GET /v2/ HTTP/1.1\r\nHost: localhost\r\n\r\n",
            b"PATCH /v2/a/b/blobs/uploads/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\r\nabc",
            b"HEAD / HTTP/1.0\r\n\r\n",
        ]
        for raw in requests:
            with socket.create_connection(("127.0.0.1", daemon.port), timeout=30) as s:
                # In two pieces: the first shorter than a TLS record header.
                s.sendall(raw[:2])
                time.sleep(0.05)
                s.sendall(raw[2:])
                self.assertEqual(read_to_end(s), PLAIN_HTTP_ANSWER)
        self.assertEqual(
            PLAIN_HTTP_ANSWER, b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
        )
        # TLS on the same port still works.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=30) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"GET /v2/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                self.assertTrue(read_to_end(tls).startswith(b"HTTP/1.1 200 OK\r\n"))
