"""
Debian's ``haproxy`` in front of several registries, configured by the very
file docs/scaling.md shows (its ``bind`` and ``server`` lines swapped for the
test's addresses): round robin per request, health checks on ``/v2/``, an
``X-Served-By`` response header naming the instance.
"""

import os
import signal
import subprocess

from tests.support.daemon import free_port, wait_listening
from tests.support.requirements import require_binary

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                    "docs", "scaling.md")


def documented_config():
    """The haproxy.cfg of docs/scaling.md, as the documentation shows it."""
    with open(DOCS, encoding="utf-8") as f:
        text = f.read()
    block = text.split("<!-- haproxy.cfg begin -->", 1)[1].split("<!-- haproxy.cfg end -->", 1)[0]
    return block.strip().strip("`").strip("\n") + "\n"


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
        """docs/scaling.md's configuration, with this test's addresses."""
        lines = []
        template = None
        for line in documented_config().splitlines():
            stripped = line.strip()
            if stripped.startswith("bind "):
                line = "    bind 127.0.0.1:{}".format(self.port)
            elif stripped.startswith("server "):
                template = template or stripped.split(None, 3)[3]
                continue
            lines.append(line)
        if template is None:
            raise AssertionError("docs/scaling.md's haproxy.cfg has no server line")
        lines += ["    server {} {} {}".format(name, address, template) for name, address in self.backends]
        return "\n".join(lines) + "\n"

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
        wait_listening(self.process, self.port, "haproxy", self.workdir, timeout)
        return self

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.process = None
