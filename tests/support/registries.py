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
with the same Python as the tests, from the source tree.
"""

import os
import socket
import subprocess
import sys
import tempfile

import yaml

from tests.support.requirements import require_external
from tests.support.reference import (
    ServerProcess,
    clean_environment,
    reference_config,
    start_reference,
    wait_http_ok,
)

SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KINDS = ("spectroreg", "docker-registry")


def free_port():
    """A port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spectroreg_config(root_directory=None, delete=True, port=0, htpasswd=None):
    """The same Distribution configuration the reference gets, on C{port}."""
    config = reference_config(root_directory, delete, htpasswd)
    config["http"]["addr"] = "127.0.0.1:{}".format(port)
    return config


def start_spectroreg(root_directory=None, workdir=None, delete=True, htpasswd=None, timeout=30.0):
    """Start ``python -m spectroreg serve CONFIG`` and wait until ``/v2/`` answers."""
    require_external("the spectroreg daemon running as a server on 127.0.0.1")
    if workdir is None:
        workdir = tempfile.mkdtemp(prefix="spectroreg-")
    os.makedirs(workdir, exist_ok=True)
    port = free_port()
    config_path = os.path.join(workdir, "spectroreg.yml")
    with open(config_path, "w") as f:
        yaml.safe_dump(spectroreg_config(root_directory, delete, port, htpasswd), f)
    log_path = os.path.join(workdir, "spectroreg.log")
    env = clean_environment()
    env["PYTHONPATH"] = os.pathsep.join(
        [SOURCE_ROOT] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["PYTHONUNBUFFERED"] = "1"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "spectroreg", "serve", config_path],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=env, cwd=workdir,
        )
    server = ServerProcess("spectroreg", process, "127.0.0.1", port, log_path,
                           root=root_directory, config_path=config_path)
    try:
        wait_http_ok(server.host, server.port, timeout=timeout, process=process)
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
