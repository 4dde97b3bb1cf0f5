"""
What the benchmarks read of a server process, and how they stop one:
CPU seconds and peak memory from /proc, SIGTERM then SIGKILL.
"""

import os
import signal
import subprocess

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User + system CPU seconds used so far by process C{pid} (all its threads)."""
    with open("/proc/{}/stat".format(pid)) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def peak_rss(pid):
    """Peak resident memory (VmHWM) of process C{pid} in bytes, or None."""
    with open("/proc/{}/status".format(pid)) as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


def stop(process, grace=10):
    """SIGTERM, then SIGKILL after C{grace} seconds; waits for the end."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
