"""
Start-up time: from spawning `python -m spectroreg serve` to the first
answered `GET /v2/`, several runs, for each Python given.

    python3 bench/startup.py [--runs 5] [PYTHON ...]

Uses etc/spectro/local.yml with REGISTRY_HTTP_ADDR pointing at a free port
and the data in a temporary folder.
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def first_answer(python, data):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    env.update(
        REGISTRY_HTTP_ADDR="127.0.0.1:%d" % port,
        REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=data,
        PYTHONPATH=ROOT,
    )
    started = time.monotonic()
    process = subprocess.Popen(
        [python, "-m", "spectroreg", "serve", os.path.join(ROOT, "etc/spectro/local.yml")],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        while time.monotonic() - started < 30:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
                    connection.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if connection.recv(100).startswith(b"HTTP/1.1 200"):
                        return time.monotonic() - started
            except OSError:
                time.sleep(0.005)
        raise RuntimeError("no answer within 30 s")
    finally:
        process.terminate()
        process.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("pythons", nargs="*", default=[sys.executable])
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        for python in options.pythons:
            times = [first_answer(python, data) for _ in range(options.runs)]
            print("{:40} median {:.3f} s  (runs: {})".format(
                python, statistics.median(times), " ".join("%.3f" % t for t in times)))


if __name__ == "__main__":
    main()
