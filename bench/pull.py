"""
Blob pulls over plain HTTP, spectroreg beside Debian's docker-registry.

    python3 bench/pull.py [--blobs 4] [--size 32M] [--clients 1,8] [--rounds 3]

Both registries run on 127.0.0.1 with filesystem storage. The same blobs are
pushed to each, then rounds alternate between the servers: in a round, each
of N clients (a ``curl`` process) GETs every blob once. Per figure: the
median throughput (MB/s of blob bytes delivered), the server's CPU (user +
system, from /proc/<pid>/stat) per GB sent, and spectroreg's ratio to
Distribution.
"""

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.support.daemon import RegistryDaemon  # noqa: E402
from tests.support.reference import start_reference  # noqa: E402

REPOSITORY = "bench/pull"
TICKS = os.sysconf("SC_CLK_TCK")


def parse_size(text):
    units = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}
    if text[-1:].upper() in units:
        return int(text[:-1]) * units[text[-1:].upper()]
    return int(text)


def cpu_seconds(pid):
    with open("/proc/{}/stat".format(pid)) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def push(base, data):
    """A monolithic upload: POST, then PUT with the body and the digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = urllib.request.Request("{}/v2/{}/blobs/uploads/".format(base, REPOSITORY), data=b"",
                                   method="POST")
    with urllib.request.urlopen(start) as response:
        location = response.headers["Location"]
    if location.startswith("/"):
        location = base + location
    separator = "&" if "?" in location else "?"
    request = urllib.request.Request(
        "{}{}digest={}".format(location, separator, digest), data=data, method="PUT",
        headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(request) as response:
        if response.status != 201:
            raise RuntimeError("push failed: {}".format(response.status))
    return digest


def pull_round(base, digests, clients):
    """Seconds for C{clients} curl processes each to GET every blob once."""
    urls = ["{}/v2/{}/blobs/{}".format(base, REPOSITORY, digest) for digest in digests]
    command = ["curl", "-sf"]
    for url in urls:
        command += ["-o", "/dev/null", url]
    started = time.monotonic()
    processes = [subprocess.Popen(command) for _ in range(clients)]
    for process in processes:
        if process.wait() != 0:
            raise RuntimeError("curl failed")
    return time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blobs", type=int, default=4)
    parser.add_argument("--size", default="32M")
    parser.add_argument("--clients", default="1,8")
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    size = parse_size(options.size)
    clients_list = [int(n) for n in options.clients.split(",")]

    workdir = tempfile.mkdtemp(prefix="spectroreg-bench-pull-")
    servers = {}
    try:
        ours_root = os.path.join(workdir, "spectroreg")
        ours = RegistryDaemon(
            {"version": "0.1", "storage": {"filesystem": {"rootdirectory": ours_root}},
             "log": {"accesslog": {"disabled": True}, "level": "warn"}},
            workdir=os.path.join(workdir, "daemon"), python=sys.executable)
        ours.start()
        servers["spectroreg"] = (ours.process.pid, "http://" + ours.netloc, ours.kill)
        theirs = start_reference(os.path.join(workdir, "distribution"),
                                 workdir=os.path.join(workdir, "reference"))
        servers["docker-registry"] = (theirs.pid, theirs.url, theirs.kill)

        blobs = [os.urandom(size) for _ in range(options.blobs)]
        digests = {name: [push(base, data) for data in blobs] for name, (_, base, _) in servers.items()}
        del blobs
        for name, (_, base, _) in servers.items():
            pull_round(base, digests[name], 1)  # page cache warm, connections tried

        results = {}
        for clients in clients_list:
            for _ in range(options.rounds):
                for name, (pid, base, _) in servers.items():
                    cpu = cpu_seconds(pid)
                    seconds = pull_round(base, digests[name], clients)
                    cpu = cpu_seconds(pid) - cpu
                    total = clients * options.blobs * size
                    results.setdefault((clients, name), []).append((total / seconds / 1e6, cpu / (total / 1e9)))

        print("python {}; {} x {} blobs, {} rounds".format(
            sys.version.split()[0], options.blobs, options.size, options.rounds))
        print("| clients | spectroreg MB/s | Distribution MB/s | ratio | server CPU per GB |")
        print("| --- | --- | --- | --- | --- |")
        for clients in clients_list:
            ours_rate = statistics.median(r for r, _ in results[(clients, "spectroreg")])
            ours_cpu = statistics.median(c for _, c in results[(clients, "spectroreg")])
            theirs_rate = statistics.median(r for r, _ in results[(clients, "docker-registry")])
            theirs_cpu = statistics.median(c for _, c in results[(clients, "docker-registry")])
            print("| {} | {:.0f} | {:.0f} | {:.2f}x | {:.2f} vs {:.2f} s |".format(
                clients, ours_rate, theirs_rate, ours_rate / theirs_rate, ours_cpu, theirs_cpu))
    finally:
        for _, _, kill in servers.values():
            try:
                kill()
            except Exception:
                pass
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
