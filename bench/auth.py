"""
Authenticated manifest GETs per second: spectroreg against Distribution 2.8.

Both registries run on 127.0.0.1 in the same run, with THE SAME htpasswd
file (bcrypt, cost 5 as ``htpasswd -B`` makes by default), filesystem
storage in temporary directories and access logs off. A small image (config
+ one layer + manifest) is pushed to each over plain HTTP, then the same
client hammers ``GET /v2/bench/app/manifests/v1`` with Basic credentials on
keep-alive connections: ``wrk`` when installed (Debian package ``wrk``),
otherwise a threaded Python client. Rounds alternate between the two
servers; the best round of each is reported, with the ratio.

    python3 bench/auth.py [--duration 10] [--connections 16] [--rounds 2]
        [--client wrk|python] [--registry /usr/bin/docker-registry] [--cost 5]
        [--tags 1] [--python /usr/bin/python3]

``--tags N`` tags the manifest N times and spreads the GETs over the tags
in turn (many clients pulling different images) instead of one hot tag.

Distribution runs bcrypt on every request; spectroreg verifies each
credential once and then answers from its cache of verified credentials.
"""

import argparse
import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import bcrypt
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import procstat  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPOSITORY = "bench/app"
TAG = "v1"
USER = "bench"
PASSWORD = "bench-password-0123"
MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def config_for(port, root, htpasswd):
    return {
        "version": "0.1",
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": root}},
        "http": {"addr": "127.0.0.1:{}".format(port), "secret": "bench-secret"},
        "auth": {"htpasswd": {"realm": "bench", "path": htpasswd}},
    }


class Server:
    def __init__(self, name, argv, port, workdir):
        self.name = name
        self.port = port
        self.log_path = os.path.join(workdir, name + ".log")
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        env["PYTHONPATH"] = REPO_ROOT
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            argv, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_ready(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit("{} exited; log:\n{}".format(self.name, open(self.log_path).read()))
            try:
                if request(self.port, "GET", "/")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise SystemExit("{} did not answer in {}s".format(self.name, timeout))

    def cpu_seconds(self):
        return procstat.cpu_seconds(self.process.pid)

    def stop(self):
        procstat.stop(self.process)
        self._log.close()


def request(port, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.getheader("Location"), response.read()
    finally:
        connection.close()


def authorization():
    return "Basic " + base64.b64encode("{}:{}".format(USER, PASSWORD).encode()).decode()


def push_blob(port, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    headers = {"Authorization": authorization()}
    status, location, body = request(port, "POST", "/v2/{}/blobs/uploads/".format(REPOSITORY), b"", headers)
    if status != 202:
        raise SystemExit("upload start: {} {!r}".format(status, body[:200]))
    location = location if location.startswith("/") else "/" + location.split("/", 3)[3]
    separator = "&" if "?" in location else "?"
    headers["Content-Type"] = "application/octet-stream"
    status, _, body = request(port, "PUT", location + separator + "digest=" + digest, data, headers)
    if status != 201:
        raise SystemExit("upload finish: {} {!r}".format(status, body[:200]))
    return digest


def push_image(port):
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}}
    ).encode()
    layer = os.urandom(2048)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": len(config),
                "digest": push_blob(port, config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": len(layer),
                    "digest": push_blob(port, layer),
                }
            ],
        }
    ).encode()
    for tag in [TAG] + extra_tags():
        status, _, body = request(
            port,
            "PUT",
            manifest_path(tag),
            manifest,
            {"Authorization": authorization(), "Content-Type": MANIFEST_TYPE},
        )
        if status != 201:
            raise SystemExit("manifest push: {} {!r}".format(status, body[:200]))
    for path in target_paths():
        status, _, body = request(port, "GET", path, None, get_headers())
        if status != 200 or body != manifest:
            raise SystemExit("manifest pull {}: {} {!r}".format(path, status, body[:200]))


TARGET = {"path": None, "tags": 1}


def manifest_path(tag=TAG):
    return "/v2/{}/manifests/{}".format(REPOSITORY, tag)


def extra_tags():
    """With --tags N > 1, the same manifest is also tagged t1 ... t(N-1)."""
    return ["t{}".format(n) for n in range(1, TARGET["tags"])]


def target_path():
    return TARGET["path"] or manifest_path()


def target_paths():
    """Every path the load spreads over, in turn."""
    if TARGET["path"]:
        return [TARGET["path"]]
    return [manifest_path()] + [manifest_path(tag) for tag in extra_tags()]


def describe_target():
    paths = target_paths()
    if len(paths) == 1:
        return paths[0]
    return "{} and {} other tags of it, in turn".format(paths[0], len(paths) - 1)


def wrk_script(directory):
    """A wrk script cycling through target_paths() (one per request)."""
    path = os.path.join(directory, "paths.lua")
    quoted = ", ".join('"{}"'.format(p) for p in target_paths())
    with open(path, "w") as handle:
        handle.write(
            "local paths = {" + quoted + "}\n"
            "local i = 0\n"
            "request = function()\n"
            "  i = i % #paths + 1\n"
            "  return wrk.format(nil, paths[i])\n"
            "end\n"
        )
    return path


def get_headers():
    return {"Authorization": authorization(), "Accept": MANIFEST_TYPE}


def run_wrk(port, duration, connections):
    argv = ["wrk", "-t", "2", "-c", str(connections), "-d", "{}s".format(int(round(duration))), "--latency"]
    for name, value in get_headers().items():
        argv += ["-H", "{}: {}".format(name, value)]
    if len(target_paths()) > 1:
        argv += ["-s", TARGET["script"]]
    argv.append("http://127.0.0.1:{}{}".format(port, target_path()))
    output = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        raise SystemExit("{} non-2xx answers; wrk said:\n{}".format(errors.group(1), output))
    latency = re.search(r"^\s*50%\s+(\S+)", output, re.MULTILINE)
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    return rate, latency.group(1) if latency else "?", requests


def run_python(port, duration, connections):
    """Keep-alive connections, one thread each; counts 200 answers."""
    stop_at = time.monotonic() + duration
    counts = [0] * connections
    failures = []

    def worker(index):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = get_headers()
        paths = target_paths()
        turn = index
        while time.monotonic() < stop_at:
            turn += 1
            connection.request("GET", paths[turn % len(paths)], headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                failures.append(response.status)
                return
            counts[index] += 1
        connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit("non-200 answers: {}".format(sorted(set(failures))))
    return sum(counts) / (time.monotonic() - started), "?", sum(counts)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per round and server")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cost", type=int, default=5, help="bcrypt cost of the htpasswd entry")
    parser.add_argument("--client", choices=("wrk", "python"), default="wrk" if shutil.which("wrk") else "python")
    parser.add_argument("--registry", default="/usr/bin/docker-registry", help="Distribution's binary")
    parser.add_argument("--path", default=None, help="what to GET (default: the pushed manifest)")
    parser.add_argument("--tags", type=int, default=1,
                        help="spread the GETs over this many tags of the manifest (default 1: one hot tag)")
    parser.add_argument("--python", default=sys.executable, help="interpreter running spectroreg")
    options = parser.parse_args(argv)
    TARGET["path"] = options.path
    TARGET["tags"] = max(1, options.tags)
    if not os.path.exists(options.registry):
        raise SystemExit("Distribution not found at {} (apt-get install docker-registry)".format(options.registry))

    workdir = tempfile.mkdtemp(prefix="spectroreg-bench-auth-")
    TARGET["script"] = wrk_script(workdir)
    htpasswd = os.path.join(workdir, "htpasswd")
    with open(htpasswd, "wb") as handle:
        handle.write(USER.encode() + b":" + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(options.cost)) + b"\n")

    servers = {}
    try:
        for name in ("spectroreg", "distribution"):
            port = free_port()
            root = os.path.join(workdir, name + "-data")
            config_path = os.path.join(workdir, name + ".yml")
            with open(config_path, "w") as handle:
                yaml.safe_dump(config_for(port, root, htpasswd), handle)
            if name == "spectroreg":
                argv = [options.python, "-m", "spectroreg", "serve", config_path]
            else:
                argv = [options.registry, "serve", config_path]
            servers[name] = Server(name, argv, port, workdir)
        for server in servers.values():
            server.wait_ready()
            push_image(server.port)

        run = run_wrk if options.client == "wrk" else run_python
        results = {name: [] for name in servers}
        for _ in range(options.rounds):
            for name, server in servers.items():
                run(server.port, 1, options.connections)  # warm-up (caches, connections)
                cpu_before = server.cpu_seconds()
                rate, latency, count = run(server.port, options.duration, options.connections)
                cpu = (server.cpu_seconds() - cpu_before) / max(1, count)
                results[name].append((rate, latency, cpu))
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    best = {name: max(rounds) for name, rounds in results.items()}
    print("authenticated GET {} (bcrypt cost {}), client {}, {} connections, {} x {:.0f}s rounds".format(
        describe_target(), options.cost, options.client, options.connections, options.rounds, options.duration))
    for name, rounds in results.items():
        print("  {:<13} {:>9.0f} req/s  server CPU {:>7.0f} us/request  (median latency {}; rounds: {})".format(
            name, best[name][0], min(r[2] for r in rounds) * 1e6, best[name][1],
            ", ".join("{:.0f}".format(r[0]) for r in rounds)))
    ratio = best["spectroreg"][0] / best["distribution"][0]
    cpu_ratio = min(r[2] for r in results["distribution"]) / min(r[2] for r in results["spectroreg"])
    print("  ratio spectroreg / distribution: {:.1f}x req/s, {:.1f}x less server CPU per request"
          " (target >= 5x)".format(ratio, cpu_ratio))
    return 0 if ratio >= 5 else 1


if __name__ == "__main__":
    sys.exit(main())
