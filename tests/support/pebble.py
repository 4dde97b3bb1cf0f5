"""
A real ACME CA for tests: Debian's ``pebble`` (and ``pebble-challtestsrv``
as its DNS server, so names other than ``localhost`` can be validated).

The Debian package ships no certificates: L{make_api_ca} makes a throw-away
CA and a certificate for pebble's HTTPS API with ``cryptography``. Pebble's
validator dials fixed ports (``httpPort``/``tlsPort`` in its config) on the
address a name resolves to: the test passes the ports where its own
listeners are, free ports by default, or the values of
``SPECTROREG_TEST_PEBBLE_HTTP_PORT`` / ``SPECTROREG_TEST_PEBBLE_TLS_PORT``.
"""

import datetime
import ipaddress
import json
import os
import re
import signal
import socket

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import defer, protocol, task

from tests.support.requirements import require_binary


def free_port(interface="127.0.0.1"):
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((interface, 0))
        return s.getsockname()[1]


def validation_ports():
    """(HTTP-01 port, TLS-ALPN-01 port) for pebble's validator."""
    http = os.environ.get("SPECTROREG_TEST_PEBBLE_HTTP_PORT")
    tls = os.environ.get("SPECTROREG_TEST_PEBBLE_TLS_PORT")
    return (int(http) if http else free_port()), (int(tls) if tls else free_port())


def make_api_ca(directory):
    """
    Write ``ca.pem`` and ``api-cert.pem``/``api-key.pem`` (for ``localhost``
    and 127.0.0.1) into C{directory}. @return: the path of ``ca.pem``.
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "spectroreg test pebble API CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    with open(os.path.join(directory, "ca.pem"), "wb") as f:
        f.write(ca.public_bytes(pem))
    with open(os.path.join(directory, "api-cert.pem"), "wb") as f:
        f.write(cert.public_bytes(pem))
    with open(os.path.join(directory, "api-key.pem"), "wb") as f:
        f.write(
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
    return os.path.join(directory, "ca.pem")


class _Output(protocol.ProcessProtocol):
    def __init__(self, name):
        self.name = name
        self.lines = []
        self._buffer = b""
        self.ended = defer.Deferred()
        self.exited = False

    def outReceived(self, data):
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        self.lines.extend(line.decode("utf-8", "replace") for line in lines)

    errReceived = outReceived

    def processEnded(self, reason):
        self.exited = True
        self.ended.callback(None)


class _Program:
    """A child process stopped (SIGTERM, then SIGKILL) at test cleanup."""

    def __init__(self, testcase, reactor):
        self.testcase = testcase
        self.reactor = reactor
        self.process = None
        self.output = None

    def _spawn(self, name, argv, env, cwd):
        self.output = _Output(name)
        self.process = self.reactor.spawnProcess(
            self.output, argv[0], argv, env=env, path=cwd, childFDs={0: "w", 1: "r", 2: "r"}
        )

    async def stop(self):
        if self.process is None or self.output.exited:
            return
        ended = self.output.ended
        try:
            self.process.signalProcess(signal.SIGTERM)
        except Exception:
            pass
        timeout = self.reactor.callLater(5, self._kill)
        await ended
        if timeout.active():
            timeout.cancel()

    def _kill(self):
        if not self.output.exited:
            try:
                self.process.signalProcess(signal.SIGKILL)
            except Exception:
                pass

    def log(self):
        return "\n".join(self.output.lines if self.output else [])


class ChallTestSrv(_Program):
    """pebble-challtestsrv as a DNS server answering 127.0.0.1 for every name."""

    def __init__(self, testcase, reactor):
        super().__init__(testcase, reactor)
        self.binary = require_binary("pebble-challtestsrv")
        self.dns_port = free_port()
        self.management_port = free_port()

    @property
    def dns_server(self):
        return "127.0.0.1:{}".format(self.dns_port)

    async def start(self):
        # Every flag given: the defaults bind all interfaces on ports that
        # collide with pebble's validation ports.
        argv = [
            self.binary,
            "-defaultIPv4", "127.0.0.1",
            "-defaultIPv6", "",
            "-dns01", "127.0.0.1:{}".format(self.dns_port),
            "-http01", "",
            "-https01", "",
            "-tlsalpn01", "",
            "-management", "127.0.0.1:{}".format(self.management_port),
        ]
        self._spawn("challtestsrv", argv, dict(os.environ), None)
        self.testcase.addCleanup(lambda: defer.ensureDeferred(self.stop()))
        await _wait_for(self.reactor, lambda: _tcp_open(self.management_port), self, "challtestsrv")

    async def add_a(self, host, address):
        """Make C{host} resolve to C{address} (instead of 127.0.0.1)."""
        import treq

        body = json.dumps({"host": host, "addresses": [address]}).encode()
        response = await treq.post(
            "http://127.0.0.1:{}/add-a".format(self.management_port), data=body, persistent=False
        )
        await treq.content(response)
        if response.code != 200:
            raise RuntimeError("challtestsrv add-a answered {}".format(response.code))


class Pebble(_Program):
    """
    Debian's pebble in a temporary directory.

    @ivar directory_url: the ACME directory URL.
    @ivar api_ca_file: the PEM file to trust for pebble's API.
    """

    def __init__(self, testcase, reactor, http_port, tls_port, validity=None, dns_server=None, nonce_reject=0):
        super().__init__(testcase, reactor)
        self.binary = require_binary("pebble")
        self.workdir = os.path.abspath(testcase.mktemp())
        os.makedirs(self.workdir)
        self.api_ca_file = make_api_ca(self.workdir)
        self.port = free_port()
        self.management_port = free_port()
        self.http_port = http_port
        self.tls_port = tls_port
        self.validity = validity
        self.dns_server = dns_server
        # Percentage of good nonces pebble rejects with badNonce.
        self.nonce_reject = nonce_reject
        self.starts = 0
        self._previous_logs = []
        testcase.addCleanup(lambda: defer.ensureDeferred(self.stop()))

    @property
    def directory_url(self):
        return "https://localhost:{}/dir".format(self.port)

    def _write_config(self):
        config = {
            "listenAddress": "127.0.0.1:{}".format(self.port),
            "managementListenAddress": "127.0.0.1:{}".format(self.management_port),
            "certificate": "api-cert.pem",
            "privateKey": "api-key.pem",
            "httpPort": self.http_port,
            "tlsPort": self.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
        if self.validity is not None:
            config["certificateValidityPeriod"] = self.validity
        with open(os.path.join(self.workdir, "pebble-config.json"), "w") as f:
            json.dump({"pebble": config}, f)

    async def start(self):
        self._write_config()
        argv = [self.binary, "-config", "pebble-config.json"]
        if self.dns_server:
            argv += ["-dnsserver", self.dns_server]
        env = dict(os.environ)
        env.update(
            {
                "PEBBLE_VA_NOSLEEP": "1",
                "PEBBLE_WFE_NONCEREJECT": str(self.nonce_reject),
                "PEBBLE_AUTHZREUSE": "0",
            }
        )
        if self.output is not None:
            self._previous_logs.append(self.log())
        self._spawn("pebble", argv, env, self.workdir)
        self.starts += 1
        await _wait_for(
            self.reactor,
            lambda: _tcp_open(self.port) and _tcp_open(self.management_port),
            self,
            "pebble",
        )

    async def restart(self):
        await self.stop()
        await self.start()

    async def root_pem(self):
        """The root the issued certificates chain to (a new one at every start)."""
        from spectroreg.tls.acme.client import AgentTransport

        transport = AgentTransport(self.reactor, ca_file=self.api_ca_file, timeout=10)
        response = await transport.request(
            "GET", "https://localhost:{}/roots/0".format(self.management_port)
        )
        if response.status != 200:
            raise RuntimeError("pebble /roots/0 answered {}".format(response.status))
        return response.body

    def orders(self):
        """
        How many orders pebble has created since this object first started
        it (pebble logs ``There are now N orders in the db`` per new order;
        the count restarts with the process, so earlier runs are added up).
        """
        total = 0
        for text in self._previous_logs + [self.log()]:
            counts = [int(n) for n in re.findall(r"There are now (\d+) orders in the db", text, re.I)]
            total += max(counts, default=0)
        return total


def _tcp_open(port):
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


async def _wait_for(reactor, condition, program, name, timeout=15.0):
    waited = 0.0
    while not condition():
        if program.output.exited:
            raise RuntimeError("{} exited at start:\n{}".format(name, program.log()))
        if waited > timeout:
            raise RuntimeError("{} did not start in {} s:\n{}".format(name, timeout, program.log()))
        await task.deferLater(reactor, 0.1, lambda: None)
        waited += 0.1
