#!/usr/bin/env python3
"""
S3 requests and bytes per pushed and pulled layer: spectroreg vs Distribution 2.8.

Usage (from the source tree):

    python bench/s3.py [--layer 32M] [--chunk 8M] [--big 1G] [--servers spectroreg,docker-registry]

One moto server (``tests/support/moto.py``; no signature checking, so
Distribution's presigned redirects work) and, in front of it, a counting
proxy that classifies every S3 request by operation and counts bytes each
way. Each registry runs on 127.0.0.1 with ``storage.s3`` pointing at the
proxy (``regionendpoint``; Distribution 2.8 then uses path-style
addressing), its own bucket, redirects on (Distribution's default).

Per registry, in the same run:
- push one layer as docker does: ``HEAD`` the blob, ``POST`` an upload,
  ``PATCH`` it in CHUNK-sized pieces, ``PUT ?digest=``;
- pull it: ``GET`` the blob, following the 307 to the presigned S3 URL
  (that GET goes through the proxy too and is counted);
- with ``--big``: push and pull a BIG blob (chunked PATCHes of 64 MiB) and
  report the registry process's peak RSS (``VmHWM``).

Prints S3 requests (by operation) and bytes per pushed and pulled layer
side by side, with spectroreg/Distribution ratios. The target: spectroreg
needs at most half of Distribution's requests per push. Exit status 1 if
it misses that.
"""

import argparse
import hashlib
import http.client
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse

SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if SOURCE_ROOT not in sys.path:
    sys.path.insert(0, SOURCE_ROOT)

from tests.support.moto import S3Proxy, start_moto, start_registry_s3  # noqa: E402
from tests.support.rawhttp import add_query, hash_body, path_of, request  # noqa: E402

MiB = 1024 * 1024
UNITS = {"": 1, "K": 1024, "M": MiB, "G": 1024 * MiB}
REPOSITORY = "bench/layer"


def parse_size(text):
    text = text.strip().upper().rstrip("B").rstrip("I")
    unit = text[-1] if text and text[-1] in UNITS else ""
    return int(float(text[:len(text) - len(unit)]) * UNITS[unit])


class Body:
    """SIZE pseudo-random bytes generated as they are sent; digest computed once."""

    def __init__(self, size, seed):
        self.size = size
        self.block = random.Random(seed).randbytes(MiB + 7)
        digest = hashlib.sha256()
        for piece in self.pieces(0, size):
            digest.update(piece)
        self.digest = "sha256:" + digest.hexdigest()

    def pieces(self, start, end):
        position = start
        while position < end:
            offset = position % (MiB + 7)
            piece = self.block[offset:offset + min(end - position, MiB + 7 - offset, MiB)]
            position += len(piece)
            yield piece


# servers


def start_server(kind, moto, proxy_endpoint, bucket, workdir, chunk):
    return start_registry_s3(kind, moto, bucket, workdir, endpoint=proxy_endpoint,
                             chunksize=max(chunk, 5 * MiB))


# registry client


def expect(response, statuses, what):
    if response.status not in statuses:
        raise RuntimeError("{}: HTTP {} {}".format(what, response.status, response.body[:300]))
    return response


def push(server, body, chunk):
    blob = "/v2/{}/blobs/{}".format(REPOSITORY, body.digest)
    expect(request(server, "HEAD", blob), (404,), "HEAD before push")
    location = path_of(expect(request(server, "POST", "/v2/{}/blobs/uploads/".format(
        REPOSITORY)), (202,), "POST upload").header("location"))
    for start in range(0, body.size, chunk):
        end = min(body.size, start + chunk)
        response = expect(request(server, "PATCH", location, body.pieces(start, end), {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(end - start),
            "Content-Range": "{}-{}".format(start, end - 1),
        }, timeout=600), (202,), "PATCH")
        location = path_of(response.header("location"))
    expect(request(server, "PUT", add_query(location, digest=body.digest), timeout=600),
           (201,), "PUT upload")


def fetch(url_or_server, path, timeout=600):
    """GET, following redirects; @return: (status, bytes, digest, hops)."""
    if isinstance(url_or_server, str):
        parts = urllib.parse.urlsplit(url_or_server)
        host, port, path = parts.hostname, parts.port, path_of(url_or_server)
    else:
        host, port = url_or_server.host, url_or_server.port
    hops = 0
    while True:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            if response.status in (301, 302, 303, 307, 308) and hops < 3:
                response.read()
                location = response.getheader("location")
                parts = urllib.parse.urlsplit(location)
                if parts.hostname:
                    host, port = parts.hostname, parts.port or 80
                path = path_of(location)
                hops += 1
                continue
            count, digest = hash_body(response, MiB)
            return response.status, count, digest, hops
        finally:
            connection.close()


def pull(server, body):
    status, count, digest, hops = fetch(server, "/v2/{}/blobs/{}".format(REPOSITORY, body.digest))
    if status != 200 or digest != body.digest:
        raise RuntimeError("pull: HTTP {}, {} bytes, digest {}".format(status, count, digest))
    return hops


# the reactor (for the proxy) in a thread


class ReactorThread:
    def __init__(self):
        from twisted.internet import reactor

        self.reactor = reactor
        self.thread = threading.Thread(
            target=reactor.run, kwargs={"installSignalHandlers": False}, daemon=True)
        self.thread.start()

    def call(self, function, *args):
        from twisted.internet import threads

        return threads.blockingCallFromThread(self.reactor, function, *args)

    def stop(self):
        self.reactor.callFromThread(self.reactor.stop)
        self.thread.join(10)


def measure(kind, args, moto, proxy, reactor_thread, layer, big, workdir):
    bucket = moto.create_bucket("bench-" + kind.replace("-", ""))
    server = start_server(kind, moto, proxy.endpoint, bucket, os.path.join(workdir, kind), args.chunk)
    result = {"kind": kind}
    try:
        time.sleep(0.5)
        reactor_thread.call(proxy.stats.reset)
        started = time.monotonic()
        push(server, layer, args.chunk)
        result["push_seconds"] = time.monotonic() - started
        result["push"] = reactor_thread.call(proxy.stats.snapshot)
        result["push_log"] = list(proxy.stats.log)
        reactor_thread.call(proxy.stats.reset)
        started = time.monotonic()
        result["pull_hops"] = pull(server, layer)
        result["pull_seconds"] = time.monotonic() - started
        result["pull"] = reactor_thread.call(proxy.stats.snapshot)
        if big is not None:
            baseline = server.peak_rss()
            started = time.monotonic()
            push(server, big, 64 * MiB)
            result["big_push_seconds"] = time.monotonic() - started
            started = time.monotonic()
            pull(server, big)
            result["big_pull_seconds"] = time.monotonic() - started
            result["big_peak_rss"] = server.peak_rss()
            result["baseline_rss"] = baseline
    finally:
        server.stop()
        try:
            moto.remove_bucket(bucket)
        except Exception as error:
            print("(could not remove bucket {}: {})".format(bucket, error), file=sys.stderr)
    return result


def table(results):
    kinds = [r["kind"] for r in results]
    width = 16

    def row(label, values, ratio=None):
        cells = "".join("{:>{w}}".format(v, w=width) for v in values)
        if ratio is not None:
            cells += "{:>{w}}".format(ratio, w=width)
        print("{:<34}{}".format(label, cells))

    def fmt_ratio(a, b):
        return "{:.2f}".format(a / b) if b else "-"

    both = len(results) == 2
    print()
    row("", kinds, "ratio" if both else None)
    for phase in ("push", "pull"):
        counters = [r[phase][0] for r in results]
        totals = [sum(c.values()) for c in counters]
        row("S3 requests per {}ed layer".format(phase), totals,
            fmt_ratio(totals[0], totals[1]) if both else None)
        operations = sorted(set().union(*counters))
        for operation in operations:
            row("  " + operation, [c.get(operation, 0) for c in counters])
        up = [r[phase][1] for r in results]
        down = [r[phase][2] for r in results]
        row("S3 MiB sent (to S3)", ["{:.1f}".format(v / MiB) for v in up],
            fmt_ratio(up[0], up[1]) if both else None)
        row("S3 MiB received (from S3)", ["{:.1f}".format(v / MiB) for v in down],
            fmt_ratio(down[0], down[1]) if both else None)
        row("{} seconds".format(phase), ["{:.2f}".format(r[phase + "_seconds"]) for r in results])
    if "big_peak_rss" in results[0]:
        row("big blob: peak RSS (MiB)", ["{:.0f}".format(r["big_peak_rss"] / MiB) for r in results])
        row("  RSS before it (MiB)", ["{:.0f}".format(r["baseline_rss"] / MiB) for r in results])
        row("  push seconds", ["{:.1f}".format(r["big_push_seconds"]) for r in results])
        row("  pull seconds", ["{:.1f}".format(r["big_pull_seconds"]) for r in results])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layer", default="32M", help="layer size (default 32M)")
    parser.add_argument("--chunk", default="8M", help="PATCH size (default 8M)")
    parser.add_argument("--big", default="1G", help="big blob for peak RSS; 0 to skip")
    parser.add_argument("--servers", default="spectroreg,docker-registry")
    parser.add_argument("--trace", action="store_true", help="print each push's S3 requests")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args(argv)
    args.chunk = parse_size(args.chunk)
    kinds = [k for k in args.servers.split(",") if k]
    layer = Body(parse_size(args.layer), seed=1)
    big = Body(parse_size(args.big), seed=2) if parse_size(args.big) else None
    workdir = tempfile.mkdtemp(prefix="bench-s3-")
    moto = start_moto(auth=False, workdir=workdir)
    reactor_thread = ReactorThread()
    try:
        proxy = S3Proxy(moto.host, moto.port, reactor=reactor_thread.reactor)
        reactor_thread.call(proxy.listen)
        print("moto {} behind the counting proxy {}; layer {} MiB in PATCHes of {} MiB{}".format(
            moto.endpoint, proxy.endpoint, layer.size / MiB, args.chunk / MiB,
            "; big blob {} MiB".format(big.size // MiB) if big else ""))
        results = [measure(kind, args, moto, proxy, reactor_thread, layer, big, workdir)
                   for kind in kinds]
    finally:
        reactor_thread.stop()
        moto.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.trace:
        for result in results:
            print("\n{} push, S3 requests in order:".format(result["kind"]))
            for method, target, operation in result["push_log"]:
                print("  {:<24} {} {}".format(operation, method, target[:150]))
    table(results)
    if len(results) == 2 and results[0]["kind"] == "spectroreg":
        ours = sum(results[0]["push"][0].values())
        theirs = sum(results[1]["push"][0].values())
        verdict = "met" if ours * 2 <= theirs else "MISSED"
        print("\ntarget (spectroreg <= half of Distribution's requests per push): {} "
              "({} vs {})".format(verdict, ours, theirs))
        return 0 if ours * 2 <= theirs else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
