"""
``http.workers``: the real daemon (``spectroreg serve``) with several worker
processes on one port, driven over real connections: new connections spread
over every worker and all of them serve the same storage, a killed worker is
started again, SIGHUP reaches the workers, SIGTERM stops them all, and the
workers of a daemon killed with SIGKILL stop by themselves. Plain HTTP, TLS
and a unix socket.
"""

import hashlib
import http.client
import os
import re
import shutil
import signal
import socket
import tempfile
import time

from twisted.trial import unittest

from tests.support.bench import bench_module
from tests.support.daemon import start_daemon
from tests.test_auth_daemon import write_htpasswd
from tests.test_service_daemon import TWISTD, basic
from tests.test_tls_server import PKI

WORKERS = 3
# New connections per check: with SO_REUSEPORT, the chance that one of 3
# workers gets none of 60 is 3 * (2/3)**60, about 1e-10.
CONNECTIONS = 60

procstat = bench_module("procstat")


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("not within {}s: {}".format(timeout, what))


def workers_in_log(daemon):
    """The worker index of every access-log line so far."""
    return [int(m.group(1)) for m in re.finditer(r'msg="(?:GET|HEAD|PUT|POST|PATCH) [^\n]* worker=(\d+)',
                                                  daemon.log_text())]


def workers_config(work, **http):
    """Filesystem storage under C{work}, WORKERS workers, C{http} keys added."""
    return {
        "version": "0.1",
        "log": {"level": "info"},
        "storage": {"filesystem": {"rootdirectory": os.path.join(work, "data")},
                    "delete": {"enabled": True}},
        "http": dict({"workers": WORKERS}, **http),
    }


def fresh(daemon, method, path, headers=None, body=None):
    """One request on a new connection; (status, body)."""
    connection = daemon.connection(timeout=20)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


class WorkersTests(unittest.TestCase):
    scheme = "http"

    def config(self, work, **http):
        return workers_config(work, **http)

    def start(self, argv=None, **http):
        work = os.path.abspath(self.mktemp())
        os.makedirs(work)
        self.started_config = self.config(work, **http)
        daemon = start_daemon(self, self.started_config, workdir=work, scheme=self.scheme, argv=argv)
        daemon.wait_for_log(r"{} worker processes serve the registry".format(WORKERS))
        wait_until(lambda: len(procstat.children(daemon.process.pid)) == WORKERS - 1, 15, "the workers started")
        for index in range(1, WORKERS):
            daemon.wait_for_log(r"ready on .* worker={}".format(index), timeout=20)
        return daemon

    def push_blob(self, daemon, data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        connection = daemon.connection(timeout=20)
        try:
            connection.request("POST", "/v2/team/app/blobs/uploads/?digest=" + digest, body=data,
                               headers={"Content-Type": "application/octet-stream"})
            response = connection.getresponse()
            response.read()
            self.assertEqual(response.status, 201)
        finally:
            connection.close()
        return digest

    def test_connections_spread_over_workers_serving_one_storage(self):
        daemon = self.start()
        digest = self.push_blob(daemon, b"one storage for every worker")
        statuses = [fresh(daemon, "GET", "/v2/team/app/blobs/" + digest) for _ in range(CONNECTIONS)]
        self.assertEqual(set(statuses), {(200, b"one storage for every worker")})
        wait_until(lambda: len(workers_in_log(daemon)) >= CONNECTIONS + 1, 10, "every access-log line")
        self.assertEqual(set(workers_in_log(daemon)), set(range(WORKERS)))

    def test_killed_worker_is_started_again(self):
        daemon = self.start()
        victim = procstat.children(daemon.process.pid)[0]
        os.kill(victim, signal.SIGKILL)
        daemon.wait_for_log(r"worker \d \(pid {}\) killed by signal 9 after [0-9.]+s; "
                            r"starting it again in 1s".format(victim))
        wait_until(lambda: len(procstat.children(daemon.process.pid)) == WORKERS - 1
                   and victim not in procstat.children(daemon.process.pid), 15, "a new worker")
        # Connections the kernel gives the new worker's socket wait for it; none is refused.
        statuses = [fresh(daemon, "GET", "/v2/")[0] for _ in range(CONNECTIONS)]
        self.assertEqual(set(statuses), {200})
        self.assertTrue(daemon.running)

    def test_restarted_worker_runs_what_worker_0_loaded(self):
        """A worker started again while the file says something else runs what worker 0 runs."""
        daemon = self.start(headers={"X-Config": ["first"]})
        changed = dict(self.started_config, http=dict(self.started_config["http"], headers={"X-Config": ["second"]}))
        daemon.write_config(changed)
        victim = procstat.children(daemon.process.pid)[0]
        os.kill(victim, signal.SIGKILL)
        daemon.wait_for_log(r"\(pid {}\) killed by signal 9".format(victim))
        index = int(re.search(r"worker (\d) \(pid {}\)".format(victim), daemon.log_text()).group(1))
        wait_until(lambda: len(re.findall(r"ready on .* worker={}\n".format(index), daemon.log_text())) == 2,
                   20, "worker {} ready again".format(index))
        values = set()
        for _ in range(CONNECTIONS):
            values.update(daemon.request("GET", "/v2/").header_values("X-Config"))
        self.assertEqual(values, {"first"})
        self.assertGreaterEqual(len(set(workers_in_log(daemon))), WORKERS)

    def test_sigterm_stops_every_worker(self):
        daemon = self.start()
        workers = procstat.children(daemon.process.pid)
        self.assertEqual(daemon.stop(), 0)
        wait_until(lambda: not any(procstat.alive(pid) for pid in workers), 5, "the workers exited")
        self.assertNotIn("Traceback", daemon.log_text())
        self.assertNotIn("level=error", daemon.log_text())
        for index in range(WORKERS):
            self.assertRegex(daemon.log_text(), r'msg="stopping" worker={}'.format(index))

    def test_twistd(self):
        """``twistd -n spectroreg`` (the systemd unit's command) starts the same workers and stops them."""
        daemon = self.start(argv=TWISTD)
        workers = procstat.children(daemon.process.pid)
        digest = self.push_blob(daemon, b"served by twistd's workers")
        statuses = [fresh(daemon, "GET", "/v2/team/app/blobs/" + digest) for _ in range(CONNECTIONS)]
        self.assertEqual(set(statuses), {(200, b"served by twistd's workers")})
        wait_until(lambda: len(workers_in_log(daemon)) >= CONNECTIONS + 1, 10, "every access-log line")
        self.assertEqual(set(workers_in_log(daemon)), set(range(WORKERS)))
        self.assertIn(daemon.stop(), (0, 143, -signal.SIGTERM))
        wait_until(lambda: not any(procstat.alive(pid) for pid in workers), 5, "the workers exited")
        log = daemon.log_text()
        self.assertNotIn("Traceback", log)
        self.assertNotRegex(log, r"level=(warning|error)")
        for index in range(WORKERS):
            self.assertRegex(log, r'msg="stopping" worker={}'.format(index))

    def test_stopped_as_systemd_does(self):
        """SIGTERM to every process of the daemon at once, as systemd's stop sends it: a clean exit."""
        daemon = self.start()
        workers = procstat.children(daemon.process.pid)
        for pid in [daemon.process.pid] + workers:
            os.kill(pid, signal.SIGTERM)
        self.assertEqual(daemon.wait(), 0)
        wait_until(lambda: not any(procstat.alive(pid) for pid in workers), 5, "the workers exited")
        log = daemon.log_text()
        # A worker that ended before worker 0 stopped the pool is noted at
        # info level; nothing is a warning or an error.
        self.assertNotRegex(log, r"level=(warning|error)")
        self.assertNotIn("Traceback", log)

    def test_workers_of_a_killed_daemon_stop(self):
        daemon = self.start()
        workers = procstat.children(daemon.process.pid)
        daemon.kill()
        wait_until(lambda: not any(procstat.alive(pid) for pid in workers), 15, "the workers exited")

    def test_sighup_reaches_every_worker(self):
        work = os.path.abspath(self.mktemp())
        os.makedirs(work)
        htpasswd = os.path.join(work, "htpasswd")
        write_htpasswd(htpasswd, {"alice": "wonderland"})
        config = self.config(work)
        config["auth"] = {"htpasswd": {"realm": "workers", "path": htpasswd}}
        daemon = start_daemon(self, config, workdir=work, scheme=self.scheme)
        for index in range(1, WORKERS):
            daemon.wait_for_log(r"ready on .* worker={}".format(index), timeout=20)
        bob = {"Authorization": basic("bob", "builder")}
        self.assertEqual(fresh(daemon, "GET", "/v2/", headers=bob)[0], 401)
        write_htpasswd(htpasswd, {"alice": "wonderland", "bob": "builder"})
        daemon.reload()
        for index in range(WORKERS):
            daemon.wait_for_log(r"reloading TLS material and credentials.* worker={}".format(index))
        # The reload reads the file in a thread: give each worker a moment.
        wait_until(lambda: fresh(daemon, "GET", "/v2/", headers=bob)[0] == 200, 10, "bob accepted")
        statuses = [fresh(daemon, "GET", "/v2/", headers=bob)[0] for _ in range(CONNECTIONS)]
        self.assertEqual(set(statuses), {200})

    def test_each_worker_has_its_debug_listener(self):
        """Each worker's own health and metrics, each counting its own requests."""
        # Port 0: each worker's debug listener on a port of its own (a
        # fixed port N puts worker i on N + i; see test_prefork).
        daemon = self.start(debug={"addr": "127.0.0.1:0", "prometheus": {"enabled": True}})
        for _ in range(CONNECTIONS):
            self.assertEqual(fresh(daemon, "GET", "/v2/")[0], 200)
        served = 0
        for index in range(WORKERS):
            ports = {int(p) for p in re.findall(r'listening on http://127\.0\.0\.1:(\d+)" worker={}\n'.format(index),
                                                 daemon.log_text())} - {daemon.port}
            self.assertEqual(len(ports), 1, daemon.log_text())
            port = ports.pop()
            status, health = debug_get(port, "/debug/health")
            self.assertEqual((status, health.strip()), (200, "{}"))
            status, metrics = debug_get(port, "/metrics")
            self.assertEqual(status, 200)
            counted = sum(float(m.group(1)) for m in re.finditer(
                r'^spectroreg_http_requests_total\{[^}]*status="200"[^}]*\} ([0-9.e+]+)$', metrics, re.MULTILINE))
            self.assertGreater(counted, 0, "worker {} served nothing:\n{}".format(index, metrics))
            served += counted
        self.assertGreaterEqual(served, CONNECTIONS)

    def test_worker_0_serves_every_workers_metrics(self):
        """With a fixed debug port, worker 0's metrics path has every worker's, labelled."""
        base = free_port_range(WORKERS)
        daemon = self.start(debug={"addr": "127.0.0.1:{}".format(base), "prometheus": {"enabled": True}})
        for _ in range(CONNECTIONS):
            self.assertEqual(fresh(daemon, "GET", "/v2/")[0], 200)
        status, metrics = debug_get(base, "/metrics")
        self.assertEqual(status, 200)
        up = dict(re.findall(r'^spectroreg_worker_up\{worker="(\d+)"\} ([0-9.]+)$', metrics, re.MULTILINE))
        self.assertEqual(up, {str(index): "1.0" for index in range(WORKERS)}, metrics)
        counted = {}
        for match in re.finditer(r'^spectroreg_http_requests_total\{([^}]*status="200"[^}]*)\} ([0-9.e+]+)$',
                                 metrics, re.MULTILINE):
            worker = re.search(r'worker="(\d+)"', match.group(1)).group(1)
            counted[worker] = counted.get(worker, 0) + float(match.group(2))
        self.assertEqual(set(counted), {str(index) for index in range(WORKERS)}, metrics)
        self.assertGreaterEqual(sum(counted.values()), CONNECTIONS)
        self.assertEqual(metrics.count("# TYPE spectroreg_http_requests_total counter"), 1)


def debug_get(port, path):
    """GET C{path} from a debug listener on C{port}: (status, text)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def free_port_range(count):
    """The first of C{count} consecutive local ports that are free now."""
    for _ in range(100):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        base = probe.getsockname()[1]
        probe.close()
        if base + count > 65535:
            continue
        probes = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                probes.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in probes:
                sock.close()
    raise AssertionError("no {} consecutive free ports".format(count))


class TLSWorkersTests(WorkersTests):
    """The same over TLS: each worker loads the certificate and key itself."""

    scheme = "https"

    def config(self, work, **http):
        pki = PKI(os.path.join(work, "pki"))
        certificate, key = pki.write_pair("server", pki.leaf(pki.ca("Root"), "localhost"))
        return super().config(work, tls={"certificate": certificate, "key": key}, **http)


class UnixSocketWorkersTests(unittest.TestCase):
    """On a unix socket the workers share one socket."""

    def test_every_request_answered(self):
        work = os.path.abspath(self.mktemp())
        os.makedirs(work)
        # A short path: sockaddr_un holds 108 bytes.
        directory = tempfile.mkdtemp(prefix="spectroreg-workers-")
        self.addCleanup(shutil.rmtree, directory, True)
        path = os.path.join(directory, "registry.sock")
        config = workers_config(work, net="unix", addr=path)
        daemon = start_daemon(self, config, workdir=work, listen=False, unix_socket=path)
        for index in range(1, WORKERS):
            daemon.wait_for_log(r"ready on .* worker={}".format(index), timeout=20)
        self.assertEqual(oct(os.stat(path).st_mode & 0o777), oct(0o666))
        statuses = [fresh(daemon, "GET", "/v2/")[0] for _ in range(CONNECTIONS)]
        self.assertEqual(set(statuses), {200})
        self.assertEqual(daemon.stop(), 0)
        self.assertFalse(os.path.exists(path))
