"""
Big blobs streamed to and from a registry subprocess, and its memory sampled.

Shared by ``bench/memory.py`` (1 GiB, printed side by side with
Distribution) and ``tests.test_integration_memory`` (smaller, asserted in
CI): the bodies are generated while they are sent, so only the server can
hold them; L{Sampler} follows the server's resident memory from /proc.
"""

import hashlib
import struct
import threading
import time

from tests.support.rawhttp import add_query, download, path_of, request

MiB = 1024 * 1024
PIECE = MiB


class Body(object):
    """SIZE bytes made on the fly, unique per seed; the digest is known in advance."""

    def __init__(self, size, seed):
        self.size = size
        self.seed = seed
        self.block = hashlib.sha256(seed.encode()).digest() * (PIECE // 32)
        digest = hashlib.sha256()
        for piece in self.pieces(0, size):
            digest.update(piece)
        self.digest = "sha256:" + digest.hexdigest()

    def pieces(self, start, end):
        """Bytes [start, end) in pieces of at most one MiB."""
        offset = start
        while offset < end:
            index = offset // PIECE
            piece = struct.pack(">Q", index) + self.block[8:]
            low = offset - index * PIECE
            high = min(PIECE, end - index * PIECE)
            yield piece[low:high]
            offset = index * PIECE + high


class Sampler(object):
    """Samples a pid's VmRSS in a thread; peak() per phase, hwm() overall."""

    def __init__(self, server, interval=0.01):
        self.server = server
        self.interval = interval
        self.current_peak = 0
        self.running = True
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while self.running:
            rss = self.server.rss()
            if rss is not None and rss > self.current_peak:
                self.current_peak = rss
            time.sleep(self.interval)

    def reset(self):
        self.current_peak = self.server.rss() or 0

    def peak(self):
        rss = self.server.rss() or 0
        return max(self.current_peak, rss)

    def stop(self):
        self.running = False
        self.thread.join()


def expect(response, status, what):
    if response.status != status:
        raise RuntimeError("{}: expected {}, got {}".format(what, status, response.describe()))
    return response


def push_chunked(server, repository, body, chunk):
    response = expect(request(server, "POST", "/v2/{}/blobs/uploads/".format(repository)),
                      202, "POST upload")
    location = path_of(response.header("Location"))
    for start in range(0, body.size, chunk):
        end = min(body.size, start + chunk)
        response = expect(request(server, "PATCH", location, body.pieces(start, end), {
            "Content-Length": str(end - start),
            "Content-Range": "{}-{}".format(start, end - 1),
            "Content-Type": "application/octet-stream",
        }, timeout=600), 202, "PATCH {}-{}".format(start, end - 1))
        location = path_of(response.header("Location"))
    expect(request(server, "PUT", add_query(location, digest=body.digest), timeout=600),
           201, "closing PUT")


def push_monolithic(server, repository, body):
    response = expect(request(server, "POST", "/v2/{}/blobs/uploads/".format(repository)),
                      202, "POST upload")
    location = path_of(response.header("Location"))
    expect(request(server, "PUT", add_query(location, digest=body.digest),
                   body.pieces(0, body.size), {
                       "Content-Length": str(body.size),
                       "Content-Type": "application/octet-stream",
                   }, timeout=600), 201, "monolithic PUT")


def pull(server, repository, body):
    status, count, digest, _ = download(server, "/v2/{}/blobs/{}".format(repository, body.digest),
                                        timeout=600)
    if (status, count, digest) != (200, body.size, body.digest):
        raise RuntimeError("pull: got HTTP {} with {} bytes, {}".format(status, count, digest))
