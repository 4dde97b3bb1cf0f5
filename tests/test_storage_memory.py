"""
Peak memory while streaming through the filesystem driver stays flat.

Run by hand for the headline figure (1 GiB):

    python -m tests.test_storage_memory 1024 [directory]

It writes N MiB through a writer in 64 KiB chunks (as a network would),
commits, reads it back through a consumer that pauses like a transport with
a 64 KiB buffer, checks the sha256 and prints the peak RSS. The test runs it
in a fresh process (a process's peak RSS only ever grows, so it cannot share
one with other tests) with ``SPECTROREG_STORAGE_MEMORY_MIB`` MiB (default 256).
"""

import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

from twisted.trial import unittest

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIMIT_MIB = 100


def peak_rss_mib():
    """
    This process's peak resident memory in MiB.

    Linux's VmHWM, not getrusage's ru_maxrss: the latter survives fork and
    exec, so a child started by a big test runner would report the runner's
    peak.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class TransportLikeConsumer:
    """Buffers like a TCP transport: pauses its producer above 64 KiB, drains each tick."""

    buffer_size = 64 * 1024

    def __init__(self, reactor):
        self._reactor = reactor
        self.hash = hashlib.sha256()
        self.size = 0
        self.buffered = []
        self.buffered_bytes = 0
        self.producer = None
        self.paused = False
        self.pauses = 0

    def registerProducer(self, producer, streaming):
        self.producer = producer

    def unregisterProducer(self):
        self.producer = None

    def write(self, data):
        self.buffered.append(data)
        self.buffered_bytes += len(data)
        if self.buffered_bytes > self.buffer_size and not self.paused:
            self.paused = True
            self.pauses += 1
            self.producer.pauseProducing()
            self._reactor.callLater(0, self._drain)

    def _drain(self):
        for data in self.buffered:
            self.hash.update(data)
            self.size += len(data)
        self.buffered = []
        self.buffered_bytes = 0
        if self.paused and self.producer is not None:
            self.paused = False
            self.producer.resumeProducing()

    def flush(self):
        self._drain()


async def stream(reactor, mebibytes, directory):
    from spectroreg.storage.base import ValidatingDriver
    from spectroreg.storage.filesystem import FilesystemDriver
    from spectroreg.storage.testing import MiB, deterministic_chunks

    driver = ValidatingDriver(FilesystemDriver(directory, maxthreads=25, reactor=reactor))
    total = mebibytes * MiB
    baseline = peak_rss_mib()
    started = time.monotonic()
    writer = await driver.writer("/docker/registry/v2/repositories/r/_uploads/u/data")
    written = hashlib.sha256()
    for chunk in deterministic_chunks(total, seed=1, sizes=(64 * 1024,)):
        written.update(chunk)
        await writer.write(chunk)
    await writer.commit()
    await driver.move(
        "/docker/registry/v2/repositories/r/_uploads/u/data",
        "/docker/registry/v2/blobs/sha256/ab/abcd/data")
    write_seconds = time.monotonic() - started
    started = time.monotonic()
    consumer = TransportLikeConsumer(reactor)
    count = await driver.read("/docker/registry/v2/blobs/sha256/ab/abcd/data", consumer)
    consumer.flush()
    read_seconds = time.monotonic() - started
    await driver.delete("/docker")
    driver.driver.close()
    return {
        "mebibytes": mebibytes,
        "baseline_peak_rss_mib": round(baseline, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "write_mib_per_s": round(mebibytes / write_seconds, 1),
        "read_mib_per_s": round(mebibytes / read_seconds, 1),
        "pauses": consumer.pauses,
        "intact": count == total == consumer.size
        and consumer.hash.hexdigest() == written.hexdigest(),
    }


def main(argv):
    from twisted.internet import defer, task

    mebibytes = int(argv[1]) if len(argv) > 1 else 1024
    directory = argv[2] if len(argv) > 2 else None

    async def run(reactor):
        if directory is None:
            with tempfile.TemporaryDirectory(prefix="spectroreg-memory-") as tmp:
                result = await stream(reactor, mebibytes, tmp)
        else:
            result = await stream(reactor, mebibytes, directory)
        print(json.dumps(result))

    task.react(lambda reactor: defer.ensureDeferred(run(reactor)))


class MemoryTests(unittest.TestCase):
    timeout = 600

    def test_peak_memory_flat(self):
        """Writing and reading N MiB keeps the process under LIMIT_MIB MiB of RSS."""
        mebibytes = int(os.environ.get("SPECTROREG_STORAGE_MEMORY_MIB", "256"))
        output = subprocess.run(
            [sys.executable, "-m", "tests.test_storage_memory", str(mebibytes),
             os.path.abspath(self.mktemp())],
            cwd=PROJECT, check=True, stdout=subprocess.PIPE, timeout=540,
        ).stdout
        result = json.loads(output.decode().strip().splitlines()[-1])
        self.assertTrue(result["intact"], result)
        self.assertGreater(result["pauses"], 0, result)
        self.assertLess(result["peak_rss_mib"], LIMIT_MIB, result)


if __name__ == "__main__":
    main(sys.argv)
