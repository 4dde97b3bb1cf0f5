"""
Blob pulls, spectroreg beside Debian's docker-registry, plain HTTP and TLS.

    python3 bench/pull.py [--blobs 4] [--size 32M] [--clients 1,8] [--rounds 3]
                          [--schemes http,https]

Both registries run on 127.0.0.1 with filesystem storage (over TLS with the
same self-signed certificate, made for the run). The same blobs are pushed
to each, then rounds alternate between the servers: in a round, each of N
clients (a ``curl`` process) GETs every blob once. Per figure: the median
throughput (MB/s of blob bytes delivered), the server's CPU (user + system,
from /proc/<pid>/stat) per GB sent, spectroreg's ratio to Distribution, and
each server's peak resident memory (VmHWM) at the end.

Importable: L{measure_pull} times one round against any registry URL, and
L{Servers} starts the pair; bench/compare.py uses them.
"""

import argparse
import hashlib
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import procstat  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.support.daemon import RegistryDaemon  # noqa: E402
from tests.support.reference import (  # noqa: E402
    ServerProcess,
    wait_for_port,
    write_config,
    clean_environment,
    reference_config,
)
from tests.support.requirements import require_binary  # noqa: E402

REPOSITORY = "bench/pull"


def parse_size(text):
    units = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}
    if text[-1:].upper() in units:
        return int(text[:-1]) * units[text[-1:].upper()]
    return int(text)


def make_certificate(directory):
    """A self-signed certificate for 127.0.0.1 and localhost: (cert path, key path)."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout", key, "-out", cert,
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


def _context(base):
    if not base.startswith("https:"):
        return None
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def push(base, data, repository=REPOSITORY):
    """A monolithic upload (POST, then PUT with the body and the digest): the digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    context = _context(base)
    start = urllib.request.Request("{}/v2/{}/blobs/uploads/".format(base, repository), data=b"",
                                   method="POST")
    with urllib.request.urlopen(start, context=context) as response:
        location = response.headers["Location"]
    if location.startswith("/"):
        location = base + location
    separator = "&" if "?" in location else "?"
    request = urllib.request.Request(
        "{}{}digest={}".format(location, separator, digest), data=data, method="PUT",
        headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(request, context=context) as response:
        if response.status != 201:
            raise RuntimeError("push failed: {}".format(response.status))
    return digest


def pull_round(base, digests, clients, repository=REPOSITORY):
    """Seconds for C{clients} curl processes each to GET every blob once (one connection each)."""
    urls = ["{}/v2/{}/blobs/{}".format(base, repository, digest) for digest in digests]
    command = ["curl", "-sf", "-k"]
    for url in urls:
        command += ["-o", "/dev/null", url]
    started = time.monotonic()
    processes = [subprocess.Popen(command) for _ in range(clients)]
    failed = [process for process in processes if process.wait() != 0]
    if failed:
        raise RuntimeError("curl failed against {}".format(base))
    return time.monotonic() - started


def measure_pull(base, digests, blob_size, clients, server_pid, repository=REPOSITORY):
    """
    One round of pulls against the registry at C{base} (``http://`` or
    ``https://``, any certificate accepted): C{clients} clients each GET
    every blob of C{digests} (each C{blob_size} bytes) once.

    @param server_pid: the registry's process, whose CPU is counted.
    @return: a dict: ``mb_per_s`` (blob bytes delivered, 10^6 per second),
        ``cpu_per_gb`` (server CPU seconds per 10^9 bytes), ``seconds``,
        ``bytes``.
    """
    total = clients * len(digests) * blob_size
    cpu = procstat.cpu_seconds(server_pid)
    seconds = pull_round(base, digests, clients, repository)
    cpu = procstat.cpu_seconds(server_pid) - cpu
    return {"mb_per_s": total / seconds / 1e6, "cpu_per_gb": cpu / (total / 1e9),
            "seconds": seconds, "bytes": total}


def start_distribution(root, workdir, tls=None, timeout=30.0):
    """Debian's docker-registry on 127.0.0.1 (TLS when C{tls} is (cert, key)): a ServerProcess."""
    binary = require_binary("docker-registry")
    config = reference_config(root)
    config["log"] = {"level": "info", "accesslog": {"disabled": True}}  # info: the port line
    if tls is not None:
        config["http"]["tls"] = {"certificate": tls[0], "key": tls[1]}
    workdir, config_path = write_config(workdir, "docker-registry", config)
    log_path = os.path.join(workdir, "docker-registry.log")
    with open(log_path, "ab") as log:
        process = subprocess.Popen([binary, "serve", config_path], stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT,
                                   env=clean_environment(), cwd=workdir)
    server = ServerProcess("docker-registry", process, "127.0.0.1", None, log_path, root=root,
                           config_path=config_path)
    try:
        server.port = wait_for_port(server, timeout)
        _wait_answering("{}://127.0.0.1:{}".format("https" if tls else "http", server.port), timeout)
    except BaseException:
        server.kill()
        raise
    return server


def _wait_answering(base, timeout):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(base + "/v2/", context=_context(base), timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class Servers:
    """
    spectroreg (the interpreter C{python}) and Distribution, both with
    filesystem storage under C{workdir}, plain or TLS. C{servers} maps a name
    to (pid, base URL); L{stop} kills both.
    """

    def __init__(self, workdir, tls=False, python=None):
        self.servers = {}
        self._kill = []
        certificate = make_certificate(workdir) if tls else None
        config = {"version": "0.1",
                  "storage": {"filesystem": {"rootdirectory": os.path.join(workdir, "spectroreg")}},
                  "log": {"accesslog": {"disabled": True}, "level": "warn"}}
        if certificate:
            config["http"] = {"tls": {"certificate": certificate[0], "key": certificate[1]}}
        try:
            ours = RegistryDaemon(config, workdir=os.path.join(workdir, "daemon"),
                                  python=python or sys.executable,
                                  scheme="https" if tls else "http")
            ours.start()
            self._kill.append(ours.kill)
            self.servers["spectroreg"] = (ours.process.pid, ours.url)
            theirs = start_distribution(os.path.join(workdir, "distribution"),
                                        os.path.join(workdir, "reference"), tls=certificate)
            self._kill.append(theirs.kill)
            self.servers["docker-registry"] = (theirs.pid, "{}://127.0.0.1:{}".format(
                "https" if tls else "http", theirs.port))
        except BaseException:
            self.stop()
            raise

    def stop(self):
        for kill in self._kill:
            try:
                kill()
            except Exception:
                pass
        self._kill = []


def run(scheme, options, size, clients_list):
    """Push, warm, alternate rounds; print one table for C{scheme}."""
    workdir = tempfile.mkdtemp(prefix="spectroreg-bench-pull-")
    servers = None
    try:
        servers = Servers(workdir, tls=(scheme == "https"))
        blobs = [os.urandom(size) for _ in range(options.blobs)]
        digests = {name: [push(base, data) for data in blobs]
                   for name, (_, base) in servers.servers.items()}
        del blobs
        for name, (_, base) in servers.servers.items():
            pull_round(base, digests[name], 1)  # page cache warm, connections tried
        results = {}
        for clients in clients_list:
            for _ in range(options.rounds):
                for name, (pid, base) in servers.servers.items():
                    results.setdefault((clients, name), []).append(
                        measure_pull(base, digests[name], size, clients, pid))
        peaks = {name: procstat.peak_rss(pid) for name, (pid, _) in servers.servers.items()}
        print("{}: python {}; {} x {} blobs, {} rounds; peak RSS spectroreg {:.0f} MiB, "
              "Distribution {:.0f} MiB".format(
                  scheme, sys.version.split()[0], options.blobs, options.size, options.rounds,
                  peaks["spectroreg"] / 2 ** 20, peaks["docker-registry"] / 2 ** 20))
        print("| {} | clients | spectroreg MB/s | Distribution MB/s | ratio | server CPU per GB |".format(
            scheme))
        print("| --- | --- | --- | --- | --- | --- |")
        for clients in clients_list:
            ours = results[(clients, "spectroreg")]
            theirs = results[(clients, "docker-registry")]
            ours_rate = statistics.median(r["mb_per_s"] for r in ours)
            theirs_rate = statistics.median(r["mb_per_s"] for r in theirs)
            print("| {} | {} | {:.0f} | {:.0f} | {:.2f}x | {:.2f} vs {:.2f} s |".format(
                scheme, clients, ours_rate, theirs_rate, ours_rate / theirs_rate,
                statistics.median(r["cpu_per_gb"] for r in ours),
                statistics.median(r["cpu_per_gb"] for r in theirs)))
        sys.stdout.flush()
    finally:
        if servers is not None:
            servers.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blobs", type=int, default=4)
    parser.add_argument("--size", default="32M")
    parser.add_argument("--clients", default="1,8")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--schemes", default="http,https")
    options = parser.parse_args()
    size = parse_size(options.size)
    clients_list = [int(n) for n in options.clients.split(",")]
    for scheme in options.schemes.split(","):
        run(scheme, options, size, clients_list)


if __name__ == "__main__":
    main()
