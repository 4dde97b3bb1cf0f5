"""
The real daemon as users start it: ``twistd -n spectroreg``, ``python -m
twisted spectroreg``, ``spectroreg serve``, ``registry serve``; the shipped
default config; signals (SIGTERM, SIGINT, SIGHUP), draining, TLS. Each test
runs the daemon as a subprocess through ``tests.support.daemon``.
"""

import base64
import os
import re
import signal
import socket
import sys
import time

import yaml
from twisted.trial import unittest

from tests.support.asynctest import async_test
from tests.support.daemon import REPO_ROOT, daemon_for, minimal_config, start_daemon, start_daemon_async

DEFAULT_CONFIG = os.path.join(REPO_ROOT, "etc", "spectro", "config.yml")

TWISTD = [
    sys.executable,
    "-c",
    "import sys; sys.argv[0] = 'twistd'; from twisted.scripts.twistd import run; run()",
    "-n",
    "--pidfile=",
    "--logfile=-",
    "spectroreg",
    "--config={config}",
]
TWIST = [sys.executable, "-m", "twisted", "spectroreg", "--config={config}"]


def default_config_headers():
    with open(DEFAULT_CONFIG) as f:
        return yaml.safe_load(f)["http"]["headers"]


def generated_password(daemon):
    match = re.search(r'with user \\?"docker\\?" and password (\S+)', daemon.log_text())
    if match is None:
        raise AssertionError("no generated password in the log:\n" + daemon.log_text())
    return match.group(1)


def basic(user, password):
    return "Basic " + base64.b64encode("{}:{}".format(user, password).encode()).decode()


class DefaultConfigTests(unittest.TestCase):
    """
    Issue 2's must-show: the shipped config with only the storage root, the
    address and the htpasswd path from the environment.
    """

    def start(self, argv):
        work = os.path.abspath(self.mktemp())
        env = {
            "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": os.path.join(work, "data"),
            "REGISTRY_AUTH_HTPASSWD_PATH": os.path.join(work, "auth", "htpasswd-basic"),
        }
        return start_daemon(self, None, workdir=work, env=env, argv=argv, config_path=DEFAULT_CONFIG)

    def check(self, daemon):
        expected = default_config_headers()
        response = daemon.request("GET", "/v2/")
        self.assertEqual(response.status, 401)
        self.assertEqual(response.header("WWW-Authenticate"), 'Basic realm="basic-realm"')
        for name, values in expected.items():
            self.assertEqual(response.header_values(name), values, name)

        password = generated_password(daemon)
        response = daemon.request("GET", "/v2/", headers={"Authorization": basic("docker", password)})
        self.assertEqual((response.status, response.body), (200, b"{}"))
        self.assertEqual(response.header("Docker-Distribution-API-Version"), "registry/2.0")
        for name, values in expected.items():
            self.assertEqual(response.header_values(name), values, name)
        self.assertIsNone(response.header("Server"))  # no software name or version

        response = daemon.request("GET", "/no/such/thing")
        self.assertEqual(response.status, 404)
        for name, values in expected.items():
            self.assertEqual(response.header_values(name), values, name)

        code = daemon.stop()
        self.assertIn(code, (0, 143, -signal.SIGTERM))
        log = daemon.log_text()
        # One log system: each line once, in our format, no Authorization.
        self.assertEqual(len(re.findall(r"listening on http://", log)), 1, log)
        self.assertIn('level=info msg="listening on http://127.0.0.1:{}"'.format(daemon.port), log)
        self.assertIn("service=registry", log)
        self.assertRegex(log, r'msg="GET /v2/ HTTP/1.1 200 .* docker".* auth\.user\.name=docker')
        self.assertNotIn(basic("docker", password).split()[1], log)
        return log

    def test_twistd(self):
        daemon = self.start(TWISTD)
        self.check(daemon)

    def test_twist(self):
        daemon = self.start(TWIST)
        self.check(daemon)

    def test_serve(self):
        daemon = self.start(None)
        self.check(daemon)
        self.assertEqual(daemon.process.returncode, 0)

    def test_registry_serve_from_environment(self):
        """``registry serve`` with the path in REGISTRY_CONFIGURATION_PATH."""
        work = os.path.abspath(self.mktemp())
        env = {
            "REGISTRY_CONFIGURATION_PATH": DEFAULT_CONFIG,
            "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": os.path.join(work, "data"),
            "REGISTRY_AUTH_HTPASSWD_PATH": os.path.join(work, "htpasswd"),
        }
        argv = [sys.executable, "-c", "import sys; from spectroreg.cli import main; sys.exit(main(prog='registry'))", "serve"]
        daemon = start_daemon(self, None, workdir=work, env=env, argv=argv)
        self.assertEqual(daemon.request("GET", "/v2/").status, 401)
        self.assertEqual(daemon.stop(), 0)



def _port_open(port):
    if port is None:
        return False
    probe = socket.socket()
    probe.settimeout(1)
    try:
        probe.connect(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        probe.close()


class SignalTests(unittest.TestCase):
    def test_sigterm_stops_listening(self):
        daemon = start_daemon(self, minimal_config())
        self.assertEqual(daemon.request("GET", "/").status, 200)
        self.assertEqual(daemon.stop(), 0)
        self.assertFalse(_port_open(daemon.port))
        self.assertIn('msg="stopping"', daemon.log_text())

    def test_sigint_stops(self):
        daemon = start_daemon(self, minimal_config())
        daemon.signal(signal.SIGINT)
        self.assertEqual(daemon.wait(), 0)

    def test_sighup_reloads_htpasswd(self):
        import bcrypt

        work = os.path.abspath(self.mktemp())
        os.makedirs(work)
        htpasswd = os.path.join(work, "htpasswd")
        with open(htpasswd, "w") as f:
            f.write("alice:" + bcrypt.hashpw(b"first", bcrypt.gensalt(4)).decode() + "\n")
        config = minimal_config(auth={"htpasswd": {"realm": "r", "path": htpasswd}})
        daemon = start_daemon(self, config, workdir=work)
        self.assertEqual(daemon.request("GET", "/v2/", headers={"Authorization": basic("alice", "first")}).status, 200)
        # Same size and mtime as before would hide the change from a stat check;
        # SIGHUP makes the daemon read the file regardless.
        with open(htpasswd, "w") as f:
            f.write("bob:" + bcrypt.hashpw(b"second", bcrypt.gensalt(4)).decode() + "\n")
        daemon.reload()
        daemon.wait_for_log(r"reloading TLS material and credentials")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status = daemon.request("GET", "/v2/", headers={"Authorization": basic("bob", "second")}).status
            if status == 200:
                break
            time.sleep(0.05)
        self.assertEqual(status, 200)
        self.assertTrue(daemon.running)
        self.assertEqual(daemon.stop(), 0)


class DrainTimeoutTests(unittest.TestCase):
    """SIGTERM with ``http.draintimeout``: the listener closes at once, a
    request in flight (here an upload whose body is still arriving) finishes."""

    def start_upload(self, daemon, total):
        from urllib.parse import urlsplit

        response = daemon.request("POST", "/v2/drain/test/blobs/uploads/")
        self.assertEqual(response.status, 202, response.body)
        location = urlsplit(response.header("Location"))
        target = location.path + ("?" + location.query if location.query else "")
        sock = socket.create_connection(("127.0.0.1", daemon.port), timeout=15)
        self.addCleanup(sock.close)
        sock.sendall(
            "PATCH {} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
            "Content-Length: {}\r\n\r\n".format(target, total).encode("ascii")
        )
        sock.sendall(b"a" * (total // 2))
        return sock

    def test_in_flight_upload_finishes(self):
        daemon = start_daemon(self, minimal_config(http={"draintimeout": "20s"}))
        sock = self.start_upload(daemon, 2000)
        time.sleep(0.3)
        daemon.signal(signal.SIGTERM)
        daemon.wait_for_log(r"draining 1 request")
        self.assertFalse(_port_open(daemon.port))  # no new connections
        self.assertTrue(daemon.running)
        sock.sendall(b"a" * 1000)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
        self.assertTrue(answer.startswith(b"HTTP/1.1 202 "), answer)
        self.assertIn(b"Range: 0-1999", answer)
        self.assertEqual(daemon.wait(), 0)

    def test_signals_while_draining(self):
        """
        SIGTERM and Ctrl-C again while draining (systemd signals every process
        of the service; an impatient terminal): noted, not an error, and the
        upload in flight still finishes.
        """
        daemon = start_daemon(self, minimal_config(http={"draintimeout": "20s"}))
        sock = self.start_upload(daemon, 2000)
        time.sleep(0.3)
        daemon.signal(signal.SIGTERM)
        daemon.wait_for_log(r"draining 1 request")
        daemon.signal(signal.SIGTERM)
        daemon.signal(signal.SIGINT)
        daemon.wait_for_log(r"SIGINT received while stopping; already stopping")
        self.assertTrue(daemon.running)
        sock.sendall(b"a" * 1000)
        answer = sock.recv(4096)
        self.assertTrue(answer.startswith(b"HTTP/1.1 202 "), answer)
        self.assertEqual(daemon.wait(), 0)
        log = daemon.log_text()
        self.assertIn("SIGTERM received while stopping", log)
        self.assertNotIn("level=error", log)
        self.assertNotIn("ReactorNotRunning", log)

    def test_timeout_cuts_what_is_left(self):
        daemon = start_daemon(self, minimal_config(http={"draintimeout": "1s"}))
        sock = self.start_upload(daemon, 2000)
        time.sleep(0.3)
        started = time.monotonic()
        daemon.signal(signal.SIGTERM)
        self.assertEqual(daemon.wait(), 0)
        elapsed = time.monotonic() - started
        self.assertGreater(elapsed, 0.8)
        self.assertLess(elapsed, 5.0)
        try:
            rest = sock.recv(4096)
        except ConnectionResetError:  # aborted: the usual outcome
            rest = b""
        self.assertEqual(rest, b"")  # closed without an answer


class AsyncHelperTests(unittest.TestCase):
    """The helper's asynchronous side, as ``@async_test`` tests use it."""

    @async_test
    async def test_start_and_stop_without_blocking(self):
        from twisted.internet import reactor, task

        ticks = []
        loop = task.LoopingCall(lambda: ticks.append(1))
        loop.start(0.01)
        self.addCleanup(lambda: loop.running and loop.stop())
        daemon = await start_daemon_async(self, minimal_config())
        await daemon.wait_for_log_async(r"ready on 127\.0\.0\.1:%d" % daemon.port, reactor=reactor)
        self.assertEqual(daemon.request("GET", "/").status, 200)
        self.assertEqual(await daemon.stop_async(), 0)
        self.assertGreater(len(ticks), 3)  # the reactor kept turning meanwhile


def make_certificate(directory, name):
    """A self-signed certificate for 127.0.0.1/localhost; (cert path, key path, DER bytes)."""
    import ssl
    import subprocess

    from tests.support.requirements import require_binary

    openssl = require_binary("openssl")
    cert = os.path.join(directory, name + ".crt")
    key = os.path.join(directory, name + ".key")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "2", "-subj", "/CN=" + name, "-keyout", key, "-out", cert,
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    with open(cert) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return cert, key, der


def served_certificate(port, alpn=("h2", "http/1.1")):
    import ssl

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(list(alpn))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            return tls.getpeercert(binary_form=True), tls.selected_alpn_protocol()


class TLSListenerTests(unittest.TestCase):
    """``http.tls`` wired into the listener: HTTPS, ALPN, SIGHUP reload, errors."""

    def setUp(self):
        self.work = os.path.abspath(self.mktemp())
        os.makedirs(self.work)
        self.cert, self.key, self.der = make_certificate(self.work, "first")

    def config(self):
        return minimal_config(http={"tls": {"certificate": self.cert, "key": self.key},
                                    "headers": {"X-Frame-Options": ["DENY"]}})

    def test_https_with_headers_and_reload(self):
        daemon = start_daemon(self, self.config(), workdir=self.work, scheme="https")
        response = daemon.request("GET", "/v2/")
        self.assertEqual((response.status, response.body), (200, b"{}"))
        self.assertEqual(response.header("X-Frame-Options"), "DENY")
        self.assertIn("listening on https://127.0.0.1:%d" % daemon.port, daemon.log_text())
        der, alpn = served_certificate(daemon.port)
        self.assertEqual((der, alpn), (self.der, "http/1.1"))

        # New files in place, then SIGHUP: the next handshake shows them.
        _, _, second = make_certificate(self.work, "second")
        os.replace(os.path.join(self.work, "second.key"), self.key)
        os.replace(os.path.join(self.work, "second.crt"), self.cert)
        daemon.reload()
        deadline = time.monotonic() + 10
        while served_certificate(daemon.port)[0] != second and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(served_certificate(daemon.port)[0], second)
        self.assertEqual(daemon.request("GET", "/").status, 200)
        self.assertEqual(daemon.stop(), 0)

    def test_unreadable_key_is_one_line(self):
        missing = os.path.join(self.work, "missing.key")
        config = minimal_config(http={"tls": {"certificate": self.cert, "key": missing}})
        daemon = daemon_for(self, config, workdir=self.work, scheme="https")
        code = daemon.run_to_exit(timeout=30)
        self.assertEqual(code, 1)
        lines = daemon.log_lines()
        self.assertEqual(len(lines), 1, daemon.log_text())
        self.assertIn("missing.key", lines[0])
        self.assertFalse(_port_open(daemon.port))


class TwistdLogFileTests(unittest.TestCase):
    def test_logfile_option_gets_our_lines(self):
        work = os.path.abspath(self.mktemp())
        os.makedirs(work)
        logfile = os.path.join(work, "registry.log")
        argv = [a if a != "--logfile=-" else "--logfile=" + logfile for a in TWISTD]
        config = minimal_config(log={"fields": {"service": "registry"}})
        daemon = start_daemon(self, config, workdir=work, argv=argv)
        daemon.request("GET", "/v2/")
        daemon.stop()
        with open(logfile) as f:
            lines = f.read().splitlines()
        self.assertTrue(any('msg="GET /v2/ HTTP/1.1 200 ' in line for line in lines), lines)
        for line in lines:
            self.assertRegex(line, r'^time="[^"]+" level=\w+ msg=".*service=registry')
        self.assertNotIn("GET /v2/", daemon.log_text())  # not on stdout as well


class UploadPurgingTests(unittest.TestCase):
    def test_old_uploads_purged_on_schedule(self):
        from urllib.parse import urlsplit

        purging = {"enabled": True, "age": "1s", "interval": "1s", "dryrun": False}
        config = minimal_config(storage={"inmemory": None, "maintenance": {"uploadpurging": purging}})
        daemon = start_daemon(self, config)
        response = daemon.request("POST", "/v2/purge/me/blobs/uploads/")
        self.assertEqual(response.status, 202)
        location = urlsplit(response.header("Location"))
        target = location.path + ("?" + location.query if location.query else "")
        self.assertEqual(daemon.request("GET", target).status, 204)
        deadline = time.monotonic() + 10
        while daemon.request("GET", target).status != 404 and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertEqual(daemon.request("GET", target).status, 404)
        daemon.wait_for_log(r"purged 1 upload\(s\) older than 1s")
        daemon.stop()


class InterruptedRequestLogTests(unittest.TestCase):
    def test_upload_cut_mid_body_is_logged(self):
        """A PATCH whose client leaves mid-body gets its access-log line (499, interrupted)."""
        from urllib.parse import urlsplit

        daemon = start_daemon(self, minimal_config())
        response = daemon.request("POST", "/v2/cut/off/blobs/uploads/")
        self.assertEqual(response.status, 202)
        location = urlsplit(response.header("Location"))
        target = location.path + ("?" + location.query if location.query else "")
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as client:
            client.sendall(
                "PATCH {} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                "Content-Length: {}\r\n\r\n".format(target, 10 * 1024 * 1024).encode("ascii")
            )
            client.sendall(b"z" * (256 * 1024))
            time.sleep(0.3)
        daemon.wait_for_log(r"PATCH /v2/cut/off/blobs/uploads/\S+ HTTP/1.1 499 0 ")
        line = [text for text in daemon.log_text().splitlines() if "PATCH" in text and " 499 " in text][0]
        self.assertIn("http.request.interrupted=true", line.lower())
        # What arrived before the cut is kept: the upload can resume from there.
        status = daemon.request("GET", target)
        self.assertEqual(status.status, 204)
        self.assertRegex(status.header("Range"), r"^0-\d+$")
        daemon.stop()
