"""
Start the real spectroreg daemon as a subprocess, for tests.

    from tests.support.daemon import start_daemon

    class T(unittest.TestCase):
        def test_it(self):
            daemon = start_daemon(self, {"storage": {"inmemory": None}})
            status, headers, body = daemon.request("GET", "/v2/")

The daemon runs ``sys.executable -m spectroreg serve CONFIG`` from the
repository root (``PYTHONPATH`` = the root), with a config file the test
gives (a dict, dumped as YAML, or YAML text), listening on 127.0.0.1 on a
free port (set through ``REGISTRY_HTTP_ADDR``, which wins over the file),
its stdout and stderr going to ``daemon.log`` in its work directory.
``start()`` returns once ``GET /`` answers; ``stop()`` sends SIGTERM and
waits, ``kill()`` sends SIGKILL. ``start_daemon(testcase, ...)`` registers
the kill as a cleanup. Each blocking method has an ``*_async`` twin that
waits with the reactor's clock, for ``@async_test`` tests whose other parts
run in the same reactor.

Inherited ``REGISTRY_*`` variables are removed from the daemon's
environment, so only what the test passes applies.
"""

import http.client
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

POLL_INTERVAL = 0.02


class DaemonFailed(AssertionError):
    """The daemon did not come up (or not down) as expected; carries its log."""


def _default_sigint():
    """
    In the daemon's process, before exec: SIGINT handled by default, as from
    a terminal. A shell without job control starts background commands with
    SIGINT ignored, and an ignored signal stays ignored across exec (Twisted
    then leaves it so): the tests must not depend on how trial was started.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_listening(process, port, name, workdir, timeout):
    """
    Wait until something accepts connections on 127.0.0.1:C{port}, while
    C{process} (a Popen of program C{name}, logging in C{workdir}) runs.

    @raise AssertionError: it exited, or did not listen within C{timeout} s.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None:
                raise AssertionError("{} exited: see {}".format(name, workdir))
            time.sleep(0.05)
    raise AssertionError("{} did not come up within {}s".format(name, timeout))


def free_port(host="127.0.0.1"):
    """A TCP port nothing listens on right now (bound to 0, then released)."""
    probe = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.bind((host, 0))
        return probe.getsockname()[1]
    finally:
        probe.close()


def minimal_config(**sections):
    """A valid config dict: version 0.1, in-memory storage, plus C{sections}."""
    config = {"version": "0.1", "storage": {"inmemory": None}}
    config.update(sections)
    return config


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._socket_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._socket_path)
        self.sock = sock


class Response:
    """A finished HTTP exchange: C{status}, C{headers} (list of pairs), C{body}."""

    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    def header(self, name):
        """The first value of header C{name} (case-insensitive), or None."""
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def header_values(self, name):
        return [value for key, value in self.headers if key.lower() == name.lower()]

    def __iter__(self):
        # status, headers, body = daemon.request(...)
        return iter((self.status, self.headers, self.body))


class RegistryDaemon:
    """
    One daemon process. See the module docstring.

    @param config: a dict (dumped as YAML), YAML text (str), or None with
        C{config_path} naming an existing file.
    @param workdir: a directory for the config, the log and whatever else;
        a new temporary one when None.
    @param env: extra environment variables (str values).
    @param host: the address to listen on (127.0.0.1).
    @param port: a fixed port; a free one when None.
    @param listen: False to leave ``http.addr`` to the config (e.g. a unix
        socket); then give C{unix_socket} or C{url} for the readiness probe.
    @param unix_socket: the socket path the daemon listens on, if any.
    @param scheme: "http" or "https" (probes then use C{ssl_context}, which
        by default verifies nothing).
    @param argv: the command, with C{"{config}"} replaced by the config
        path; ``[python, -m, spectroreg, serve, {config}]`` by default.
    @param python: the interpreter (the one running the tests by default).
    """

    def __init__(
        self,
        config=None,
        workdir=None,
        env=None,
        host="127.0.0.1",
        port=None,
        listen=True,
        unix_socket=None,
        scheme="http",
        ssl_context=None,
        argv=None,
        python=None,
        config_path=None,
        name="daemon",
    ):
        if workdir is None:
            workdir = tempfile.mkdtemp(prefix="spectroreg-daemon-")
        self.workdir = os.path.abspath(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.name = name
        self.python = python or sys.executable
        self.host = host
        self.port = port
        self._fixed_port = port is not None
        self.listen = listen
        self.unix_socket = unix_socket
        self.scheme = scheme
        self.ssl_context = ssl_context
        self.extra_env = dict(env or {})
        self.argv = argv
        self.log_path = os.path.join(self.workdir, name + ".log")
        self.config_path = config_path or os.path.join(self.workdir, name + ".yml")
        if config is not None:
            self.write_config(config)
        self.process = None
        self._log_file = None
        self.started_at = None
        self.ready_at = None

    # -- configuration ----------------------------------------------------

    def write_config(self, config):
        """(Re)write the config file; a running daemon sees it after a restart."""
        text = config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False)
        with open(self.config_path, "w", encoding="utf-8") as f:
            f.write(text)

    def environment(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        path = env.get("PYTHONPATH")
        env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + path if path else "")
        env["PYTHONUNBUFFERED"] = "1"
        if self.listen:
            host = "[{}]".format(self.host) if ":" in self.host else self.host
            env["REGISTRY_HTTP_ADDR"] = "{}:{}".format(host, self.port)
        env.update(self.extra_env)
        return env

    def command(self):
        argv = self.argv or [self.python, "-m", "spectroreg", "serve", "{config}"]
        return [a.replace("{config}", self.config_path) for a in argv]

    # -- addresses --------------------------------------------------------

    @property
    def netloc(self):
        host = "[{}]".format(self.host) if ":" in self.host else self.host
        return "{}:{}".format(host, self.port)

    @property
    def url(self):
        return "{}://{}".format(self.scheme, self.netloc)

    def connection(self, timeout=10.0):
        """A fresh http.client connection to the daemon."""
        if self.unix_socket is not None and not self.listen:
            return _UnixHTTPConnection(self.unix_socket, timeout)
        if self.scheme == "https":
            context = self.ssl_context
            if context is None:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=context)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, headers=None, body=None, timeout=10.0):
        """One request on a new connection; a L{Response}."""
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            data = response.read()
            return Response(response.status, response.reason, response.getheaders(), data)
        finally:
            conn.close()

    # -- life cycle -------------------------------------------------------

    def spawn(self):
        """Start the process without waiting for it to answer."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("the daemon is already running")
        if self.listen and not self._fixed_port:
            self.port = free_port(self.host)
        self._log_file = open(self.log_path, "ab")
        self.started_at = time.monotonic()
        self.ready_at = None
        self.process = subprocess.Popen(
            self.command(),
            cwd=REPO_ROOT,
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=_default_sigint,
        )
        return self.process

    def probe(self):
        """True when ``GET /`` answers (any status)."""
        try:
            conn = self.connection(timeout=1.0)
            try:
                conn.request("GET", "/")
                conn.getresponse().read()
            finally:
                conn.close()
            return True
        except (OSError, http.client.HTTPException):
            return False

    def _check_exited(self):
        code = self.process.poll()
        if code is None:
            return None
        self._close_log()
        return code

    def _retry_port(self, code):
        return (
            self.listen
            and not self._fixed_port
            and code != 0
            and re.search(r"[Aa]ddress (already )?in use", self.log_text()) is not None
        )

    def _starting(self, timeout, attempts):
        """
        Spawn and probe until ``GET /`` answers (retrying another port when
        the one picked was taken); yields each time it wants to wait
        POLL_INTERVAL, so the blocking and the asynchronous start share it.
        """
        for attempt in range(attempts):
            self.spawn()
            deadline = time.monotonic() + timeout
            while True:
                code = self._check_exited()
                if code is not None:
                    break
                if self.probe():
                    self.ready_at = time.monotonic()
                    return
                if time.monotonic() > deadline:
                    self.kill()
                    raise DaemonFailed(
                        "{} did not answer within {}s; log:\n{}".format(self.name, timeout, self.log_text())
                    )
                yield
            if not self._retry_port(code) or attempt == attempts - 1:
                raise DaemonFailed(
                    "{} exited with {} before answering; log:\n{}".format(self.name, code, self.log_text())
                )
        raise DaemonFailed("unreachable")

    def start(self, timeout=15.0, attempts=3):
        """Spawn and wait until ``GET /`` answers; returns self."""
        for _ in self._starting(timeout, attempts):
            time.sleep(POLL_INTERVAL)
        return self

    async def start_async(self, timeout=15.0, attempts=3, reactor=None):
        """L{start} without blocking the reactor between probes."""
        for _ in self._starting(timeout, attempts):
            await _sleep(POLL_INTERVAL, reactor)
        return self

    def run_to_exit(self, timeout=15.0):
        """Spawn and wait for the process to end by itself; its exit status."""
        self.spawn()
        return self.wait(timeout)

    def wait(self, timeout=15.0):
        """Wait for the process to end; its exit status (DaemonFailed on timeout)."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise DaemonFailed(
                "{} did not exit within {}s; log:\n{}".format(self.name, timeout, self.log_text())
            ) from None
        self._close_log()
        return code

    async def wait_async(self, timeout=15.0, reactor=None):
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                self.kill()
                raise DaemonFailed(
                    "{} did not exit within {}s; log:\n{}".format(self.name, timeout, self.log_text())
                )
            await _sleep(POLL_INTERVAL, reactor)
        self._close_log()
        return self.process.returncode

    def signal(self, signum):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)

    def reload(self):
        """SIGHUP."""
        self.signal(signal.SIGHUP)

    def stop(self, timeout=15.0):
        """SIGTERM and wait; the exit status (None if it was not running)."""
        if self.process is None:
            return None
        self.signal(signal.SIGTERM)
        return self.wait(timeout)

    async def stop_async(self, timeout=15.0, reactor=None):
        if self.process is None:
            return None
        self.signal(signal.SIGTERM)
        return await self.wait_async(timeout, reactor)

    def kill(self):
        """SIGKILL if running, and reap; safe to call more than once."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self._close_log()

    def _close_log(self):
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    @property
    def running(self):
        return self.process is not None and self.process.poll() is None

    # -- the log ----------------------------------------------------------

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_lines(self):
        return self.log_text().splitlines()

    def _awaiting_log(self, pattern, timeout, found):
        """
        Poll the log until C{pattern} (a regex) appears, storing the match in
        C{found}; yields each time it wants to wait POLL_INTERVAL, so the
        blocking and the asynchronous waits share it.
        """
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.log_text())
            if match:
                found.append(match)
                return
            if time.monotonic() > deadline:
                raise DaemonFailed(
                    "{!r} not in the log within {}s; log:\n{}".format(pattern, timeout, self.log_text())
                )
            yield

    def wait_for_log(self, pattern, timeout=10.0):
        """Block until C{pattern} (a regex) appears in the log; the match."""
        found = []
        for _ in self._awaiting_log(pattern, timeout, found):
            time.sleep(POLL_INTERVAL)
        return found[0]

    async def wait_for_log_async(self, pattern, timeout=10.0, reactor=None):
        """L{wait_for_log} without blocking the reactor between looks."""
        found = []
        for _ in self._awaiting_log(pattern, timeout, found):
            await _sleep(POLL_INTERVAL, reactor)
        return found[0]


async def _sleep(seconds, reactor=None):
    from twisted.internet import task

    if reactor is None:
        from twisted.internet import reactor
    await task.deferLater(reactor, seconds, lambda: None)


def _prepare(testcase, config, kwargs):
    if "workdir" not in kwargs:
        kwargs["workdir"] = os.path.abspath(testcase.mktemp())
    daemon = RegistryDaemon(config, **kwargs)
    testcase.addCleanup(daemon.kill)
    return daemon


def start_daemon(testcase, config=None, timeout=15.0, **kwargs):
    """
    A started L{RegistryDaemon} whose kill is a cleanup of C{testcase}
    (its work directory under C{testcase.mktemp()} unless given).
    """
    daemon = _prepare(testcase, config, kwargs)
    daemon.start(timeout=timeout)
    return daemon


async def start_daemon_async(testcase, config=None, timeout=15.0, **kwargs):
    """L{start_daemon} for ``@async_test`` tests."""
    daemon = _prepare(testcase, config, kwargs)
    await daemon.start_async(timeout=timeout)
    return daemon


def daemon_for(testcase, config=None, **kwargs):
    """A L{RegistryDaemon}, not started, killed at cleanup."""
    return _prepare(testcase, config, kwargs)
