"""
The parts of L{spectroreg.prefork} one process can check: the shared
sockets (real ones, served in this reactor), the worker's command line and
descriptors, restarts with their delays, signals and stopping (a fake
reactor); the daemon with real worker processes is
L{tests.test_integration_workers}.
"""

import os
import socket
import stat

from twisted.internet import reactor, threads
from twisted.internet.error import CannotListenError, ProcessDone, ProcessTerminated
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial import unittest

from spectroreg.prefork import (
    FIRST_FD,
    AdoptedEndpoint,
    SharedEndpoint,
    WorkerPool,
    WorkerRole,
    debug_addr_for,
)
from tests.support.asynctest import async_test
from tests.support.rawhttp import exchange


class _Says(Protocol):
    def connectionMade(self):
        self.transport.write(self.factory.word)
        self.transport.loseConnection()


def _saying(word):
    factory = Factory.forProtocol(_Says)
    factory.word = word
    return factory


def _read_all(port, count):
    """C{count} connections to 127.0.0.1:C{port}, each read to its end."""
    return [exchange("127.0.0.1", port, b"", timeout=10)[3] for _ in range(count)]


class SharedEndpointTests(unittest.TestCase):
    async def listening(self, count):
        """A L{SharedEndpoint} for C{count} workers on 127.0.0.1, listened on (saying "0"), and its port."""
        endpoint = SharedEndpoint(reactor, socket.AF_INET, ("127.0.0.1", 0), count, 50)
        first = await endpoint.listen(_saying(b"0"))
        self.addCleanup(first.stopListening)
        self.addCleanup(endpoint.close)
        return endpoint, first.getHost().port

    @async_test
    async def test_one_reuseport_socket_per_worker(self):
        """Every worker's socket takes its share of new connections on the one port."""
        endpoint, port = await self.listening(3)
        self.assertEqual(len(endpoint.sockets), 2)
        for sock in endpoint.sockets:
            self.assertEqual(sock.getsockname(), ("127.0.0.1", port))
            self.assertEqual(sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT), 1)
        for number, sock in enumerate(endpoint.sockets, 1):
            adopted = await AdoptedEndpoint(reactor, os.dup(sock.fileno()), socket.AF_INET).listen(
                _saying(str(number).encode()))
            self.addCleanup(adopted.stopListening)
        answers = await threads.deferToThread(_read_all, port, 60)
        # The chance that one of three sockets gets none of 60: 3 * (2/3)**60.
        self.assertEqual(set(answers), {b"0", b"1", b"2"})

    async def refused_beside(self, reuseport):
        """Listening on the port of a socket already listening fails, and the endpoint keeps no socket."""
        holder = socket.socket()
        self.addCleanup(holder.close)
        if reuseport:
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        endpoint = SharedEndpoint(reactor, socket.AF_INET, holder.getsockname(), 2, 50)
        with self.assertRaises(CannotListenError):
            await endpoint.listen(_saying(b"x"))
        self.assertEqual(endpoint.sockets, [])

    @async_test
    async def test_port_taken(self):
        """A port another socket holds (without SO_REUSEPORT) fails as Twisted's ports do."""
        await self.refused_beside(reuseport=False)

    @async_test
    async def test_port_served_by_another_daemons_workers(self):
        """
        A port another daemon serves with workers (SO_REUSEPORT sockets of
        the same user) is taken, as for a plain bind: no silent sharing.
        """
        await self.refused_beside(reuseport=True)

    @async_test
    async def test_unix_socket_shared(self):
        """One unix socket, the same for every worker, reachable by everyone."""
        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(os.path.relpath(directory), "s")
        endpoint = SharedEndpoint(reactor, socket.AF_UNIX, path, 3, 50)
        port = await endpoint.listen(_saying(b"u"))
        self.addCleanup(port.stopListening)
        self.addCleanup(endpoint.close)
        self.assertEqual(len(endpoint.sockets), 2)
        self.assertIs(endpoint.sockets[0], endpoint.sockets[1])
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o666)

        def read():
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(10)
                sock.connect(path)
                return sock.recv(16)

        self.assertEqual(await threads.deferToThread(read), b"u")

    @async_test
    async def test_adopted_descriptor_closed(self):
        """The worker's inherited descriptor is closed once the reactor has its own."""
        endpoint, _ = await self.listening(2)
        fd = os.dup(endpoint.sockets[0].fileno())
        adopted = await AdoptedEndpoint(reactor, fd, socket.AF_INET).listen(_saying(b"1"))
        self.addCleanup(adopted.stopListening)
        with self.assertRaises(OSError):
            os.fstat(fd)


class AddressTests(unittest.SynchronousTestCase):
    def test_debug_addr_moves_up_by_index(self):
        self.assertEqual(debug_addr_for("127.0.0.1:5001", 0), "127.0.0.1:5001")
        self.assertEqual(debug_addr_for("127.0.0.1:5001", 2), "127.0.0.1:5003")
        self.assertEqual(debug_addr_for(":5001", 1), ":5002")
        self.assertEqual(debug_addr_for("[::1]:5001", 3), "[::1]:5004")
        self.assertEqual(debug_addr_for("127.0.0.1:0", 2), "127.0.0.1:0")

    def test_role_from_command_line(self):
        role = WorkerRole.parse("2", "3:2,4:10")
        self.assertEqual((role.index, role.sockets), (2, [(3, 2), (4, 10)]))
        endpoints = role.endpoints(reactor)
        self.assertEqual([(e.fd, e.family) for e in endpoints], [(3, 2), (4, 10)])


class _FakeSocket:
    def __init__(self, fd):
        self.fd = fd
        self.closed = False

    def fileno(self):
        return self.fd

    def close(self):
        self.closed = True


class _FakeEndpoint:
    def __init__(self, family, fds):
        self.family = family
        self.sockets = [_FakeSocket(fd) for fd in fds]
        self.closed = False

    def close(self):
        self.closed = True


class _FakeProcess:
    def __init__(self, pid):
        self.pid = pid
        self.signals = []
        self.written = b""

    def write(self, data):
        self.written += data

    def signalProcess(self, name):
        self.signals.append(name)


class _SpawningClock(Clock):
    def __init__(self):
        super().__init__()
        self.spawned = []  # (protocol, executable, argv, env, childFDs, process)

    def spawnProcess(self, protocol, executable, args, env=None, childFDs=None):
        process = _FakeProcess(1000 + len(self.spawned))
        self.spawned.append((protocol, executable, args, env, childFDs, process))
        protocol.makeConnection(process)
        return process


def _ended(protocol, signal_number=None, code=0):
    if signal_number is None and code == 0:
        reason = Failure(ProcessDone(0))
    else:
        reason = Failure(ProcessTerminated(exitCode=None if signal_number else code, signal=signal_number))
    protocol.processEnded(reason)


class WorkerPoolTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.clock = _SpawningClock()
        self.clock.advance(1000)
        self.endpoints = [_FakeEndpoint(socket.AF_INET6, [41, 42]), _FakeEndpoint(socket.AF_INET, [51, 52])]
        self.relayed = []
        self.pool = WorkerPool(self.clock, 3, self.endpoints, "/etc/spectro/config.yml", self.relayed.append,
                               stop_timeout=15.0, executable="/usr/bin/python3",
                               environ={"PYTHONPATH": "/elsewhere", "REGISTRY_HTTP_SECRET": "s"})

    def test_workers_get_their_sockets(self):
        self.pool.startService()
        self.assertEqual(len(self.clock.spawned), 2)
        for index, (_, executable, argv, env, fds, _) in enumerate(self.clock.spawned, 1):
            self.assertEqual(executable, "/usr/bin/python3")
            self.assertEqual(argv, ["/usr/bin/python3", "-m", "spectroreg.worker", "--index", str(index),
                                    "--listen", "{}:{},{}:{}".format(FIRST_FD, int(socket.AF_INET6),
                                                                     FIRST_FD + 1, int(socket.AF_INET)),
                                    "--config", "/etc/spectro/config.yml"])
            self.assertEqual(fds, {0: "w", 1: "r", 2: "r", FIRST_FD: 40 + index, FIRST_FD + 1: 50 + index})
            self.assertEqual(env["REGISTRY_HTTP_SECRET"], "s")
            # This source tree first (an installed spectroreg is not added: see below).
            here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
            self.assertEqual(env["PYTHONPATH"].split(os.pathsep), [here, "/elsewhere"])

    def test_installed_package_not_put_on_the_path(self):
        from spectroreg import prefork

        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.patch(prefork, "_site_directories", lambda: {here})
        self.pool.startService()
        self.assertEqual(self.clock.spawned[0][3]["PYTHONPATH"], "/elsewhere")

    def test_site_directories(self):
        """Where Twisted is installed (Debian's dist-packages or a virtualenv's site-packages) is one."""
        import twisted

        from spectroreg.prefork import _site_directories

        installed = os.path.dirname(os.path.dirname(os.path.abspath(twisted.__file__)))
        self.assertIn(installed, _site_directories())

    def test_configuration_sent_on_stdin(self):
        """Each worker, the first and one started again, gets the bytes worker 0 loaded."""
        pool = WorkerPool(self.clock, 2, self.endpoints[:1], "/etc/spectro/config.yml", self.relayed.append,
                          stop_timeout=15.0, executable="/usr/bin/python3", environ={},
                          config_data=b"version: 0.1\n")
        pool.startService()
        protocol, _, argv, _, _, process = self.clock.spawned[0]
        self.assertEqual(argv[-3:], ["--config", "/etc/spectro/config.yml", "--config-on-stdin"])
        self.assertEqual(process.written, b"13\nversion: 0.1\n")
        self.clock.advance(60)
        _ended(protocol, code=1)
        self.clock.advance(1)
        self.assertEqual(self.clock.spawned[1][5].written, b"13\nversion: 0.1\n")

    def test_output_relayed_in_whole_lines(self):
        self.pool.startService()
        protocol = self.clock.spawned[0][0]
        protocol.childDataReceived(1, b"one\ntw")
        protocol.childDataReceived(2, b"err")
        protocol.childDataReceived(1, b"o\nthree")
        self.assertEqual(self.relayed, [b"one\n", b"two\n"])
        protocol.childConnectionLost(1)
        protocol.childConnectionLost(2)
        self.assertEqual(self.relayed, [b"one\n", b"two\n", b"three\n", b"err\n"])

    def test_exited_worker_started_again(self):
        self.pool.startService()
        first = self.clock.spawned[0][0]
        self.clock.advance(60)  # it ran for a minute
        _ended(first, signal_number=9)
        self.assertEqual(len(self.clock.spawned), 2)
        self.clock.advance(0.9)
        self.assertEqual(len(self.clock.spawned), 2)
        self.clock.advance(0.1)
        self.assertEqual(len(self.clock.spawned), 3)
        self.assertIn("--index", self.clock.spawned[2][2])
        self.assertEqual(self.clock.spawned[2][2][4], "1")
        self.assertEqual(sorted(self.pool.processes), [1, 2])

    def test_told_to_stop_is_not_a_failure(self):
        """A worker that exits 0 (it was sent SIGTERM) is noted at info level, one that fails at warn."""
        from twisted.logger import LogLevel, globalLogPublisher

        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.pool.startService()
        _ended(self.clock.spawned[0][0], code=0)
        _ended(self.clock.spawned[1][0], code=3)
        levels = [(e["log_level"], e.get("how")) for e in events if "starting it again" in e.get("log_format", "")]
        self.assertEqual(levels, [(LogLevel.info, "exited with status 0"), (LogLevel.warn, "exited with status 3")])

    def test_quick_exits_back_off(self):
        """A worker that keeps exiting at once waits 1, 2, 4 … 30 s, then 1 s again once it runs."""
        self.pool.startService()
        delays = []
        for _ in range(8):
            protocol = self.clock.spawned[-1][0] if len(self.clock.spawned) > 2 else self.clock.spawned[0][0]
            _ended(protocol, code=1)
            before = len(self.clock.spawned)
            waited = 0.0
            while len(self.clock.spawned) == before:
                self.clock.advance(0.5)
                waited += 0.5
            delays.append(waited)
        self.assertEqual(delays, [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0])
        self.clock.advance(20)
        _ended(self.clock.spawned[-1][0], code=1)
        self.clock.advance(1)
        self.assertEqual(len(self.clock.spawned), 11)

    def test_sighup_passed_on(self):
        self.pool.startService()
        self.pool.signal("HUP")
        self.assertEqual([entry[5].signals for entry in self.clock.spawned], [["HUP"], ["HUP"]])

    def test_stop_terminates_then_kills(self):
        self.pool.startService()
        first, second = self.clock.spawned
        _ended(first[0], code=1)  # a restart is pending
        stopped = self.pool.stopService()
        self.assertEqual(second[5].signals, ["TERM"])
        self.assertNoResult(stopped)
        self.clock.advance(14)
        self.assertEqual(second[5].signals, ["TERM"])
        self.clock.advance(1)
        self.assertEqual(second[5].signals, ["TERM", "KILL"])
        self.assertFalse(self.endpoints[0].closed)
        _ended(second[0], signal_number=9)
        self.successResultOf(stopped)
        self.assertTrue(all(endpoint.closed for endpoint in self.endpoints))
        # The pending restart was cancelled, and an end while stopping starts nothing.
        self.clock.advance(60)
        self.assertEqual(len(self.clock.spawned), 2)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop_when_workers_exit_in_time(self):
        self.pool.startService()
        stopped = self.pool.stopService()
        for entry in self.clock.spawned:
            self.assertEqual(entry[5].signals, ["TERM"])
            _ended(entry[0])
        self.successResultOf(stopped)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class ReadConfigTests(unittest.SynchronousTestCase):
    def test_length_then_bytes_then_the_lifeline(self):
        from spectroreg.worker import read_config

        read_end, write_end = os.pipe()
        self.addCleanup(os.close, read_end)
        os.write(write_end, b"12\nversion: 0.")
        os.write(write_end, b"1more")
        self.assertEqual(read_config(read_end), b"version: 0.1")
        self.assertEqual(os.read(read_end, 10), b"more")  # the rest is the lifeline's
        os.close(write_end)

    def test_cut_short(self):
        from spectroreg.worker import read_config

        read_end, write_end = os.pipe()
        self.addCleanup(os.close, read_end)
        os.write(write_end, b"100\nversion")
        os.close(write_end)
        with self.assertRaises(EOFError):
            read_config(read_end)
