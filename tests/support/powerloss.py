"""
What a power loss would leave of the filesystem driver's writes.

L{DiskJournal} records, in order, the calls of
L{spectroreg.storage._diskio} that decide what survives a power loss
(create, mkdir, rename, fsync, fsync_dir) while the real calls go through.
L{DiskJournal.after} replays the first N of them against the model POSIX
gives, and nothing more:

- a name created in, renamed into or out of a directory is on disk once
  that directory was C{fsync}ed after the change: a flush of the directory
  keeps its entries as they were when the flush began, and counts from when
  it returned (the journal notes both: writers in other threads may change
  the directory meanwhile, and a flush one writer started may be the one
  another relies on);
- a file's bytes are on disk once the file was C{fsync}ed (the driver only
  ever writes a file before syncing it).

Names and directories the journal never saw change are taken to be as they
were before (on disk). So L{Disk.holds} answers "after a power loss at this
point, does this path exist with the content written?" for every prefix
of the journal, and a test can check an invariant at each one.
"""

import itertools
import os
import threading

from spectroreg.storage import _diskio

_ABSENT = object()


class Disk:
    """
    What a power loss after some prefix of a L{DiskJournal} may leave: a
    change to a directory is certainly on disk once the directory was
    flushed after it, and may be on disk as soon as it is made (the kernel
    writes directories back when it likes).
    """

    def __init__(self, root, existing, durable_entries, current_entries, before, synced):
        self._root = root
        self._existing = existing  # paths there when the journal started
        self._durable = durable_entries  # directory -> {name: inode or None}, as last flushed
        self._current = current_entries  # directory -> {name: inode or None}, as changed so far
        self._before = before  # (directory, name) -> what it was before the journal's first change
        self._synced = synced  # inodes whose bytes were flushed

    def _lookup(self, entries, full):
        directory, name = os.path.split(full)
        found = entries.get(directory, {})
        if name in found:
            return found[name]
        before = self._before.get((directory, name), _ABSENT)
        if before is _ABSENT:
            # Never changed: there only if it was there before.
            return ("old", full) if full in self._existing else None
        return before

    def _components(self, path):
        full = self._root + path
        while full != self._root:
            yield full
            full = os.path.dirname(full)

    def holds(self, path):
        """
        Whether C{path} (relative to the root, starting with ``/``) is
        certainly there after the power loss, every directory on the way
        too, with the bytes last written: a file the journal created must
        have been flushed.
        """
        last = None
        for full in self._components(path):
            durable = self._lookup(self._durable, full)
            current = self._lookup(self._current, full)
            if durable is None or durable != current:
                return False
            if last is None:
                last = current
        return last[0] in ("dir", "old") or last in self._synced

    def may_hold(self, path):
        """Whether C{path} may be there after the power loss (in whatever state)."""
        for full in self._components(path):
            if self._lookup(self._durable, full) is None and self._lookup(self._current, full) is None:
                return False
        return True


class DiskJournal:
    """
    Records the driver's disk calls under C{root} (patching
    L{spectroreg.storage._diskio} through C{test.patch}).

    @ivar events: (kind, path[, destination]) in the order they happened.
    """

    def __init__(self, test, root):
        self.root = os.path.abspath(root)
        self.events = []
        # What was there before (removals, such as an upload's when it is
        # published, are not recorded: a power loss may undo them anyway).
        self._existing = set()
        for directory, directories, files in os.walk(self.root):
            self._existing.update(os.path.join(directory, name) for name in directories + files)
        self._lock = threading.Lock()
        # The index of each fsync_dir event -> how many events came before it began.
        self._flush_began = {}
        real = {name: getattr(_diskio, name) for name in ("create", "mkdir", "rename", "fsync", "fsync_dir")}

        def record(*event):
            with self._lock:
                self.events.append(event)

        def create(path, flags):
            fd = real["create"](path, flags)
            record("create", os.path.abspath(path))
            return fd

        def mkdir(directory):
            real["mkdir"](directory)
            record("mkdir", os.path.abspath(directory))

        def rename(source, destination):
            real["rename"](source, destination)
            record("rename", os.path.abspath(source), os.path.abspath(destination))

        def fsync(fd):
            real["fsync"](fd)
            record("fsync", os.readlink("/proc/self/fd/{}".format(fd)))

        def fsync_dir(directory):
            with self._lock:
                began = len(self.events)
            real["fsync_dir"](directory)
            with self._lock:
                self._flush_began[len(self.events)] = began
                self.events.append(("fsync_dir", os.path.abspath(directory)))

        for name, function in (("create", create), ("mkdir", mkdir), ("rename", rename),
                               ("fsync", fsync), ("fsync_dir", fsync_dir)):
            test.patch(_diskio, name, function)

    def mark(self):
        """The number of events so far (to look at what came after)."""
        return len(self.events)

    def count(self, kind, start=0):
        return sum(1 for event in self.events[start:] if event[0] == kind)

    def _replay(self, events):
        """
        (current, before, where): the names each event changed, per
        directory; what each name was before its first change; the inode
        at each path the events made or moved.
        """
        serial = itertools.count()
        current = {}  # directory -> {name: inode or None}
        before = {}  # (directory, name) -> inode or None
        where = {}

        def change(path, inode, was):
            directory, name = os.path.split(path)
            before.setdefault((directory, name), was)
            current.setdefault(directory, {})[name] = inode

        for event in events:
            kind, path = event[0], event[1]
            if kind in ("create", "mkdir"):
                inode = ("dir" if kind == "mkdir" else "file", next(serial))
                where[path] = inode
                # A new name (a temporary file, a new directory or upload).
                change(path, inode, None)
            elif kind == "rename":
                destination = event[2]
                inode = where.pop(path, ("old", path))
                where[destination] = inode
                change(path, None, inode)
                # What it replaced is not the content written now.
                change(destination, inode, None)
            yield event, current, where
        self._before = before

    def after(self, count):
        """The L{Disk} a power loss leaves after the first C{count} events."""
        # What each name was before the journal's first change of it.
        for _ in self._replay(self.events):
            pass
        before = self._before
        events = self.events[:count]
        # Each flush keeps its directory as it was when the flush began:
        # after that many events.
        wanted = {}
        for index, event in enumerate(events):
            if event[0] == "fsync_dir":
                wanted.setdefault(self._flush_began.get(index, index), set()).add(event[1])
        seen = {(0, path): {} for path in wanted.get(0, ())}
        durable = {}
        durable_since = {}
        synced = set()
        current = {}
        for index, (event, current, where) in enumerate(self._replay(events)):
            for path in wanted.get(index + 1, ()):
                seen[(index + 1, path)] = dict(current.get(path, {}))
            kind, path = event[0], event[1]
            if kind == "fsync":
                synced.add(where.get(path, ("old", path)))
            elif kind == "fsync_dir":
                began = self._flush_began.get(index, index)
                # A flush that began later keeps a later state, whichever returned first.
                if began >= durable_since.get(path, -1):
                    durable_since[path] = began
                    durable[path] = seen[(began, path)]
        return Disk(self.root, self._existing, durable, current, before, synced)

    def each_point(self, start=0):
        """(index, L{Disk}) for a power loss after each event from C{start} on (and before any)."""
        for index in range(start, len(self.events) + 1):
            yield index, self.after(index)
