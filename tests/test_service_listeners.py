"""
The listening sockets: their listen queue (the kernel's maximum, as Go's
listeners), checked on the real daemon's sockets with ``ss`` and on every
endpoint ``endpoints_for`` makes.
"""

import os
import signal
import socket
import subprocess
import time

from twisted.internet.testing import MemoryReactor
from twisted.internet.protocol import Factory
from twisted.trial import unittest

from spectroreg.service import SOMAXCONN_PATH, endpoints_for, listen_backlog
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
