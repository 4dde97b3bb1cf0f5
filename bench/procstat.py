"""
What the benchmarks read of a server process, and how they stop one:
CPU seconds (and of them, the kernel's), context switches and peak memory
from /proc (of one process, or of a process and the processes it started,
as spectroreg's ``http.workers``), SIGTERM then SIGKILL.
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


# Fields of /proc/<pid>/stat after the name: utime, stime, cutime, cstime.
_UTIME, _STIME, _CUTIME, _CSTIME = 11, 12, 13, 14


def _tree_ticks(pid, fields_wanted):
    """The sum of C{fields_wanted} of /proc/<pid>/stat over C{pid}'s tree, in seconds."""
    total = 0.0
    for member in tree(pid):
        try:
            fields = _stat(member)
        except OSError:
            continue
        total += sum(int(fields[i]) for i in fields_wanted) / TICKS
    return total


def tree_cpu_seconds(pid):
    """
    CPU seconds of C{pid} and every process below it: each live one's own,
    plus what its ended (reaped) children used.
    """
    return _tree_ticks(pid, (_UTIME, _STIME, _CUTIME, _CSTIME))


def tree_system_seconds(pid):
    """
    Of L{tree_cpu_seconds}, the seconds spent in the kernel (system calls,
    page faults, waking and switching threads).
    """
    return _tree_ticks(pid, (_STIME, _CSTIME))


def context_switches(pid):
    """
    Context switches of process C{pid}'s live threads, voluntary (a thread
    waited: for I/O, a lock, a wake-up) and involuntary (preempted).
    """
    total = 0
    try:
        threads = os.listdir("/proc/{}/task".format(pid))
    except OSError:
        return 0
    for thread in threads:
        try:
            with open("/proc/{}/task/{}/status".format(pid, thread)) as handle:
                for line in handle:
                    if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


def tree_context_switches(pid):
    """L{context_switches} of C{pid} and every live process below it."""
    return sum(context_switches(member) for member in tree(pid))


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
