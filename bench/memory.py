#!/usr/bin/env python3
"""
Peak memory and throughput of spectroreg and Distribution 2.8 for one big blob.

Usage (from the source tree):

    python bench/memory.py [--size 1G] [--chunk 16M] [--servers spectroreg,docker-registry]

For each server, in the same run on the same machine: start it on 127.0.0.1
with filesystem storage in a temporary directory; push a blob of SIZE bytes
in chunked PATCHes of CHUNK bytes; push another SIZE-byte blob in one
monolithic PUT; pull the first back (digest checked). The bodies are
generated as they are sent, so the client holds almost nothing. The server
process's resident memory is sampled from /proc/<pid>/status every 10 ms
(VmRSS) and its kernel-recorded peak (VmHWM) read at the end. Prints peak
RSS and throughput per phase side by side with spectroreg/Distribution
ratios, and exits 1 if spectroreg's peak RSS reaches the target (150 MiB).
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if SOURCE_ROOT not in sys.path:
    sys.path.insert(0, SOURCE_ROOT)

from tests.support.bigblob import MiB, Body, Sampler, pull, push_chunked, push_monolithic  # noqa: E402
from tests.support.registries import start_registry  # noqa: E402

UNITS = {"": 1, "K": 1024, "M": MiB, "G": 1024 * MiB}


def parse_size(text):
    text = text.strip().upper().rstrip("B").rstrip("I")
    unit = text[-1] if text and text[-1] in UNITS else ""
    return int(float(text[: len(text) - len(unit)]) * UNITS[unit])


def mib(value):
    return "n/a" if value is None else "{:.1f} MiB".format(value / MiB)


def measure(kind, size, chunk, workdir, chunked_body, monolithic_body):
    """Run the three phases against one server; return {metric: value}."""
    root = os.path.join(workdir, kind, "root")
    server = start_registry(kind, root, os.path.join(workdir, kind))
    results = {"pid": server.pid}
    sampler = Sampler(server)
    try:
        time.sleep(0.2)
        results["idle"] = server.rss()
        phases = (
            ("push, chunked PATCH", lambda: push_chunked(server, "bench/big", chunked_body, chunk)),
            ("push, monolithic PUT", lambda: push_monolithic(server, "bench/big", monolithic_body)),
            ("pull, GET", lambda: pull(server, "bench/big", chunked_body)),
        )
        for name, action in phases:
            sampler.reset()
            started = time.monotonic()
            action()
            elapsed = time.monotonic() - started
            results[name + " peak RSS"] = sampler.peak()
            results[name + " MiB/s"] = size / MiB / elapsed
        results["peak RSS (VmHWM)"] = server.peak_rss()
    finally:
        sampler.stop()
        server.kill()
        shutil.rmtree(root, ignore_errors=True)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--size", default="1G", help="blob size (1G, 256M, …)")
    parser.add_argument("--chunk", default="16M", help="PATCH chunk size")
    parser.add_argument("--servers", default="spectroreg,docker-registry")
    parser.add_argument("--target", default="150M", help="spectroreg's peak RSS must stay below")
    parser.add_argument("--workdir", default=None, help="where the data trees go (a temp dir)")
    options = parser.parse_args(argv)
    size, chunk, target = parse_size(options.size), parse_size(options.chunk), parse_size(options.target)
    kinds = [k for k in options.servers.split(",") if k]
    workdir = options.workdir or tempfile.mkdtemp(prefix="spectroreg-bench-")
    try:
        return run(options, kinds, size, chunk, target, workdir)
    finally:
        if options.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


def run(options, kinds, size, chunk, target, workdir):
    print("blob {} ({} bytes), PATCH chunks of {}, filesystem storage under {}, Python {}".format(
        options.size, size, options.chunk, workdir, sys.version.split()[0]))
    chunked_body = Body(size, "{}-chunked".format(size))
    monolithic_body = Body(size, "{}-monolithic".format(size))
    results = {}
    for kind in kinds:
        print("measuring {} …".format(kind), flush=True)
        try:
            results[kind] = measure(kind, size, chunk, workdir, chunked_body, monolithic_body)
        except Exception as e:  # report and go on with the other server
            print("  {} failed: {}".format(kind, str(e)[:2000]))
            results[kind] = {}
    metrics = ["idle"]
    for phase in ("push, chunked PATCH", "push, monolithic PUT", "pull, GET"):
        metrics += [phase + " peak RSS", phase + " MiB/s"]
    metrics.append("peak RSS (VmHWM)")
    print()
    header = "{:<30}".format("") + "".join("{:>18}".format(k) for k in kinds)
    if len(kinds) == 2:
        header += "{:>10}".format("ratio")
    print(header)
    for metric in metrics:
        values = [results[k].get(metric) for k in kinds]
        shown = [("{:.1f}".format(v) if v is not None else "n/a") if metric.endswith("MiB/s")
                 else mib(v) for v in values]
        line = "{:<30}".format(metric) + "".join("{:>18}".format(s) for s in shown)
        if len(kinds) == 2:
            line += "{:>10}".format("{:.2f}".format(values[0] / values[1])
                                    if values[0] and values[1] else "n/a")
        print(line)
    peak = results.get("spectroreg", {}).get("peak RSS (VmHWM)")
    if "spectroreg" not in kinds:
        return 0
    if peak is None:
        print("\nspectroreg: no measurement")
        return 1
    verdict = "met" if peak < target else "MISSED"
    print("\ntarget: spectroreg peak RSS < {}: {} ({})".format(mib(target), verdict, mib(peak)))
    return 0 if peak < target else 1


if __name__ == "__main__":
    sys.exit(main())
