"""
Several worker processes serving one listening address (``http.workers``).

The daemon started by the user is worker 0. For each address of
``http.addr`` it binds one socket per worker while it may still bind
privileged ports: TCP sockets with ``SO_REUSEPORT`` on the same address,
among which the kernel spreads new connections, or one unix socket that all
of them accept from. It listens on the first itself, and L{WorkerPool}
starts workers 1 … n-1 (``python -m spectroreg.worker``) with the others
as open file descriptors. A worker is a whole daemon on the same
configuration and storage, like the members of a fleet (docs/scaling.md),
except that it listens on what it was given and leaves upload purging and
the collection timer to worker 0.

A worker's log lines reach worker 0 through a pipe and go out with its
own. A worker that exits while the daemon runs is started again (after 1 s,
doubling up to 30 s while it keeps exiting within 10 s of its start).
Stopping the daemon stops the workers with SIGTERM (each drains as the
daemon does), SIGHUP is passed on to them, and a worker whose parent is gone
stops by itself: its stdin is a pipe from worker 0.
"""

import os
import socket
import sys

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from zope.interface import implementer

from spectroreg.config.addresses import join_host_port, split_host_port

log = Logger(namespace="spectroreg.service")

__all__ = ["AdoptedEndpoint", "SharedEndpoint", "WorkerPool", "WorkerRole", "debug_addr_for"]

# The first descriptor a worker's sockets are given as (0-2 are its stdio).
FIRST_FD = 3


@implementer(IStreamServerEndpoint)
class SharedEndpoint:
    """
    One address for C{count} workers. C{listen} binds the sockets, listens
    on the first and keeps the rest in L{sockets} (index 1 … count-1), in
    worker order. TCP: one socket per worker, each with C{SO_REUSEPORT}.
    Unix: one socket, the same for every worker (the path is unlinked
    first by the caller when stale).

    @ivar family: the address family of the sockets.
    @ivar sockets: after C{listen}, the workers' sockets.
    """

    def __init__(self, reactor, family, address, count, backlog, mode=0o666):
        self._reactor = reactor
        self.family = family
        self._address = address
        self._count = count
        self._backlog = backlog
        self._mode = mode
        self.sockets = []

    def listen(self, factory):
        try:
            bound = self._bind()
        except OSError as error:
            host, port = (self._address, 0) if self.family == socket.AF_UNIX else self._address[:2]
            return defer.fail(CannotListenError(host, port, error))
        try:
            port = self._reactor.adoptStreamPort(bound[0].fileno(), self.family, factory)
        except BaseException:
            for sock in bound:
                sock.close()
            return defer.fail()
        if self.family == socket.AF_UNIX:
            # The reactor listens on its own duplicate; the workers share ours.
            self.sockets = [bound[0]] * (self._count - 1)
        else:
            bound[0].close()
            self.sockets = bound[1:]
        return defer.succeed(port)

    def _bind(self):
        if self.family == socket.AF_UNIX:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.bind(self._address)
                os.chmod(self._address, self._mode)
                sock.listen(self._backlog)
            except OSError:
                sock.close()
                raise
            sock.setblocking(False)
            return [sock]
        if self._address[1]:
            self._probe()
        bound = []
        try:
            for _ in range(self._count):
                sock = socket.socket(self.family, socket.SOCK_STREAM)
                bound.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                # Port 0: the first socket picks one, the others join it.
                address = self._address if not bound[1:] else bound[0].getsockname()
                sock.bind(address)
                sock.listen(self._backlog)
                sock.setblocking(False)
        except OSError:
            for sock in bound:
                sock.close()
            raise
        return bound

    def _probe(self):
        """
        Fail as a plain bind would when the port is taken. Sockets with
        C{SO_REUSEPORT} of the same user share a port: without this, a
        second daemon started by mistake on a port another one serves with
        workers would silently take a share of its connections.
        """
        probe = socket.socket(self.family, socket.SOCK_STREAM)
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(self._address)
        finally:
            probe.close()

    def close(self):
        """Close the workers' sockets (the daemon has stopped)."""
        for sock in set(self.sockets):
            sock.close()
        self.sockets = []


@implementer(IStreamServerEndpoint)
class AdoptedEndpoint:
    """A worker's listening socket, inherited as file descriptor C{fd}."""

    def __init__(self, reactor, fd, family):
        self._reactor = reactor
        self.fd = fd
        self.family = family

    def listen(self, factory):
        try:
            # The reactor accepts until EAGAIN: a blocking socket would hang it.
            os.set_blocking(self.fd, False)
            port = self._reactor.adoptStreamPort(self.fd, self.family, factory)
        except BaseException:
            return defer.fail()
        # The reactor has its own duplicate.
        os.close(self.fd)
        return defer.succeed(port)


class WorkerRole:
    """
    What a worker process was started with: its C{index} (1 …) and its
    listening sockets, C{(fd, family)} each, in the order of worker 0's
    listeners.
    """

    def __init__(self, index, sockets):
        self.index = index
        self.sockets = list(sockets)

    @classmethod
    def parse(cls, index, listen):
        """From the command line: C{--index N --listen FD:FAMILY,...}."""
        sockets = []
        for item in listen.split(","):
            fd, _, family = item.partition(":")
            sockets.append((int(fd), int(family)))
        return cls(int(index), sockets)

    def endpoints(self, reactor):
        """An L{AdoptedEndpoint} per socket."""
        return [AdoptedEndpoint(reactor, fd, family) for fd, family in self.sockets]


def _site_directories():
    """Where this interpreter finds installed packages (site-packages, Debian's dist-packages)."""
    import site

    found = set(getattr(site, "getsitepackages", lambda: [])())
    found.add(site.getusersitepackages())
    found.update(path for path in sys.path if os.path.basename(path) in ("site-packages", "dist-packages"))
    return {os.path.abspath(path) for path in found}


def debug_addr_for(addr, index):
    """
    Worker C{index}'s debug listener: C{http.debug.addr} with its port
    moved up by C{index} (port 0 stays 0).
    """
    if index == 0:
        return addr
    host, port = split_host_port(addr)
    return join_host_port(host, port + index if port else 0)


class _WorkerProtocol(ProcessProtocol):
    """One worker process: its output relayed line by line, its end reported."""

    def __init__(self, pool, index):
        self.pool = pool
        self.index = index
        self.started = None
        self.pid = None
        self.ended = defer.Deferred()
        self._partial = {1: b"", 2: b""}

    def connectionMade(self):
        self.started = self.pool.clock.seconds()

    def childDataReceived(self, fd, data):
        text = self._partial.get(fd, b"") + data
        complete, newline, rest = text.rpartition(b"\n")
        self._partial[fd] = rest
        if newline:
            self.pool.relay(complete + newline)

    def childConnectionLost(self, fd):
        rest = self._partial.pop(fd, b"")
        if rest:
            self.pool.relay(rest + b"\n")

    def processEnded(self, reason):
        ended, self.ended = self.ended, None
        self.pool.ended(self, reason)
        ended.callback(reason.value)


class WorkerPool(Service):
    """
    Runs workers 1 … C{count}-1 while the daemon runs (see the module).

    @param endpoints: the L{SharedEndpoint}s of the daemon's listeners,
        listened on before this starts.
    @param config_path: the configuration file worker 0 loaded.
    @param config_data: its bytes as worker 0 read them, which each worker
        loads (from its stdin), so that a worker started again later runs
        the same configuration even if the file changed meanwhile; None:
        the worker reads the file.
    @param relay: called with bytes: complete log lines of a worker.
    @param stop_timeout: seconds a worker has to exit after SIGTERM before
        it is killed.
    """

    RESTART_DELAY = 1.0
    MAX_RESTART_DELAY = 30.0
    # A worker that ran at least this long restarts after RESTART_DELAY again.
    STEADY = 10.0

    def __init__(self, reactor, count, endpoints, config_path, relay, stop_timeout,
                 executable=sys.executable, environ=None, config_data=None):
        self._reactor = reactor
        self.clock = reactor
        self.count = count
        self._endpoints = endpoints
        self._config_path = config_path
        self._config_data = config_data
        self._relay = relay
        self._stop_timeout = stop_timeout
        self._executable = executable
        self._environ = os.environ if environ is None else environ
        self.processes = {}  # index -> the running worker's IProcessTransport
        self._protocols = {}
        self._delays = {}
        self._pending = {}  # index -> the delayed call that starts it again

    def startService(self):
        Service.startService(self)
        for index in range(1, self.count):
            self._start(index)
        log.info("{count} worker processes serve the registry", count=self.count)

    def relay(self, data):
        self._relay(data)

    def _argv(self, index):
        fds = {0: "w", 1: "r", 2: "r"}
        listen = []
        for number, endpoint in enumerate(self._endpoints):
            fd = FIRST_FD + number
            fds[fd] = endpoint.sockets[index - 1].fileno()
            listen.append("{}:{}".format(fd, int(endpoint.family)))
        argv = [self._executable, "-m", "spectroreg.worker", "--index", str(index),
                "--listen", ",".join(listen)]
        if self._config_path:
            argv += ["--config", self._config_path]
        if self._config_data is not None:
            argv.append("--config-on-stdin")
        return argv, fds

    def _environment(self):
        environ = dict(self._environ)
        # The worker imports the same spectroreg as this process: one run
        # from a source tree gets the tree on its path. An installed one
        # is found where the interpreter looks anyway, and a site directory
        # on PYTHONPATH would come before the standard library.
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        if here not in _site_directories():
            paths = [here] + [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != here]
            environ["PYTHONPATH"] = os.pathsep.join(paths)
        return environ

    def _start(self, index):
        self._pending.pop(index, None)
        argv, fds = self._argv(index)
        protocol = _WorkerProtocol(self, index)
        try:
            process = self._reactor.spawnProcess(protocol, self._executable, argv,
                                                 env=self._environment(), childFDs=fds)
        except OSError as error:
            log.error("cannot start worker {index}: {error}", index=index, error=error)
            self._restart_later(index, quick=False)
            return
        protocol.pid = process.pid
        if self._config_data is not None:
            process.write(b"%d\n" % len(self._config_data) + self._config_data)
        self.processes[index] = process
        self._protocols[index] = protocol

    def ended(self, protocol, reason):
        index = protocol.index
        if self._protocols.get(index) is not protocol:
            return
        del self._protocols[index]
        del self.processes[index]
        if not self.running:
            return
        status = reason.value
        how = ("exited with status {}".format(status.exitCode) if status.signal is None
               else "killed by signal {}".format(status.signal))
        ran = self.clock.seconds() - protocol.started if protocol.started is not None else 0.0
        delay = self._restart_later(index, quick=ran >= self.STEADY)
        # A worker exits with status 0 only when told to stop (SIGTERM):
        # systemd's stop signals every process of the service, and the
        # workers may end before worker 0 stops the pool. Not a failure.
        emit = log.info if status.exitCode == 0 and status.signal is None else log.warn
        emit("worker {index} (pid {pid}) {how} after {ran:.1f}s; starting it again in {delay:.0f}s",
             index=index, pid=protocol.pid, how=how, ran=ran, delay=delay)

    def _restart_later(self, index, quick):
        delay = self.RESTART_DELAY if quick else min(
            self._delays.get(index, self.RESTART_DELAY / 2) * 2, self.MAX_RESTART_DELAY)
        self._delays[index] = delay
        self._pending[index] = self._reactor.callLater(delay, self._start, index)
        return delay

    def signal(self, name):
        """Send signal C{name} ("HUP") to every running worker."""
        for process in list(self.processes.values()):
            try:
                process.signalProcess(name)
            except OSError:
                pass

    def stopService(self):
        Service.stopService(self)
        for call in self._pending.values():
            if call.active():
                call.cancel()
        self._pending.clear()
        waits = [protocol.ended for protocol in self._protocols.values() if protocol.ended is not None]
        self.signal("TERM")
        if not waits:
            self._close_sockets()
            return None
        killer = self._reactor.callLater(self._stop_timeout, self.signal, "KILL")

        def done(_):
            if killer.active():
                killer.cancel()
            self._close_sockets()

        return defer.DeferredList(waits).addBoth(done)

    def _close_sockets(self):
        for endpoint in self._endpoints:
            endpoint.close()

