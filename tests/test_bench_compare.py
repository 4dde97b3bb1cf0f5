"""
``bench/compare.py`` runs end to end: both registries, plain and TLS, every row
(skopeo's too).

Tiny sizes so that it takes seconds; the figures themselves are not checked
(the machine is shared), only that every row was measured on both servers,
a ratio printed, and the CPU per unit of each server and of the load client.
"""

import os
import re
import subprocess
import sys
import time

from twisted.trial import unittest

from tests.support.bench import bench_module
from tests.support.requirements import require_binary, require_external

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO_ROOT, "bench", "compare.py")

ROWS = [
    "pull, 1 client, plain",
    "pull, 8 clients, plain",
    "pull, 1 client, TLS",
    "pull, 8 clients, TLS",
    "push monolithic, plain",
    "push chunked, plain",
    "push monolithic, TLS",
    "push chunked, TLS",
    "skopeo copy to the registry, plain",
    "skopeo copy from the registry, plain",
    "skopeo copy to the registry, TLS",
    "skopeo copy from the registry, TLS",
    "many small pushes (8 clients), plain: blobs",
    "many small pushes (8 clients), plain: manifests",
    "manifest GET, 4 connections, plain",
    "blob HEAD, 4 connections, plain",
]


class QuickCompareTests(unittest.TestCase):
    def test_quick_run_measures_every_row_on_both(self):
        registry = require_binary("docker-registry")
        require_binary("skopeo")
        require_external("spectroreg and docker-registry as servers on 127.0.0.1")
        completed = subprocess.run(
            [sys.executable, SCRIPT, "--quick", "--rounds", "2", "--registry", registry, "--blob-size", "256K",
             "--blobs", "2",
             "--chunk", "100K", "--small-blobs", "16", "--manifests", "4", "--duration", "0.5",
             "--connections", "4"],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300,
        )
        output = completed.stdout.decode("utf-8", "replace")
        self.assertEqual(completed.returncode, 0, output)
        for row in ROWS:
            line = re.search(r"^\| {} \| (.*)$".format(re.escape(row)), output, re.MULTILINE)
            self.assertIsNotNone(line, "no row {!r} in:\n{}".format(row, output))
            spectroreg, distribution, ratio, cpu, client = [c.strip() for c in line.group(1).split("|")[:5]]
            self.assertRegex(spectroreg, r"^\d+ \S+", output)
            self.assertRegex(distribution, r"^\d+ \S+", output)
            # The ratio of the best rounds, and the median of each round's ratio.
            self.assertRegex(ratio, r"^\d+\.\d\dx \(\d+\.\d\dx\)$", output)
            self.assertRegex(cpu, r"^\d+(\.\d+)? vs \d+(\.\d+)? \S+", output)
            # The load client's own CPU per unit, against each server.
            self.assertRegex(client, r"^\d+(\.\d+)? vs \d+(\.\d+)? \S+", output)
            self.assertEqual(client.split()[-1], cpu.split()[-1], output)
        self.assertRegex(output, r"peak RSS \(VmHWM\): spectroreg plain \d+\.\d MiB, distribution plain \d+\.\d MiB,"
                                 r" spectroreg TLS \d+\.\d MiB, distribution TLS \d+\.\d MiB")

    def test_workers_counted_with_all_their_processes(self):
        """--workers 2: spectroreg runs two processes; CPU and memory cover both."""
        registry = require_binary("docker-registry")
        require_external("spectroreg and docker-registry as servers on 127.0.0.1")
        completed = subprocess.run(
            [sys.executable, SCRIPT, "--quick", "--rounds", "1", "--registry", registry, "--rows", "requests",
             "--duration", "0.5", "--connections", "8", "--workers", "2"],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300,
        )
        output = completed.stdout.decode("utf-8", "replace")
        self.assertEqual(completed.returncode, 0, output)
        self.assertIn("2 worker process(es)", output)
        for row in ("manifest GET, 8 connections, plain", "blob HEAD, 8 connections, plain"):
            line = re.search(r"^\| {} \| (.*)$".format(re.escape(row)), output, re.MULTILINE)
            self.assertIsNotNone(line, "no row {!r} in:\n{}".format(row, output))
        self.assertRegex(output, r"spectroreg plain \(all its processes\) \d+\.\d MiB")


class ServerEnvironmentTests(unittest.TestCase):
    def test_no_flush_preloads_eatmydata_into_spectroreg_only(self):
        compare = bench_module("compare")
        options = compare.parse_options([])
        self.assertFalse(options.no_flush)
        self.patch(compare.os, "environ", {"PATH": "/usr/bin", "LD_PRELOAD": "libother.so", "REGISTRY_X": "1"})
        for kind in ("spectroreg", "distribution"):
            env = compare.server_environment(kind, options)
            self.assertNotIn("LD_PRELOAD", env)
            self.assertNotIn("REGISTRY_X", env)
            self.assertEqual(env["PATH"], "/usr/bin")
        options.no_flush = "libeatmydata.so.1"
        self.assertEqual(compare.server_environment("spectroreg", options)["LD_PRELOAD"], "libeatmydata.so.1")
        self.assertNotIn("LD_PRELOAD", compare.server_environment("distribution", options))

    def test_no_flush_needs_the_library(self):
        compare = bench_module("compare")
        self.patch(compare.ctypes.util, "find_library", lambda name: None)
        self.patch(sys, "stderr", open(os.devnull, "w"))
        self.addCleanup(sys.stderr.close)
        with self.assertRaises(SystemExit):
            compare.parse_options(["--no-flush"])
        self.patch(compare.ctypes.util, "find_library",
                   lambda name: "libeatmydata.so.1" if name == "eatmydata" else None)
        self.assertEqual(compare.parse_options(["--no-flush"]).no_flush, "libeatmydata.so.1")


class ProcessTreeTests(unittest.TestCase):
    def test_cpu_of_a_process_and_its_children(self):
        """A child's CPU counts in its parent's tree while it runs."""
        procstat = bench_module("procstat")

        parent = subprocess.Popen(
            [sys.executable, "-c",
             "import subprocess, sys; child = subprocess.Popen([sys.executable, '-c', "
             "'import time\\nend = time.process_time() + 0.6\\nwhile time.process_time() < end: pass\\n"
             "time.sleep(30)']); sys.stdout.write(str(child.pid) + chr(10)); sys.stdout.flush(); child.wait()"],
            stdout=subprocess.PIPE)
        self.addCleanup(parent.wait)
        self.addCleanup(parent.kill)
        child = int(parent.stdout.readline())
        self.addCleanup(os.kill, child, 9)
        deadline = time.monotonic() + 20
        while procstat.cpu_seconds(child) < 0.5 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(procstat.tree(parent.pid), [parent.pid, child])
        own = procstat.cpu_seconds(parent.pid)
        self.assertGreaterEqual(procstat.tree_cpu_seconds(parent.pid), own + 0.5)
        self.assertEqual(len(procstat.tree_peak_rss(parent.pid)), 2)
