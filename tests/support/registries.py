"""
One way for the integration tests to start either registry server.

``start_registry("spectroreg", ...)`` and ``start_registry("docker-registry", ...)``
both return a L{tests.support.reference.ServerProcess} listening on
127.0.0.1 (URL, pid, RSS, log, stop()/kill()), configured alike: filesystem
storage under C{root_directory} (in memory when None), deletes enabled or
not. The tests are written once and run against both: against Debian's
``docker-registry`` they prove the test itself is right; against spectroreg
they prove the daemon.

spectroreg runs as the real daemon, ``python -m spectroreg serve CONFIG``,
with the same Python as the tests, from the source tree, started by
L{tests.support.daemon.RegistryDaemon}.
"""

import tempfile

from tests.support.requirements import require_external
from tests.support.reference import (
    ServerProcess,
    reference_config,
    start_reference,
    wait_http_ok,
)

KINDS = ("spectroreg", "docker-registry")


def spectroreg_config(root_directory=None, delete=True, port=0, htpasswd=None):
    """The same Distribution configuration the reference gets, on C{port}.

    (The daemon helper sets the real port through ``REGISTRY_HTTP_ADDR``.)
    """
    config = reference_config(root_directory, delete, htpasswd)
    config["http"]["addr"] = "127.0.0.1:{}".format(port)
    return config


class SpectroregProcess(ServerProcess):
    """The daemon started through L{tests.support.daemon.RegistryDaemon}."""

    def __init__(self, daemon, root):
        ServerProcess.__init__(self, "spectroreg", daemon.process, daemon.host, daemon.port,
                               daemon.log_path, root=root, config_path=daemon.config_path)
        self.daemon = daemon

    def stop(self, timeout=10.0):
        if self.daemon.running:
            return self.daemon.stop(timeout)
        self.daemon.kill()
        return self.process.returncode

    def kill(self):
        self.daemon.kill()
        return self.process.returncode


def start_spectroreg(root_directory=None, workdir=None, delete=True, htpasswd=None, timeout=30.0):
    """Start ``python -m spectroreg serve CONFIG`` and wait until ``/v2/`` answers."""
    require_external("the spectroreg daemon running as a server on 127.0.0.1")
    from tests.support.daemon import RegistryDaemon

    if workdir is None:
        workdir = tempfile.mkdtemp(prefix="spectroreg-")
    daemon = RegistryDaemon(spectroreg_config(root_directory, delete, 0, htpasswd),
                            workdir=workdir, name="spectroreg")
    daemon.start(timeout=timeout)
    server = SpectroregProcess(daemon, root_directory)
    try:
        wait_http_ok(server.host, server.port, timeout=timeout, process=server.process)
    except BaseException as e:
        server.kill()
        raise RuntimeError("spectroreg did not start: {}\n{}".format(e, server.log_text()))
    return server


def start_registry(kind, root_directory=None, workdir=None, delete=True, htpasswd=None,
                   timeout=30.0):
    """Start the registry C{kind} (one of L{KINDS}); the caller kills it."""
    if kind == "spectroreg":
        return start_spectroreg(root_directory, workdir, delete, htpasswd, timeout)
    if kind == "docker-registry":
        return start_reference(root_directory, workdir, delete, htpasswd, timeout)
    raise ValueError("unknown registry kind {!r}".format(kind))
