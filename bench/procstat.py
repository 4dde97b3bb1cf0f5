"""
What the benchmarks read of a server process, and how they stop one:
CPU seconds and peak memory from /proc (of one process, or of a process
and the processes it started, as spectroreg's ``http.workers``), SIGTERM
then SIGKILL.
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


def _stat(pid):
    with open("/proc/{}/stat".format(pid)) as handle:
        return handle.read().rsplit(")", 1)[1].split()


def alive(pid):
    """Whether process C{pid} exists and is not a zombie."""
    try:
        return _stat(pid)[0] != "Z"
    except OSError:
        return False


def children(pid):
    """The live processes whose parent is C{pid}, in pid order."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = _stat(entry)
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry))
    return sorted(found)


def tree(pid):
    """C{pid} and every live process below it."""
    result = [pid]
    for child in children(pid):
        result.extend(tree(child))
    return result


def tree_cpu_seconds(pid):
    """
    CPU seconds of C{pid} and every process below it: each live one's own,
    plus what its ended (reaped) children used.
    """
    total = 0.0
    for member in tree(pid):
        try:
            fields = _stat(member)
        except OSError:
            continue
        total += sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICKS
    return total


def tree_peak_rss(pid):
    """The peak resident memory of each process of C{pid}'s tree: [bytes], C{pid}'s first."""
    peaks = []
    for member in tree(pid):
        try:
            peak = peak_rss(member)
        except OSError:
            continue
        if peak is not None:
            peaks.append(peak)
    return peaks


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
