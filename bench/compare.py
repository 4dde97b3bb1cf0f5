#!/usr/bin/env python3
"""
spectroreg against Distribution 2.8, side by side: pulls, pushes and small requests.

Usage (from the source tree):

    python3 bench/compare.py [--quick] [--rounds 3] [--python /usr/bin/python3]
        [--blob-size 32M] [--blobs 4] [--chunk 8M] [--small-blobs 400] [--manifests 40]
        [--duration 3] [--connections 16,64] [--rows pull,push,small,requests,skopeo]
        [--workers 1] [--no-flush] [--kernel]

Starts four servers on 127.0.0.1, each with filesystem storage in its own
directory under a temporary work directory: spectroreg (``python -m
spectroreg serve``, with the interpreter given by ``--python``) and Debian's
``docker-registry``, each once over plain HTTP and once over TLS with a
self-signed certificate made for the run. Then, in rounds, every row runs
against every server of its transport, alternating which goes first:

- pull, 1 and 8 clients, plain and TLS: BLOBS blobs of BLOB-SIZE, each client
  pulling all of them over one keep-alive connection;
- push, monolithic (one ``PUT``) and chunked (``PATCH``es of CHUNK), plain and
  TLS: BLOBS new blobs of BLOB-SIZE, one client;
- many small pushes, plain: SMALL-BLOBS new 4 KiB blobs (``POST`` + ``PUT``)
  from 8 clients, then MANIFESTS image manifests referencing them;
- manifest ``GET`` and blob ``HEAD``, plain, at each of CONNECTIONS
  keep-alive connections for DURATION seconds, from two client processes
  (non-blocking sockets, one request at a time per connection; ``--client
  wrk`` for the GETs with ``wrk``);
- a real client, plain and TLS: ``skopeo copy`` of an OCI image (BLOBS new
  gzip layers of BLOB-SIZE) into the registry, then of that image out of it
  into a ``dir:`` layout (the client's own work counts here: it hashes
  everything, and writes what it pulls to disk).

Each server's best round is printed per row with the spectroreg/Distribution
ratio of the best rounds and the median of each round's own ratio (both
servers ran back to back in it, so it moves less with the machine's load),
the server CPU time per unit (utime + stime of the server process from
/proc/<pid>/stat, across the row; with ``--workers N``, spectroreg's
``http.workers``, of all its processes), the load client's CPU time per unit (this
process and the children it waited for: the pulling and pushing threads, the
request-row processes, wrk, skopeo) and, at the end, each server's peak RSS
(VmHWM: of its largest process, and with workers the sum of all). The client shares the machine's cores with the server: where a row
is CPU-bound, its rate is at most cores / (server + client CPU per unit),
which is what bounds the ratio a cheaper server can reach there. ``--quick`` is a smaller run (one round, 8 MiB blobs, 1 s per
request row) for a check under a minute.

``--no-flush`` runs spectroreg with libeatmydata preloaded, so that its
``fsync``s return at once: what it then does is no longer what
docs/storage.md promises, but the rows show what the flushes cost it
(Distribution flushes each file it writes, not the directories).

``--kernel`` adds two columns: of each server's CPU per unit, the part spent
in the kernel (stime: system calls, page faults, waking and switching
threads), and the server's context switches per unit (voluntary and
involuntary, summed over its live threads from /proc/<pid>/task/*/status).

The pull measurement (L{measure_pull}) is a plain client, kept separate so
that a better one can replace it.
"""

import argparse
import collections
import ctypes.util
import datetime
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import procstat  # noqa: E402
import resource  # noqa: E402

SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

KiB = 1024
MiB = 1024 * KiB
UNITS = {"": 1, "K": KiB, "M": MiB, "G": 1024 * MiB}

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"
HOT_REPOSITORY = "bench/app"
SERVERS = ("spectroreg", "distribution")


def parse_size(text):
    text = text.strip().upper().rstrip("B").rstrip("I")
    unit = text[-1] if text and text[-1] in UNITS else ""
    return int(float(text[: len(text) - len(unit)]) * UNITS[unit])


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- certificates --------------------------------------------------------------


def make_certificate(directory):
    """A self-signed certificate for 127.0.0.1 and localhost: (cert path, key path)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.utcnow()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = os.path.join(directory, "bench.crt")
    key_path = os.path.join(directory, "bench.key")
    with open(cert_path, "wb") as f:
        f.write(certificate.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))
    return cert_path, key_path


def client_tls_context():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


# -- servers -------------------------------------------------------------------


def server_environment(kind, options):
    """
    The environment of a C{kind} server: ours without C{REGISTRY_*} and
    C{AWS_*} (the config file says everything), and with ``--no-flush``
    spectroreg's with libeatmydata preloaded, which makes its C{fsync}s
    return at once (Distribution makes none).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REGISTRY_", "AWS_", "LD_PRELOAD"))}
    env["PYTHONPATH"] = SOURCE_ROOT
    if kind == "spectroreg" and options.no_flush:
        env["LD_PRELOAD"] = options.no_flush
    return env


class Server:
    """One registry process: C{kind} (spectroreg or distribution), plain or TLS."""

    def __init__(self, kind, tls, workdir, options, certificate):
        self.kind = kind
        self.tls = tls
        self.name = "{} {}".format(kind, "TLS" if tls else "plain")
        self.port = free_port()
        directory = os.path.join(workdir, "{}-{}".format(kind, "tls" if tls else "plain"))
        os.makedirs(directory)
        self.root = os.path.join(directory, "root")
        config = {
            "version": "0.1",
            "log": {"level": "error" if options.quiet else "info", "accesslog": {"disabled": options.quiet}},
            "storage": {"filesystem": {"rootdirectory": self.root}, "delete": {"enabled": True},
                        "maintenance": {"uploadpurging": {"enabled": False}}},
            "http": {"addr": "127.0.0.1:{}".format(self.port), "secret": "bench-secret"},
        }
        if kind == "spectroreg" and options.workers > 1:
            config["http"]["workers"] = options.workers
        if tls:
            config["http"]["tls"] = {"certificate": certificate[0], "key": certificate[1]}
        config_path = os.path.join(directory, "config.yml")
        with open(config_path, "w") as f:
            json.dump(config, f)  # JSON is YAML
        if kind == "spectroreg":
            argv = [options.python, "-m", "spectroreg", "serve", config_path]
        else:
            argv = [options.registry, "serve", config_path]
        env = server_environment(kind, options)
        self.log_path = os.path.join(directory, "server.log")
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(argv, cwd=SOURCE_ROOT, env=env, stdin=subprocess.DEVNULL,
                                        stdout=self._log, stderr=subprocess.STDOUT)
        self.context = client_tls_context() if tls else None

    @property
    def pid(self):
        return self.process.pid

    def connection(self, timeout=120):
        if self.tls:
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=self.context)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def wait_ready(self, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("{} exited; log:\n{}".format(self.name, self.log_text()))
            try:
                connection = self.connection(timeout=2)
                try:
                    connection.request("GET", "/v2/")
                    response = connection.getresponse()
                    response.read()
                    if response.status in (200, 401):
                        return
                finally:
                    connection.close()
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.05)
        raise RuntimeError("{} did not answer within {}s; log:\n{}".format(self.name, timeout, self.log_text()))

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read()[-5000:].decode("utf-8", "replace")

    def cpu_seconds(self):
        """The server's CPU seconds so far: with workers, all its processes'."""
        return procstat.tree_cpu_seconds(self.pid)

    def system_seconds(self):
        """Of L{cpu_seconds}, those spent in the kernel."""
        return procstat.tree_system_seconds(self.pid)

    def context_switches(self):
        """The context switches of the server's live threads so far (all its processes')."""
        return procstat.tree_context_switches(self.pid)

    def peak_rss(self):
        """The peak RSS of its largest process (the sum of all, with workers: L{peak_rss_sum})."""
        peaks = procstat.tree_peak_rss(self.pid)
        return max(peaks) if peaks else None

    def peak_rss_sum(self):
        peaks = procstat.tree_peak_rss(self.pid)
        return sum(peaks) if len(peaks) > 1 else None

    def stop(self):
        procstat.stop(self.process)
        self._log.close()


# -- bodies and requests -------------------------------------------------------


def make_blob(size, seed):
    """SIZE bytes unique to SEED (each MiB starts with its own counter), and their digest."""
    block = hashlib.sha256(seed.encode()).digest() * (MiB // 32)
    pieces = []
    for index in range(0, (size + MiB - 1) // MiB):
        pieces.append(struct.pack(">Q", index) + block[8:])
    data = b"".join(pieces)[:size]
    return data, "sha256:" + hashlib.sha256(data).hexdigest()


def relative(location):
    parts = urllib.parse.urlsplit(location)
    return parts.path + ("?" + parts.query if parts.query else "")


def with_query(location, **params):
    return location + ("&" if "?" in location else "?") + urllib.parse.urlencode(params)


class BenchFailure(Exception):
    pass


def call(connection, method, path, body=None, headers=None, expect=(200,)):
    """One request on a keep-alive connection; (response, body)."""
    headers = dict(headers or {})
    if body is None and method in ("PUT", "POST", "PATCH"):
        body = b""
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    data = response.read()
    if response.status not in expect:
        raise BenchFailure("{} {}: HTTP {} {!r}".format(method, path, response.status, data[:300]))
    return response, data


def start_upload(connection, repository):
    response, _ = call(connection, "POST", "/v2/{}/blobs/uploads/".format(repository), expect=(202,))
    return relative(response.getheader("Location"))


def push_monolithic(connection, repository, data, digest):
    location = start_upload(connection, repository)
    call(connection, "PUT", with_query(location, digest=digest), memoryview(data),
         {"Content-Type": "application/octet-stream"}, expect=(201,))


def push_chunked(connection, repository, data, digest, chunk):
    location = start_upload(connection, repository)
    view = memoryview(data)
    for start in range(0, len(data), chunk):
        end = min(len(data), start + chunk)
        response, _ = call(connection, "PATCH", location, view[start:end], {
            "Content-Type": "application/octet-stream",
            "Content-Range": "{}-{}".format(start, end - 1),
        }, expect=(202,))
        location = relative(response.getheader("Location"))
    call(connection, "PUT", with_query(location, digest=digest), expect=(201,))


def image_manifest(config, layers):
    """A Docker v2 image manifest for (digest, size) pairs, as bytes."""
    return json.dumps({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "size": config[1], "digest": config[0]},
        "layers": [{"mediaType": LAYER_TYPE, "size": size, "digest": digest} for digest, size in layers],
    }, sort_keys=True).encode()


def write_oci_image(path, layers, size):
    """
    An OCI image layout at C{path}: LAYERS gzip layers of about SIZE bytes of
    random data each (already compressed, so skopeo sends them as they are),
    tagged C{latest}. @return: the bytes of its layers.
    """
    import gzip

    blobs = os.path.join(path, "blobs", "sha256")
    os.makedirs(blobs)

    def put(data):
        digest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(blobs, digest), "wb") as f:
            f.write(data)
        return {"digest": "sha256:" + digest, "size": len(data)}

    descriptors = [dict(put(gzip.compress(os.urandom(size), compresslevel=1, mtime=0)),
                        mediaType="application/vnd.oci.image.layer.v1.tar+gzip") for _ in range(layers)]
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in descriptors]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": dict(put(config), mediaType="application/vnd.oci.image.config.v1+json"),
        "layers": descriptors}).encode()
    index = {"schemaVersion": 2, "manifests": [dict(
        put(manifest), mediaType="application/vnd.oci.image.manifest.v1+json",
        annotations={"org.opencontainers.image.ref.name": "latest"})]}
    with open(os.path.join(path, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(path, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    return sum(d["size"] for d in descriptors)


def skopeo_copy(workdir, source, destination, *flags):
    """Seconds for one C{skopeo copy} (its own HOME: no blob cache carried between runs)."""
    home = os.path.join(workdir, "skopeo-home")
    os.makedirs(home, exist_ok=True)
    argv = ["skopeo", "--insecure-policy", "copy", "--quiet"] + list(flags) + [source, destination]
    started = time.monotonic()
    result = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ, HOME=home))
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise BenchFailure("skopeo copy {} {}: {}".format(source, destination, result.stderr.strip()[-500:]))
    return elapsed


def run_threads(count, target):
    """Run C{target(index)} in C{count} threads; re-raise the first failure."""
    failures = []

    def wrapped(index):
        try:
            target(index)
        except BaseException as e:  # reported after the join
            failures.append(e)

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


# -- pull ------------------------------------------------------------------------


def pull_blob(connection, path, buffer):
    """GET C{path} on a keep-alive connection into C{buffer} (reused); the byte count."""
    connection.request("GET", path)
    response = connection.getresponse()
    if response.status != 200:
        data = response.read()
        raise BenchFailure("GET {}: HTTP {} {!r}".format(path, response.status, data[:300]))
    count = 0
    view = memoryview(buffer)
    while True:
        n = response.readinto(view)
        if not n:
            break
        count += n
    return count


def measure_pull(server, paths, clients, expected_bytes):
    """C{clients} connections, each GETting every path in C{paths}: bytes per second."""

    def client(index):
        connection = server.connection()
        buffer = bytearray(MiB)
        try:
            # Each client starts at its own blob: not all on the same file at once.
            for turn in range(len(paths)):
                path, size = paths[(index + turn) % len(paths)]
                count = pull_blob(connection, path, buffer)
                if count != size:
                    raise BenchFailure("GET {}: {} bytes instead of {}".format(path, count, size))
        finally:
            connection.close()

    started = time.monotonic()
    run_threads(clients, client)
    elapsed = time.monotonic() - started
    return clients * expected_bytes / elapsed


# -- small requests -----------------------------------------------------------


def wrk_available():
    return shutil.which("wrk") is not None


def wrk_rate(server, method, path, headers, connections, duration, workdir):
    script = os.path.join(workdir, "wrk-{}.lua".format(method.lower()))
    with open(script, "w") as f:
        f.write('wrk.method = "{}"\n'.format(method))
    argv = ["wrk", "-t", "2", "-c", str(connections), "-d", "{}s".format(max(1, int(round(duration)))),
            "-s", script]
    for name, value in headers.items():
        argv += ["-H", "{}: {}".format(name, value)]
    argv.append("{}://127.0.0.1:{}{}".format("https" if server.tls else "http", server.port, path))
    output = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        raise BenchFailure("{} {}: {} non-2xx answers; wrk said:\n{}".format(method, path, errors.group(1), output))
    socket_errors = re.search(r"Socket errors: (.*)", output)
    if socket_errors:
        raise BenchFailure("{} {}: socket errors ({}); wrk said:\n{}".format(
            method, path, socket_errors.group(1), output))
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    return float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)), requests


def _raw_worker(port, request, connections, duration, results):
    """One process: C{connections} non-blocking keep-alive sockets sending C{request} in turn."""
    import selectors

    selector = selectors.DefaultSelector()
    head_only = request.startswith(b"HEAD ")
    count = 0
    failures = 0
    buffers = {}
    for _ in range(connections):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        buffers[sock] = bytearray()
        selector.register(sock, selectors.EVENT_READ)
        sock.send(request)
    stop_at = time.monotonic() + duration
    while time.monotonic() < stop_at:
        for key, _ in selector.select(0.5):
            sock = key.fileobj
            data = sock.recv(65536)
            if not data:
                raise BenchFailure("connection closed by the server")
            buffer = buffers[sock]
            buffer += data
            while True:
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    break
                head = bytes(buffer[:end]).lower()
                length = 0
                if not head_only:
                    match = re.search(rb"\r\ncontent-length: *(\d+)", head)
                    length = int(match.group(1)) if match else 0
                if len(buffer) < end + 4 + length:
                    break
                if not head.startswith((b"http/1.1 200", b"http/1.0 200")):
                    failures += 1
                del buffer[:end + 4 + length]
                count += 1
                sock.send(request)
    for sock in buffers:
        sock.close()
    results.put((count, failures))


def raw_rate(server, method, path, headers, connections, duration, workdir):
    """Plain-HTTP keep-alive load from two processes (one per core); (rate, count)."""
    import multiprocessing

    if server.tls:
        raise BenchFailure("the raw client speaks plain HTTP only")
    request = "{} {} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n".format(method, path, server.port)
    request += "".join("{}: {}\r\n".format(name, value) for name, value in headers.items()) + "\r\n"
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    processes = []
    for index in range(2):
        share = connections // 2 + (connections % 2 if index == 0 else 0)
        processes.append(context.Process(target=_raw_worker, args=(
            server.port, request.encode("latin-1"), share, duration, results)))
    started = time.monotonic()
    for process in processes:
        process.start()
    counts = [results.get(timeout=duration + 60) for _ in processes]
    elapsed = time.monotonic() - started
    for process in processes:
        process.join()
    count = sum(c for c, _ in counts)
    failures = sum(f for _, f in counts)
    if failures or any(p.exitcode for p in processes):
        raise BenchFailure("{} {}: {} answers other than 200".format(method, path, failures))
    return count / elapsed, count


# -- the rows --------------------------------------------------------------------


class Row:
    """One line of the table: a name, its unit, and what to run per server and round."""

    def __init__(self, name, unit, cpu_unit, transport, run):
        self.name = name
        self.unit = unit  # "MB/s", "req/s", ...
        self.cpu_unit = cpu_unit  # (label, scale): CPU seconds per unit of amount, times scale
        self.transport = transport
        # run(server, round) -> [(label, rate, amount)], or with parts measured
        # apart [(label, rate, amount, Usage of that part)]
        self.run = run


class Usage(collections.namedtuple("Usage", "cpu system switches client")):
    """
    What a server and the load client have used so far: the server's CPU
    seconds, of them in the kernel, its context switches, and the client's
    CPU seconds. Subtracting two gives what was used in between.
    """

    __slots__ = ()

    def __sub__(self, other):
        return Usage(*(a - b for a, b in zip(self, other)))

    @classmethod
    def of(cls, server):
        return cls(server.cpu_seconds(), server.system_seconds(), server.context_switches(), client_cpu_seconds())


class Bench:
    def __init__(self, options, servers, workdir):
        self.options = options
        self.servers = servers
        self.workdir = workdir
        self.pull_paths = {}
        self.hot = {}

    # setup: blobs to pull, a manifest to GET, a blob to HEAD

    def prepare(self, server):
        connection = server.connection()
        try:
            paths = []
            for index in range(self.options.blobs):
                data, digest = make_blob(self.options.blob_size, "pull-{}".format(index))
                push_monolithic(connection, HOT_REPOSITORY, data, digest)
                paths.append(("/v2/{}/blobs/{}".format(HOT_REPOSITORY, digest), len(data)))
            self.pull_paths[server.name] = paths
            config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
            config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
            push_monolithic(connection, HOT_REPOSITORY, config, config_digest)
            layer, layer_digest = make_blob(4 * KiB, "hot-layer")
            push_monolithic(connection, HOT_REPOSITORY, layer, layer_digest)
            manifest = image_manifest((config_digest, len(config)), [(layer_digest, len(layer))])
            call(connection, "PUT", "/v2/{}/manifests/v1".format(HOT_REPOSITORY), manifest,
                 {"Content-Type": MANIFEST_TYPE}, expect=(201,))
            self.hot[server.name] = ("/v2/{}/manifests/v1".format(HOT_REPOSITORY),
                                     "/v2/{}/blobs/{}".format(HOT_REPOSITORY, layer_digest))
        finally:
            connection.close()

    def pull(self, clients):
        def run(server, round_index):
            paths = self.pull_paths[server.name]
            total = sum(size for _, size in paths)
            rate = measure_pull(server, paths, clients, total)
            return [("", rate, clients * total)]
        return run

    def push(self, server, round_index, chunked):
        repository = "bench/push"
        blobs = [make_blob(self.options.blob_size, "push-{}-{}-{}-{}".format(
            server.name, round_index, chunked, index)) for index in range(self.options.blobs)]
        connection = server.connection()
        try:
            started = time.monotonic()
            for data, digest in blobs:
                if chunked:
                    push_chunked(connection, repository, data, digest, self.options.chunk)
                else:
                    push_monolithic(connection, repository, data, digest)
            elapsed = time.monotonic() - started
        finally:
            connection.close()
        total = sum(len(data) for data, _ in blobs)
        return [("", total / elapsed, total)]

    def small_pushes(self, server, round_index):
        options = self.options
        clients = 8
        repository = "bench/small{}".format(round_index)
        blobs = [make_blob(4 * KiB, "small-{}-{}-{}".format(server.name, round_index, index))
                 for index in range(options.small_blobs)]
        per_manifest = max(1, len(blobs) // max(1, options.manifests))
        manifests = []
        for index in range(options.manifests):
            group = [(digest, len(data)) for data, digest in
                     blobs[index * per_manifest:(index + 1) * per_manifest]] or [(blobs[0][1], len(blobs[0][0]))]
            manifests.append(image_manifest(group[0], group[1:] or group))

        def push_blobs(index):
            connection = server.connection()
            try:
                for data, digest in blobs[index::clients]:
                    push_monolithic(connection, repository, data, digest)
            finally:
                connection.close()

        def push_manifests(index):
            connection = server.connection()
            try:
                for number in range(index, len(manifests), clients):
                    call(connection, "PUT", "/v2/{}/manifests/t{}".format(repository, number), manifests[number],
                         {"Content-Type": MANIFEST_TYPE}, expect=(201,))
            finally:
                connection.close()

        before = Usage.of(server)
        started = time.monotonic()
        run_threads(clients, push_blobs)
        middle = time.monotonic()
        between = Usage.of(server)
        run_threads(clients, push_manifests)
        ended = time.monotonic()
        after = Usage.of(server)
        return [("blobs", len(blobs) / (middle - started), len(blobs), between - before),
                ("manifests", len(manifests) / (ended - middle), len(manifests), after - between)]

    def small_requests(self, kind, connections):
        def run(server, round_index):
            manifest_path, blob_path = self.hot[server.name]
            if kind == "manifest GET":
                method, path, headers = "GET", manifest_path, {"Accept": MANIFEST_TYPE}
            else:
                method, path, headers = "HEAD", blob_path, {}
            # wrk waits for a body after a HEAD answer's Content-Length.
            rate_of = wrk_rate if self.options.client == "wrk" and method != "HEAD" else raw_rate
            rate, count = rate_of(server, method, path, headers, connections, self.options.duration, self.workdir)
            return [("", rate, count)]
        return run

    # a real client: skopeo copying an image in and out

    def skopeo_push(self, server, round_index):
        """skopeo copies an OCI image of BLOBS new gzip layers of BLOB-SIZE into the registry."""
        layout = os.path.join(self.workdir, "skopeo-image-{}-{}".format(server.name, round_index))
        total = write_oci_image(layout, self.options.blobs, self.options.blob_size)
        reference = "docker://127.0.0.1:{}/bench/skopeo{}:latest".format(server.port, round_index)
        elapsed = skopeo_copy(self.workdir, "oci:{}:latest".format(layout), reference, "--dest-tls-verify=false")
        shutil.rmtree(layout, ignore_errors=True)
        return [("", total / elapsed, total)]

    def skopeo_pull(self, server, round_index):
        """skopeo copies the image its push row put there out of the registry (a dir: layout)."""
        target = os.path.join(self.workdir, "skopeo-pulled-{}".format(server.name))
        shutil.rmtree(target, ignore_errors=True)
        reference = "docker://127.0.0.1:{}/bench/skopeo{}:latest".format(server.port, round_index)
        elapsed = skopeo_copy(self.workdir, reference, "dir:{}".format(target), "--src-tls-verify=false")
        total = sum(os.path.getsize(os.path.join(target, name)) for name in os.listdir(target)
                    if len(name) == 64)
        shutil.rmtree(target, ignore_errors=True)
        return [("", total / elapsed, total)]

    def rows(self):
        options = self.options
        rows = []
        wanted = set(options.rows)
        for tls in (False, True):
            transport = "TLS" if tls else "plain"
            if "pull" in wanted:
                for clients in (1, 8):
                    rows.append(Row("pull, {} client{}, {}".format(clients, "s" if clients > 1 else "", transport),
                                    "MB/s", ("s/GB", 1e9), tls, self.pull(clients)))
            if "push" in wanted:
                rows.append(Row("push monolithic, {}".format(transport), "MB/s", ("s/GB", 1e9), tls,
                                lambda server, r: self.push(server, r, False)))
                rows.append(Row("push chunked, {}".format(transport), "MB/s", ("s/GB", 1e9), tls,
                                lambda server, r: self.push(server, r, True)))
            if "skopeo" in wanted:
                rows.append(Row("skopeo copy to the registry, {}".format(transport), "MB/s", ("s/GB", 1e9), tls,
                                lambda server, r: self.skopeo_push(server, r)))
                rows.append(Row("skopeo copy from the registry, {}".format(transport), "MB/s", ("s/GB", 1e9),
                                tls, lambda server, r: self.skopeo_pull(server, r)))
        if "small" in wanted:
            rows.append(Row("many small pushes (8 clients), plain", "/s", ("ms each", 1e3), False,
                            self.small_pushes))
        if "requests" in wanted:
            for kind in ("manifest GET", "blob HEAD"):
                for connections in options.connections:
                    rows.append(Row("{}, {} connections, plain".format(kind, connections), "req/s",
                                    ("us/req", 1e6), False, self.small_requests(kind, connections)))
        return rows


def client_cpu_seconds():
    """CPU time of the load client: this process's threads and the children it waited for."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def switch_unit(cpu_unit):
    """The unit context switches are counted per, for a row's CPU unit: (label, scale)."""
    return {"s/GB": ("per GB", 1e9), "us/req": ("per req", 1)}.get(cpu_unit[0], ("each", 1))


def measure_row(row, server, round_index):
    """
    Run C{row} once against C{server}: [(label, rate, server CPU per unit,
    client CPU per unit, server kernel CPU per unit, server context switches
    per switch unit)]. A row that measures parts of its run apart (several
    labels) returns each part's L{Usage}.
    """
    before = Usage.of(server)
    results = row.run(server, round_index)
    used = Usage.of(server) - before
    scale = row.cpu_unit[1]
    switch_scale = switch_unit(row.cpu_unit)[1]
    measured = []
    for result in results:
        label, rate, amount = result[:3]
        part = result[3] if len(result) > 3 else used
        if not amount:
            measured.append((label, rate, None, None, None, None))
            continue
        measured.append((label, rate, part.cpu / amount * scale, part.client / amount * scale,
                         part.system / amount * scale, part.switches / amount * switch_scale))
    return measured


def format_rate(rate, unit):
    if unit == "MB/s":
        return "{:.0f} MB/s".format(rate / 1e6)
    return "{:.0f} {}".format(rate, unit)


def _least(values):
    values = [v for v in values if v is not None]
    return min(values) if values else None


def _cpu_pair(cpus, unit):
    """'a vs b unit', or n/a when either is unknown."""
    if None in cpus:
        return "n/a"
    digits = 3 if unit == "s/GB" else (0 if unit == "us/req" else 2)
    return "{:.{d}f} vs {:.{d}f} {}".format(cpus[0], cpus[1], unit, d=digits)


def _count_pair(counts, unit):
    """'a vs b unit' of two counts per unit, or n/a when either is unknown."""
    if None in counts:
        return "n/a"
    return "{:.0f} vs {:.0f} {}".format(counts[0], counts[1], unit)


def report(rows, results, peaks, options):
    lines = []
    header = ("| | spectroreg: best (each round) | Distribution: best (each round) | ratio of the best"
              " (median of the rounds' ratios) | server CPU per unit, least (spectroreg vs Distribution) |"
              " load client's CPU per unit, least (against spectroreg vs against Distribution) |")
    columns = 6
    if options.kernel:
        header += (" of the server CPU, in the kernel, least (spectroreg vs Distribution) |"
                   " server context switches, least (spectroreg vs Distribution) |")
        columns += 2
    lines.append(header)
    lines.append("|" + " --- |" * columns)
    for row in rows:
        by_label = {}
        for kind in SERVERS:
            for label, rate, cpu, client, system, switches in results.get((row.name, kind), []):
                by_label.setdefault(label, {}).setdefault(kind, []).append((rate, cpu, client, system, switches))
        for label, per_kind in by_label.items():
            name = row.name if not label else "{}: {}".format(row.name, label)
            unit = row.unit if row.unit != "/s" else label + "/s"
            cells = []
            best = {}
            for kind in SERVERS:
                rounds = per_kind.get(kind, [])
                if rounds:
                    best[kind] = (max(r[0] for r in rounds), _least(r[1] for r in rounds),
                                  _least(r[2] for r in rounds), _least(r[3] for r in rounds),
                                  _least(r[4] for r in rounds))
                    shown = format_rate(best[kind][0], unit)
                    if len(rounds) > 1:
                        shown += " ({})".format(", ".join(
                            format_rate(r[0], unit).split()[0] for r in rounds))
                    cells.append(shown)
                else:
                    cells.append("n/a")
            ratio = "n/a"
            cpu_cell = client_cell = system_cell = switches_cell = "n/a"
            if len(best) == 2 and best["distribution"][0]:
                ratio = "{:.2f}x".format(best["spectroreg"][0] / best["distribution"][0])
                # Each round ran both back to back: its ratio is paired, and
                # their median moves less with the machine's load than the best.
                paired = sorted(ours[0] / theirs[0] for ours, theirs in zip(
                    per_kind["spectroreg"], per_kind["distribution"]) if theirs[0])
                if len(paired) > 1:
                    ratio += " ({:.2f}x)".format(paired[len(paired) // 2] if len(paired) % 2 else
                                                 (paired[len(paired) // 2 - 1] + paired[len(paired) // 2]) / 2)
                cpu_cell = _cpu_pair([best[k][1] for k in SERVERS], row.cpu_unit[0])
                client_cell = _cpu_pair([best[k][2] for k in SERVERS], row.cpu_unit[0])
                system_cell = _cpu_pair([best[k][3] for k in SERVERS], row.cpu_unit[0])
                switches_cell = _count_pair([best[k][4] for k in SERVERS], switch_unit(row.cpu_unit)[0])
            line = "| {} | {} | {} | {} | {} | {} |".format(name, cells[0], cells[1], ratio, cpu_cell, client_cell)
            if options.kernel:
                line += " {} | {} |".format(system_cell, switches_cell)
            lines.append(line)
    lines.append("")
    lines.append("peak RSS (VmHWM): " + ", ".join(
        "{} {:.1f} MiB".format(name, peak / MiB) for name, peak in peaks if peak is not None))
    return "\n".join(lines)


def parse_options(argv):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round, small sizes: under a minute")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per row and server (3; quick: 1)")
    parser.add_argument("--blob-size", default=None, help="size of each pulled and pushed blob (32M; quick: 8M)")
    parser.add_argument("--blobs", type=int, default=4, help="blobs per pull and push row")
    parser.add_argument("--chunk", default="8M", help="PATCH size of chunked pushes")
    parser.add_argument("--small-blobs", type=int, default=None, help="4 KiB blobs per round (400; quick: 100)")
    parser.add_argument("--manifests", type=int, default=None, help="manifests per round (40; quick: 10)")
    parser.add_argument("--duration", type=float, default=None, help="seconds per request row (3; quick: 1)")
    parser.add_argument("--connections", default="16,64", help="connection counts of the request rows")
    parser.add_argument("--rows", default="pull,push,small,requests,skopeo",
                        help="which rows to run (skopeo: only where skopeo is installed)")
    parser.add_argument("--client", choices=("wrk", "python"), default=None,
                        help="client of the manifest GETs: a small Python one (default: two processes of"
                             " non-blocking keep-alive sockets) or wrk; HEADs always use the Python one")
    parser.add_argument("--quiet", action="store_true",
                        help="both servers without access logs and at log level error (default: as shipped,"
                             " access logs on, level info)")
    parser.add_argument("--python", default=sys.executable, help="interpreter running spectroreg")
    parser.add_argument("--workers", type=int, default=1,
                        help="spectroreg's http.workers (processes serving the port; 1: one process)")
    parser.add_argument("--registry", default="/usr/bin/docker-registry", help="Distribution's binary")
    parser.add_argument("--no-flush", action="store_true",
                        help="spectroreg with its fsyncs made no-ops (libeatmydata, apt-get install eatmydata):"
                             " not its durability, but what the flushes cost in each row")
    parser.add_argument("--kernel", action="store_true",
                        help="two more columns: each server's CPU per unit spent in the kernel, and its context"
                             " switches per unit")
    parser.add_argument("--workdir", default=None, help="where the data trees go (a temp dir, removed)")
    options = parser.parse_args(argv)
    quick = options.quick
    options.rounds = options.rounds or (1 if quick else 3)
    options.blob_size = parse_size(options.blob_size or ("8M" if quick else "32M"))
    options.chunk = parse_size(options.chunk)
    options.small_blobs = options.small_blobs if options.small_blobs is not None else (100 if quick else 400)
    options.manifests = options.manifests if options.manifests is not None else (10 if quick else 40)
    options.duration = options.duration if options.duration is not None else (1.0 if quick else 3.0)
    options.connections = [int(c) for c in options.connections.split(",") if c]
    options.rows = [r for r in options.rows.split(",") if r]
    if "skopeo" in options.rows and shutil.which("skopeo") is None:
        print("skopeo is not installed: no skopeo rows (apt-get install skopeo)")
        options.rows.remove("skopeo")
    options.client = options.client or "python"
    if options.no_flush:
        options.no_flush = ctypes.util.find_library("eatmydata")
        if not options.no_flush:
            parser.error("--no-flush: libeatmydata is not installed (apt-get install eatmydata)")
    if options.client == "wrk" and not wrk_available():
        parser.error("--client wrk: wrk is not installed (apt-get install wrk)")
    return options


def main(argv=None):
    options = parse_options(argv)
    if not os.path.exists(options.registry):
        print("Distribution not found at {} (apt-get install docker-registry)".format(options.registry))
        return 2
    workdir = options.workdir or tempfile.mkdtemp(prefix="spectroreg-compare-")
    servers = []
    try:
        certificate = make_certificate(workdir)
        for tls in (False, True):
            for kind in SERVERS:
                servers.append(Server(kind, tls, workdir, options, certificate))
        for server in servers:
            server.wait_ready()
        return run(options, servers, workdir)
    finally:
        for server in servers:
            server.stop()
        if options.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


def run(options, servers, workdir):
    started = time.monotonic()
    print("spectroreg on {} ({}, {} worker process(es){}), Distribution {}; {} round(s), {} x {:.0f} MiB blobs, PATCH {:.0f} MiB, "
          "{} small blobs / {} manifests, request rows {:.0f}s with {}".format(
              options.python, python_version(options.python), options.workers,
              ", fsync off ({})".format(options.no_flush) if options.no_flush else "",
              options.registry, options.rounds, options.blobs,
              options.blob_size / MiB, options.chunk / MiB, options.small_blobs, options.manifests,
              options.duration, options.client), flush=True)
    bench = Bench(options, servers, workdir)
    needs_setup = {"pull", "requests"} & set(options.rows)
    for server in servers:
        if needs_setup:
            bench.prepare(server)
    rows = bench.rows()
    results = {}
    for round_index in range(options.rounds):
        for row in rows:
            pair = [s for s in servers if s.tls == row.transport]
            if round_index % 2:
                pair.reverse()
            for server in pair:
                measured = measure_row(row, server, round_index)
                results.setdefault((row.name, server.kind), []).extend(measured)
        print("round {} done ({:.0f}s)".format(round_index + 1, time.monotonic() - started), flush=True)
    peaks = [(server.name, server.peak_rss()) for server in servers]
    peaks += [(server.name + " (all its processes)", server.peak_rss_sum()) for server in servers]
    print()
    print(report(rows, results, peaks, options))
    print("\n{:.0f}s in all".format(time.monotonic() - started))
    return 0


def python_version(python):
    try:
        return subprocess.run([python, "-c", "import twisted, sys; print('Python', sys.version.split()[0], "
                                              "'Twisted', twisted.__version__)"],
                              capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


if __name__ == "__main__":
    sys.exit(main())
