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
             "--connections", "4", "--kernel"],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300,
        )
        output = completed.stdout.decode("utf-8", "replace")
        self.assertEqual(completed.returncode, 0, output)
        self.assertIn("in the kernel, least (spectroreg vs Distribution) | server context switches", output)
        for row in ROWS:
            line = re.search(r"^\| {} \| (.*)$".format(re.escape(row)), output, re.MULTILINE)
            self.assertIsNotNone(line, "no row {!r} in:\n{}".format(row, output))
            cells = [c.strip() for c in line.group(1).split("|")]
            self.assertEqual(cells[-1], "", output)
            self.assertEqual(len(cells), 8, output)
            spectroreg, distribution, ratio, cpu, client, system, switches = cells[:7]
            self.assertRegex(spectroreg, r"^\d+ \S+", output)
            self.assertRegex(distribution, r"^\d+ \S+", output)
            # The ratio of the best rounds, and the median of each round's ratio.
            self.assertRegex(ratio, r"^\d+\.\d\dx \(\d+\.\d\dx\)$", output)
            self.assertRegex(cpu, r"^\d+(\.\d+)? vs \d+(\.\d+)? \S+", output)
            # The load client's own CPU per unit, against each server.
            self.assertRegex(client, r"^\d+(\.\d+)? vs \d+(\.\d+)? \S+", output)
            self.assertEqual(client.split()[-1], cpu.split()[-1], output)
            # --kernel: the server's CPU in the kernel, in the same unit and
            # never more than all of it; its context switches per unit.
            self.assertRegex(system, r"^\d+(\.\d+)? vs \d+(\.\d+)? \S+", output)
            self.assertEqual(system.split()[-1], cpu.split()[-1], output)
            for part, whole in ((system.split()[0], cpu.split()[0]), (system.split()[2], cpu.split()[2])):
                self.assertLessEqual(float(part), float(whole), output)
            self.assertRegex(switches, r"^\d+ vs \d+ (per GB|each|per req)$", output)
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
    def python(self, code):
        """Start C{python -c code} with its output on a pipe; killed at the end of the test."""
        process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
        self.addCleanup(process.wait)
        self.addCleanup(process.kill)
        return process

    def test_cpu_of_a_process_and_its_children(self):
        """A child's CPU counts in its parent's tree while it runs."""
        procstat = bench_module("procstat")
        parent = self.python(
            "import subprocess, sys; child = subprocess.Popen([sys.executable, '-c', "
            "'import time\\nend = time.process_time() + 0.6\\nwhile time.process_time() < end: pass\\n"
            "time.sleep(30)']); sys.stdout.write(str(child.pid) + chr(10)); sys.stdout.flush(); child.wait()")
        child = int(parent.stdout.readline())
        self.addCleanup(os.kill, child, 9)
        deadline = time.monotonic() + 20
        while procstat.cpu_seconds(child) < 0.5 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(procstat.tree(parent.pid), [parent.pid, child])
        own = procstat.cpu_seconds(parent.pid)
        self.assertGreaterEqual(procstat.tree_cpu_seconds(parent.pid), own + 0.5)
        self.assertEqual(len(procstat.tree_peak_rss(parent.pid)), 2)

    def test_kernel_time_and_context_switches(self):
        """
        A process that naps 300 times, then makes system calls for 0.3 s of
        CPU: its naps are counted as context switches, and its kernel time is
        some of its CPU time.
        """
        procstat = bench_module("procstat")
        process = self.python(
            "import os, sys, time\nsys.stdout.write('go' + chr(10)); sys.stdout.flush()\n"
            "for _ in range(300): time.sleep(0.001)\n"
            "end = time.process_time() + 0.3\nwhile time.process_time() < end: os.getppid()\n"
            "sys.stdout.write('done' + chr(10)); sys.stdout.flush(); time.sleep(30)")
        self.assertEqual(process.stdout.readline(), b"go\n")
        before = procstat.tree_context_switches(process.pid)
        self.assertEqual(process.stdout.readline(), b"done\n")
        after = procstat.tree_context_switches(process.pid)
        # Nearly every nap is a voluntary switch (a timer can be due already).
        self.assertGreaterEqual(after - before, 200)
        system = procstat.tree_system_seconds(process.pid)
        self.assertGreater(system, 0)
        self.assertLessEqual(system, procstat.tree_cpu_seconds(process.pid))
        self.assertEqual(procstat.context_switches(2 ** 22 + 1), 0)
