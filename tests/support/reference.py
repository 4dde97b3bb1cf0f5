"""
Debian's ``docker-registry`` (CNCF Distribution 2.8) as a reference server.

The integration tests push the same images into Distribution and into
spectroreg, serve one's data tree with the other, and compare what comes
back; the memory benchmark measures both side by side. This module starts
Distribution as a subprocess on 127.0.0.1 with a generated configuration,
waits until it answers ``GET /v2/``, and kills it on cleanup.

``ServerProcess`` is also the handle the tests use for any registry
subprocess: its URL, pid, resident memory, log, and stop()/kill().
"""

import http.client
import os
import re
import signal
import subprocess
import tempfile
import time

import yaml

from tests.support.requirements import require_binary

_LISTENING = re.compile(r"listening on (?:\[?[0-9a-fA-F:.]*\]?):(\d+)")


def clean_environment(extra=None):
    """The environment for a registry subprocess, without any ``REGISTRY_*``
    or ``AWS_*``.

    Both Distribution and spectroreg apply ``REGISTRY_*`` variables over the
    configuration file, and their S3 clients read ``AWS_*`` ones (credentials,
    a CA bundle Distribution 2.8 cannot load over plain HTTP): a stray one in
    the test environment would silently change the server under test.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REGISTRY_", "AWS_"))}
    env.update(extra or {})
    return env


def read_status_bytes(pid, field):
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``) in bytes."""
    try:
        with open("/proc/{}/status".format(pid)) as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def wait_http_ok(host, port, path="/v2/", timeout=30.0, process=None, accept=(200, 401)):
    """Poll C{GET path} until it answers one of C{accept}; raise on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError("server exited with status {}".format(process.returncode))
        try:
            connection = http.client.HTTPConnection(host, port, timeout=2)
            try:
                connection.request("GET", path)
                response = connection.getresponse()
                response.read()
                if response.status in accept:
                    return response.status
                last = "HTTP {}".format(response.status)
            finally:
                connection.close()
        except OSError as e:
            last = repr(e)
        time.sleep(0.05)
    raise RuntimeError("no answer on {}:{}{} within {}s ({})".format(host, port, path, timeout, last))


class ServerProcess(object):
    """A registry server running as a subprocess on 127.0.0.1."""

    def __init__(self, name, process, host, port, log_path, root=None, config_path=None):
        self.name = name
        self.process = process
        self.host = host
        self.port = port
        self.log_path = log_path
        self.root = root
        self.config_path = config_path

    @property
    def pid(self):
        return self.process.pid

    @property
    def netloc(self):
        """``127.0.0.1:PORT``, as skopeo and image references want it."""
        return "{}:{}".format(self.host, self.port)

    @property
    def url(self):
        return "http://{}".format(self.netloc)

    def running(self):
        return self.process.poll() is None

    def rss(self):
        """Current resident set size in bytes (None once the process is gone)."""
        return read_status_bytes(self.pid, "VmRSS")

    def peak_rss(self):
        """Peak resident set size (``VmHWM``) in bytes (None once gone)."""
        return read_status_bytes(self.pid, "VmHWM")

    def log_text(self, limit=20000):
        try:
            with open(self.log_path, "rb") as log:
                data = log.read()
        except OSError:
            return ""
        return data[-limit:].decode("utf-8", "replace")

    def stop(self, timeout=10.0):
        """SIGTERM, then SIGKILL if it has not exited after C{timeout} seconds."""
        if self.process.poll() is None:
            try:
                self.process.send_signal(signal.SIGTERM)
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            except ProcessLookupError:
                pass
        return self.process.returncode

    def kill(self):
        """SIGKILL, as a crash would, and reap the process."""
        if self.process.poll() is None:
            try:
                self.process.kill()
            except ProcessLookupError:
                pass
        self.process.wait()
        return self.process.returncode

    def __repr__(self):
        return "<{} pid={} {}>".format(self.name, self.pid, self.url)


def reference_config(root_directory=None, delete=True, htpasswd=None, secret="spectroreg-tests"):
    """Distribution's configuration for a test server on 127.0.0.1, any free port.

    C{root_directory} None selects the in-memory driver. Upload purging is
    off so that nothing changes a shared tree behind a test's back; the HTTP
    secret is fixed so upload URLs stay valid across a restart.
    """
    if root_directory is None:
        storage = {"inmemory": {}}
    else:
        storage = {"filesystem": {"rootdirectory": str(root_directory)}}
    storage["delete"] = {"enabled": bool(delete)}
    storage["maintenance"] = {"uploadpurging": {"enabled": False}}
    config = {
        "version": "0.1",
        "log": {"level": "info", "accesslog": {"disabled": False}},
        "storage": storage,
        "http": {"addr": "127.0.0.1:0", "secret": secret},
    }
    if htpasswd is not None:
        config["auth"] = {"htpasswd": {"realm": "spectroreg-tests", "path": str(htpasswd)}}
    return config


def write_config(workdir, name, config):
    """Write C{config} as C{name}.yml in C{workdir} (a new temp dir if None): (workdir, path)."""
    if workdir is None:
        workdir = tempfile.mkdtemp(prefix=name + "-")
    os.makedirs(workdir, exist_ok=True)
    config_path = os.path.join(workdir, name + ".yml")
    with open(config_path, "w") as f:
        yaml.safe_dump(config, f)
    return workdir, config_path


def start_reference(root_directory=None, workdir=None, delete=True, htpasswd=None, timeout=30.0, config=None):
    """Start Debian's ``docker-registry`` and return its L{ServerProcess}.

    C{config}: a whole configuration of the caller's (its ``http.addr``
    should be ``127.0.0.1:0``), instead of L{reference_config}'s.
    C{root_directory}: the filesystem driver's root (None: in-memory).
    C{workdir}: where the config and the log go (a new temp dir if None).
    The caller must stop it (``addCleanup(server.kill)``); a start that
    fails kills what it started.
    """
    binary = require_binary("docker-registry")
    workdir, config_path = write_config(
        workdir, "docker-registry", config or reference_config(root_directory, delete, htpasswd))
    log_path = os.path.join(workdir, "docker-registry.log")
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [binary, "serve", config_path],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=clean_environment(),
            cwd=workdir,
        )
    server = ServerProcess("docker-registry", process, "127.0.0.1", None, log_path,
                           root=root_directory, config_path=config_path)
    try:
        server.port = wait_for_port(server, timeout)
        wait_http_ok(server.host, server.port, timeout=timeout, process=process)
    except BaseException as e:
        server.kill()
        raise RuntimeError("docker-registry did not start: {}\n{}".format(e, server.log_text()))
    return server


def wait_for_port(server, timeout):
    """Distribution logs the address it really bound (``http.addr`` port 0)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = _LISTENING.search(server.log_text())
        if match:
            return int(match.group(1))
        if not server.running():
            raise RuntimeError("exited with status {}".format(server.process.returncode))
        time.sleep(0.05)
    raise RuntimeError("no 'listening on' line within {}s".format(timeout))


def garbage_collect(root_directory, workdir=None, delete_untagged=False, dry_run=False,
                    timeout=120.0):
    """Run Distribution's offline ``docker-registry garbage-collect`` on a tree.

    Returns its output (str); raises RuntimeError with the output when it
    fails. No server may be writing to C{root_directory} meanwhile.
    """
    binary = require_binary("docker-registry")
    workdir, config_path = write_config(
        workdir, "garbage-collect", reference_config(root_directory, delete=True))
    argv = [binary, "garbage-collect", config_path]
    if delete_untagged:
        argv.append("--delete-untagged")
    if dry_run:
        argv.append("--dry-run")
    completed = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, env=clean_environment(), cwd=workdir,
                               timeout=timeout)
    output = completed.stdout.decode("utf-8", "replace")
    if completed.returncode != 0:
        raise RuntimeError("docker-registry garbage-collect failed ({}):\n{}".format(
            completed.returncode, output))
    return output
