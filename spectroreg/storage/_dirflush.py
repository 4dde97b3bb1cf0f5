"""
Directory flushes shared between the writers of one process.

A name made in a directory (a new directory, a file renamed into place) is
durable once the directory is flushed (C{fsync}) after the name was made.
Writers pushing into one repository at once all flush the same few
directories (a repository's ``_layers/sha256``, ``_manifests/revisions/sha256``,
a tag's directory, the blob store's prefixes): a flush that began after a
writer made its name covers that writer too, whoever asked for it.

L{DirectoryFlushes} keeps, per directory, when a name was last made in it
through this process (L{changed}), and the flushes of it running or done.
L{flush} returns at once when a flush that began after the last change has
completed, waits for one that began after it and is running, and otherwise
flushes. When each change and each flush started is an ordinal of one
counter, taken after the change's system call returned and before the
flush's began, "began after" is a comparison of two numbers; a change the
counter saw late only makes a flush look too early, never too late. Only
changes reported here are known: a directory with none (or one forgotten
among more than C{capacity}) is flushed when asked. A flush that failed
covers no one: its waiters flush themselves.
"""

import itertools
import threading

from spectroreg.bounded import LRU


class _Flush:
    """One flush of a directory: when it began, and whether it succeeded once done."""

    __slots__ = ("began", "done", "succeeded")

    def __init__(self, began):
        self.began = began
        self.done = threading.Event()
        self.succeeded = False


class _Directory:
    __slots__ = ("changed", "flushed", "running")

    def __init__(self):
        # Ordinals: the last change, and when the latest successful flush began.
        self.changed = 0
        self.flushed = 0
        self.running = None


class DirectoryFlushes:
    """
    See the module docstring.

    @param flush: C{flush(directory)}: the flush itself (blocking); called in
        the caller's thread.
    @param capacity: the most directories remembered.
    """

    def __init__(self, flush, capacity=4096):
        self._flush = flush
        self._lock = threading.Lock()
        self._ordinals = itertools.count(1)
        self._directories = LRU(capacity)

    def _directory(self, directory):
        state = self._directories.get(directory)
        if state is None:
            state = _Directory()
            self._directories.put(directory, state)
        return state

    def changed(self, *directories):
        """A name was just made (or replaced) in each of C{directories}."""
        with self._lock:
            ordinal = next(self._ordinals)
            for directory in directories:
                self._directory(directory).changed = ordinal

    def flush(self, directory):
        """
        Return once every name made in C{directory} before this call, and
        reported through L{changed}, is on disk (and, for a directory with
        no reported change, once a flush that began in this call is done).

        @raise OSError: the flush failed.
        """
        while True:
            with self._lock:
                state = self._directories.get(directory)
                if state is None:
                    state = self._directory(directory)
                    # Nothing known: what it holds counts as changed now.
                    state.changed = next(self._ordinals)
                if state.flushed > state.changed:
                    return
                running = state.running
                if running is None or running.began < state.changed:
                    mine = state.running = _Flush(next(self._ordinals))
                    break
            # A flush that began after the last change: it covers this call.
            running.done.wait()
            if running.succeeded:
                return
            # It failed: try again (most likely, flushing it here).
        try:
            self._flush(directory)
            mine.succeeded = True
        finally:
            with self._lock:
                if mine.succeeded and mine.began > state.flushed:
                    state.flushed = mine.began
                if state.running is mine:
                    state.running = None
            mine.done.set()
