"""
The real daemon's start: time to the first answer, heavy imports kept lazy,
broken configurations (one line, non-zero, nothing listens), the listening
address forms, and log output. Each test runs the daemon as a subprocess.
"""

import json
import os
import socket
import sys

import yaml
from twisted.trial import unittest

from spectroreg.listeners import _ipv6_available
from tests.support.daemon import REPO_ROOT, daemon_for, minimal_config, start_daemon
from tests.support.paths import socket_path
from tests.test_service_daemon import TWISTD, _port_open


BROKEN = [
    ("bad YAML", "version: 0.1\nstorage: [inmemory\n", {}, r"(yaml|YAML|parse)"),
    ("wrong version", "version: 0.2\nstorage: inmemory\n", {}, r"version"),
    ("unknown log level", "version: 0.1\nlog:\n  level: loud\nstorage: inmemory\n", {}, r"log\.level"),
    (
        "two storage drivers",
        "version: 0.1\nstorage:\n  inmemory: {}\n  filesystem:\n    rootdirectory: /tmp/x\n",
        {},
        r"storage",
    ),
    (
        "wrong type from the environment",
        "version: 0.1\nstorage: inmemory\n",
        {"REGISTRY_HTTP_DRAINTIMEOUT": "[1, 2]"},
        r"REGISTRY_HTTP_DRAINTIMEOUT",
    ),
    (
        "second storage driver from the environment",
        "version: 0.1\nstorage: inmemory\n",
        {"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/tmp/x"},
        r"storage",
    ),
    ("missing file", None, {}, r"no-such-config\.yml"),
]


class StartupTimeTests(unittest.TestCase):
    def test_first_answer_within_a_second(self):
        """
        Process start to the first answered request, three runs. The target
        is under a second; the bounds leave room for a shared, loaded CI
        machine: the best wall time and the CPU the daemon used until it
        answered (read from /proc), which load inflates far less.
        """
        walls, cpus = [], []
        ticks = os.sysconf("SC_CLK_TCK")
        for _ in range(3):
            daemon = start_daemon(self, minimal_config())
            walls.append(daemon.ready_at - daemon.started_at)
            with open("/proc/%d/stat" % daemon.process.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpus.append((int(fields[11]) + int(fields[12])) / ticks)
            daemon.stop()
        sys.stderr.write(
            "start to first answer: wall {}; CPU {}\n".format(
                ", ".join("%.3fs" % f for f in sorted(walls)),
                ", ".join("%.2fs" % f for f in sorted(cpus)),
            )
        )
        self.assertLess(min(walls), 2.0)
        self.assertLess(sorted(cpus)[1], 1.5)

    def test_heavy_modules_stay_unloaded(self):
        """No S3, ACME or TLS code is imported for a plain filesystem registry."""
        import subprocess

        work = os.path.abspath(self.mktemp())
        os.makedirs(work)
        path = os.path.join(work, "c.yml")
        with open(path, "w") as f:
            yaml.safe_dump(minimal_config(storage={"filesystem": {"rootdirectory": work}}), f)
        script = (
            "import sys\n"
            "from spectroreg.config.load import load_settings\n"
            "from spectroreg.service import makeService\n"
            "makeService(load_settings(sys.argv[1]))\n"
            "print(' '.join(m for m in ('botocore', 'acme', 'josepy', 'treq') if m in sys.modules))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", script, path], cwd=REPO_ROOT, capture_output=True, text=True,
            env=dict(os.environ, PYTHONPATH=REPO_ROOT), timeout=60,
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.strip(), "")



class BrokenConfigTests(unittest.TestCase):
    """Exit non-zero with one line naming the cause; nothing listens."""

    def run_broken(self, text, env, argv=None):
        work = os.path.abspath(self.mktemp())
        os.makedirs(work)
        config_path = os.path.join(work, "no-such-config.yml")
        if text is not None:
            config_path = os.path.join(work, "config.yml")
            with open(config_path, "w") as f:
                f.write(text)
        daemon = daemon_for(self, None, workdir=work, env=env, argv=argv, config_path=config_path)
        code = daemon.run_to_exit(timeout=30)
        port_open = _port_open(daemon.port)
        return code, daemon.log_text(), port_open

    def test_serve(self):
        for name, text, env, cause in BROKEN:
            code, log, port_open = self.run_broken(text, env)
            self.assertNotEqual(code, 0, name)
            lines = log.splitlines()
            self.assertEqual(len(lines), 1, "{}: {!r}".format(name, log))
            self.assertTrue(lines[0].startswith("spectroreg: "), lines[0])
            self.assertRegex(lines[0], cause)
            self.assertFalse(port_open, name)

    def test_twistd(self):
        for name, text, env, cause in BROKEN[:2]:
            code, log, port_open = self.run_broken(text, env, argv=TWISTD)
            self.assertNotEqual(code, 0, name)
            lines = log.splitlines()
            self.assertEqual(len(lines), 1, "{}: {!r}".format(name, log))
            self.assertRegex(lines[0], cause)
            self.assertFalse(port_open, name)

    def test_port_in_use(self):
        holder = socket.socket()
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        self.addCleanup(holder.close)
        port = holder.getsockname()[1]
        daemon = daemon_for(self, minimal_config(), port=port)
        code = daemon.run_to_exit(timeout=30)
        self.assertNotEqual(code, 0)
        lines = daemon.log_lines()
        self.assertEqual(lines[-1], "spectroreg: cannot listen on 127.0.0.1:{}: Address already in use".format(port))
        self.assertNotIn("Traceback", daemon.log_text())



class AddressFormTests(unittest.TestCase):
    def test_ipv6_loopback(self):
        if not _ipv6_available():
            raise unittest.SkipTest("no IPv6 on this host")
        daemon = start_daemon(self, minimal_config(), host="::1")
        self.assertEqual(daemon.request("GET", "/v2/").status, 200)
        self.assertFalse(_port_open(daemon.port))  # not on 127.0.0.1

    def test_all_interfaces(self):
        """``:PORT`` answers on 127.0.0.1 and, where the host has IPv6, on ::1."""
        from tests.support.daemon import free_port

        port = free_port()
        daemon = start_daemon(self, minimal_config(), port=port, env={"REGISTRY_HTTP_ADDR": ":%d" % port})
        self.assertEqual(daemon.request("GET", "/v2/").status, 200)
        if _ipv6_available():
            probe = socket.create_connection(("::1", port), timeout=5)
            probe.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            self.assertTrue(probe.recv(100).startswith(b"HTTP/1.1 200 "))
            probe.close()
        self.assertRegex(daemon.log_text(), r"listening on http://\[::\]:%d|listening on http://0\.0\.0\.0:%d" % (port, port))

    def test_unix_socket(self):
        work = os.path.abspath(self.mktemp())
        os.makedirs(work)
        path = socket_path(self)
        config = minimal_config(http={"addr": path, "net": "unix"})
        daemon = start_daemon(self, config, workdir=work, listen=False, unix_socket=path)
        response = daemon.request("GET", "/v2/")
        self.assertEqual((response.status, response.body), (200, b"{}"))
        self.assertEqual(daemon.stop(), 0)



class LogOutputTests(unittest.TestCase):
    def test_json_with_fields(self):
        config = minimal_config(log={"formatter": "json", "level": "debug", "fields": {"service": "registry", "site": "lab"}})
        daemon = start_daemon(self, config)
        daemon.request("GET", "/v2/?_state=SECRET")
        daemon.stop()
        records = [json.loads(line) for line in daemon.log_lines()]
        self.assertTrue(records)
        for record in records:
            self.assertEqual(record["service"], "registry")
            self.assertEqual(record["site"], "lab")
            self.assertIn(record["level"], ("debug", "info", "warning", "error"))
            self.assertRegex(record["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        # The helper's readiness probe asked for "/" first.
        access = [r for r in records if r.get("http.request.method") == "GET" and r["http.request.uri"] != "/"]
        self.assertEqual([r["http.request.uri"] for r in access], ["/v2/?_state=***"])
        self.assertNotIn("SECRET", daemon.log_text())

    def test_logstash(self):
        config = minimal_config(log={"formatter": "logstash", "fields": {"service": "registry"}})
        daemon = start_daemon(self, config)
        daemon.stop()
        records = [json.loads(line) for line in daemon.log_lines()]
        self.assertTrue(records)
        for record in records:
            self.assertEqual(record["@version"], "1")
            self.assertIn("@timestamp", record)
            self.assertIn("message", record)
            self.assertEqual(record["service"], "registry")

    def test_level_error_keeps_access_log_only(self):
        config = minimal_config(log={"level": "error"})
        daemon = start_daemon(self, config)
        daemon.request("GET", "/v2/")
        daemon.stop()
        lines = daemon.log_lines()
        # The readiness probe's "/" and our "/v2/": access lines only.
        self.assertEqual(len(lines), 2, lines)
        self.assertIn('msg="GET / HTTP/1.1 200 ', lines[0])
        self.assertIn('msg="GET /v2/ HTTP/1.1 200 ', lines[1])

    def test_access_log_disabled(self):
        config = minimal_config(log={"accesslog": {"disabled": True}})
        daemon = start_daemon(self, config)
        daemon.request("GET", "/v2/")
        daemon.stop()
        self.assertNotIn("http.request.method", daemon.log_text())
        self.assertIn("listening on", daemon.log_text())

    def test_warnings_logged_at_start(self):
        config = minimal_config(nosuchsection={"a": 1})
        daemon = start_daemon(self, config)
        daemon.stop()
        self.assertRegex(daemon.log_text(), r"level=warning msg=\"config: .*nosuchsection")

