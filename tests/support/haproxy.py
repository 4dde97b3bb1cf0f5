"""
Debian's ``haproxy`` in front of several registries, as docs/scaling.md
configures it: round robin per request, health checks on ``/v2/``, and
an ``X-Served-By`` response header naming the instance (for the tests).
"""

import os
import signal
import socket
import subprocess
import time

from tests.support.daemon import free_port
from tests.support.requirements import require_binary

CONFIG = """\
global
    maxconn 1024

defaults
    mode http
    option httplog
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    # A request to an instance that died is retried on another one.
    retries 2
    option redispatch

frontend registry
    bind 127.0.0.1:{port}
    # Blob uploads stream: no body size limit here, the registry checks.
    default_backend spectroreg

backend spectroreg
    balance roundrobin
    option httpchk GET /v2/
    # 200 without auth, 401 with auth: either means the instance answers.
    http-check expect rstatus (200|401)
    http-response set-header X-Served-By %s
{servers}
"""


class HAProxy:
    def __init__(self, workdir, backends):
        self.program = require_binary("haproxy")
        self.port = free_port()
        self.workdir = workdir
        self.backends = backends  # [(name, "host:port")]
        self.process = None

    @property
    def netloc(self):
        return "127.0.0.1:{}".format(self.port)

    host = "127.0.0.1"

    def config_text(self):
        servers = "\n".join("    server {} {} check inter 500ms fall 2 rise 1".format(name, address)
                            for name, address in self.backends)
        return CONFIG.format(port=self.port, servers=servers)

    def start(self, timeout=15.0):
        path = os.path.join(self.workdir, "haproxy.cfg")
        with open(path, "w") as f:
            f.write(self.config_text())
        check = subprocess.run([self.program, "-c", "-f", path], capture_output=True)
        if check.returncode != 0:
            raise AssertionError("haproxy -c refused the config: " + check.stdout.decode() + check.stderr.decode())
        log = open(os.path.join(self.workdir, "haproxy.log"), "ab")
        with log:
            self.process = subprocess.Popen([self.program, "-db", "-f", path], stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if self.process.poll() is not None:
                    raise AssertionError("haproxy exited: see " + self.workdir)
                time.sleep(0.05)
        raise AssertionError("haproxy did not come up within {}s".format(timeout))

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.process = None
