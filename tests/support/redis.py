"""
Debian's ``redis-server`` for the tests: one of its own per test (a free
port, a temporary directory, no persistence), stopped and started again at
will to play an outage.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile

from tests.support.daemon import free_port, wait_listening
from tests.support.requirements import require_binary


class RedisServer:
    def __init__(self, workdir, password=None, tls=None):
        self.program = require_binary("redis-server")
        self.port = free_port()
        self.workdir = workdir
        self.password = password
        # (certificate, key): clients speak TLS to tls_port; port stays plain
        # for the test's own checks (L{command}).
        self.tls = tls
        self.tls_port = free_port() if tls else None
        self.process = None

    @property
    def addr(self):
        return "127.0.0.1:{}".format(self.port)

    def start(self, timeout=15.0):
        args = [self.program, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.workdir,
                "--save", "", "--appendonly", "no", "--daemonize", "no"]
        if self.password:
            args += ["--requirepass", self.password]
        if self.tls:
            args += ["--tls-port", str(self.tls_port), "--tls-cert-file", self.tls[0],
                     "--tls-key-file", self.tls[1], "--tls-auth-clients", "no"]
        log = open(os.path.join(self.workdir, "redis-{}.log".format(self.port)), "ab")
        with log:
            self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        wait_listening(self.process, self.port, "redis-server", self.workdir, timeout)
        return self

    def pause(self):
        """Redis stops answering (a stalled server: connections hang)."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self):
        self.process.send_signal(signal.SIGCONT)

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.send_signal(signal.SIGCONT)
            self.process.wait()
        self.process = None

    def command(self, *args):
        """Run one command through a plain socket (checks from the test's side)."""
        from spectroreg.registry.redisclient import ReplyParser, encode

        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as conn:
            if self.password:
                conn.sendall(encode(("AUTH", self.password)))
            conn.sendall(encode(args))
            parser = ReplyParser()
            replies = []
            wanted = 2 if self.password else 1
            while len(replies) < wanted:
                data = conn.recv(65536)
                if not data:
                    raise AssertionError("redis closed the connection")
                replies += parser.feed(data)
            return replies[-1]


def start_redis(testcase, password=None, tls=None):
    """A running redis-server, stopped when C{testcase} ends."""
    workdir = tempfile.mkdtemp(prefix="spectroreg-redis-")
    testcase.addCleanup(shutil.rmtree, workdir, True)
    server = RedisServer(workdir, password=password, tls=tls)
    server.start()
    testcase.addCleanup(server.stop)
    return server
