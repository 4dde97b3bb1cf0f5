"""
The daemon's memory does not grow with blob size (CI's short form of
``bench/memory.py``).

A 256 MiB blob is pushed in four 64 MiB PATCHes, another as one monolithic
256 MiB PUT, and the first pulled back, against the real daemon with
filesystem storage. Bodies are generated as they are sent. A daemon that
spooled a request or response body in memory would hold at least 64 MiB
more; the test asserts the peak stays under the issue's 150 MiB and grows
by less than 64 MiB over the idle daemon.
"""

import os

from twisted.trial import unittest

from tests.support.bigblob import MiB, Body, Sampler, pull, push_chunked, push_monolithic
from tests.support.registries import start_registry

SIZE = 256 * MiB
CHUNK = 64 * MiB
PEAK_LIMIT = 150 * MiB
GROWTH_LIMIT = 64 * MiB


class StreamingMemoryTests(unittest.TestCase):
    kind = "spectroreg"

    def test_peak_rss_does_not_follow_blob_size(self):
        work = os.path.abspath(self.mktemp())
        server = start_registry(self.kind, os.path.join(work, "root"), os.path.join(work, "server"))
        self.addCleanup(server.kill)
        chunked, monolithic = Body(SIZE, "ci-chunked"), Body(SIZE, "ci-monolithic")
        idle = server.rss()
        sampler = Sampler(server)
        try:
            push_chunked(server, "memory/big", chunked, CHUNK)
            push_monolithic(server, "memory/big", monolithic)
            pull(server, "memory/big", chunked)
            pull(server, "memory/big", monolithic)
            peak = max(sampler.peak(), server.peak_rss() or 0)
        finally:
            sampler.stop()
        report = "{}: idle {:.1f} MiB, peak {:.1f} MiB".format(self.kind, idle / MiB, peak / MiB)
        self.assertLess(peak, PEAK_LIMIT, report)
        self.assertLess(peak - idle, GROWTH_LIMIT, report)
