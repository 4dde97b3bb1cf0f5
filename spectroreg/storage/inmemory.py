"""
``storage: inmemory``: a driver that keeps every file in the process's memory.

For tests and throw-away registries: contents vanish with the process. It is
real product code and passes the same driver test suite as the filesystem and
S3 drivers (``spectroreg.storage.testing``).

Directories are implied by file paths, as on S3: a directory exists while a
file exists below it. Every operation completes synchronously (the returned
Deferreds have already fired) except reads into a consumer that pauses.
"""

import bisect

from twisted.internet import defer
from zope.interface import implementer

from spectroreg.storage._producer import ChunkProducer
from spectroreg.storage.errors import (
    InvalidOffset,
    PathNotFound,
    StorageError,
)
from spectroreg.storage.interfaces import SKIP_DIR, FileInfo, IFileWriter, IStorageDriver

# Just above "/" in ASCII: every "<dir>/..." key sorts below "<dir>0".
_AFTER_SLASH = chr(ord("/") + 1)


class _File:
    __slots__ = ("data", "modified")

    def __init__(self, data, modified):
        self.data = data
        self.modified = modified


def _prefix(path):
    return "/" if path == "/" else path + "/"


def _failing(function):
    """Run C{function} now and return its result or exception as a Deferred."""

    def wrapper(*args, **kwargs):
        try:
            return defer.succeed(function(*args, **kwargs))
        except Exception:
            return defer.fail()

    wrapper.__name__ = function.__name__
    wrapper.__doc__ = function.__doc__
    return wrapper


@implementer(IStorageDriver)
class InMemoryDriver:
    """
    An L{IStorageDriver} holding files in a dict.

    @param reactor: an C{IReactorTime} whose C{seconds()} stamps modification
        times (tests pass a C{twisted.internet.task.Clock}); default: the
        global reactor.
    @param chunk_size: bytes per C{write} into a read's consumer.
    """

    name = "inmemory"

    def __init__(self, reactor=None, chunk_size=256 * 1024):
        if reactor is None:
            from twisted.internet import reactor
        self._reactor = reactor
        self._chunk_size = chunk_size
        self._files = {}
        # Sorted paths of every file, for prefix scans (list, walk, delete).
        self._paths = []

    # bookkeeping

    def _now(self):
        return self._reactor.seconds()

    def _range(self, path):
        """Index range in C{_paths} of the files below directory C{path}."""
        prefix = _prefix(path)
        low = bisect.bisect_left(self._paths, prefix)
        high = bisect.bisect_left(self._paths, prefix[:-1] + _AFTER_SLASH) if path != "/" else len(self._paths)
        return low, high

    def _is_dir(self, path):
        if path == "/":
            return True
        low, high = self._range(path)
        return low < high

    def _check_creatable(self, path):
        """A file may be created at C{path}: no parent is a file, it is no directory."""
        parent = path
        while True:
            parent = parent.rsplit("/", 1)[0]
            if not parent:
                break
            if parent in self._files:
                raise StorageError("a parent of the path is a file", path)
        if self._is_dir(path):
            raise StorageError("path is a directory", path)

    def _store(self, path, entry):
        if path not in self._files:
            self._check_creatable(path)
            bisect.insort(self._paths, path)
        self._files[path] = entry

    def _remove(self, path):
        del self._files[path]
        index = bisect.bisect_left(self._paths, path)
        del self._paths[index]

    def _file(self, path):
        entry = self._files.get(path)
        if entry is None:
            raise PathNotFound(path)
        return entry

    # IStorageDriver

    @_failing
    def get_content(self, path):
        return bytes(self._file(path).data)

    @_failing
    def put_content(self, path, content, durable=True):
        self._store(path, _File(bytearray(content), self._now()))

    def read(self, path, consumer, offset=0, length=None):
        try:
            data = self._file(path).data
            if offset < 0 or offset > len(data):
                raise InvalidOffset(path, offset)
            if length is not None and length < 0:
                raise InvalidOffset(path, offset)
        except Exception:
            return defer.fail()
        # Stored bytes never change in place (writers only append, puts and
        # truncating writers store a new buffer), so chunks can be cut from
        # the live buffer up to the end fixed now. The memoryview is released
        # at once: a held one would stop writers from appending.
        end = len(data) if length is None else min(len(data), offset + length)
        position = [offset]

        def read_chunk(size):
            start = position[0]
            position[0] = start + size
            with memoryview(data) as whole:
                return bytes(whole[start:start + size])

        producer = ChunkProducer(
            consumer, read_chunk, lambda: None, length=end - offset,
            chunk_size=self._chunk_size, path=path,
        )
        return producer.start()

    def writer(self, path, append=False, durable=True):
        try:
            if append:
                entry = self._file(path)
            else:
                entry = _File(bytearray(), self._now())
                self._store(path, entry)
        except Exception:
            return defer.fail()
        return defer.succeed(_MemoryWriter(self, path, entry))

    @_failing
    def stat(self, path):
        entry = self._files.get(path)
        if entry is not None:
            return FileInfo(path, len(entry.data), entry.modified, False)
        if path == "/" and not self._paths:
            return FileInfo(path, 0, self._now(), True)
        low, high = self._range(path)
        if low == high:
            raise PathNotFound(path)
        modified = max(self._files[p].modified for p in self._paths[low:high])
        return FileInfo(path, 0, modified, True)

    @_failing
    def list(self, path):
        return self._children(path)

    def _children(self, path):
        if path in self._files or not self._is_dir(path):
            raise PathNotFound(path)
        prefix = _prefix(path)
        low, high = self._range(path)
        children = set()
        index = low
        while index < high:
            rest = self._paths[index][len(prefix):]
            child = prefix + rest.split("/", 1)[0]
            children.add(child)
            # Skip the whole subtree of this child.
            index = bisect.bisect_left(self._paths, child + _AFTER_SLASH, index + 1, high)
        return sorted(children)

    @_failing
    def move(self, source, destination):
        entry = self._file(source)
        if source == destination:
            return
        self._store(destination, entry)
        self._remove(source)
        entry.modified = self._now()

    @_failing
    def delete(self, path):
        if path in self._files:
            self._remove(path)
            return
        if path == "/":
            self._files.clear()
            del self._paths[:]
            return
        low, high = self._range(path)
        if low == high:
            raise PathNotFound(path)
        for name in self._paths[low:high]:
            del self._files[name]
        del self._paths[low:high]

    def close(self):
        return defer.succeed(None)

    def redirect_url(self, path, method="GET"):
        return defer.succeed(None)

    def walk(self, path, visit):
        return defer.ensureDeferred(self._walk(path, visit))

    async def _walk(self, path, visit):
        for child in self._children(path):
            entry = self._files.get(child)
            if entry is not None:
                info = FileInfo(child, len(entry.data), entry.modified, False)
            else:
                try:
                    info = self._stat_dir(child)
                except PathNotFound:
                    # Deleted by an earlier visit.
                    continue
            decision = visit(info)
            if isinstance(decision, defer.Deferred) or hasattr(decision, "__await__"):
                decision = await decision
            if info.is_dir and decision is not SKIP_DIR:
                try:
                    await self._walk(child, visit)
                except PathNotFound:
                    continue

    def _stat_dir(self, path):
        low, high = self._range(path)
        if low == high:
            raise PathNotFound(path)
        modified = max(self._files[p].modified for p in self._paths[low:high])
        return FileInfo(path, 0, modified, True)


@implementer(IFileWriter)
class _MemoryWriter:
    """Appends straight into the stored file (visibility before commit is allowed)."""

    def __init__(self, driver, path, entry):
        self._driver = driver
        self._path = path
        self._entry = entry
        self._ended = None

    @property
    def size(self):
        return len(self._entry.data)

    def _check_open(self):
        if self._ended is not None:
            raise StorageError("writer already {}".format(self._ended), self._path)

    def write(self, data):
        try:
            self._check_open()
        except StorageError:
            return defer.fail()
        self._entry.data += data
        self._entry.modified = self._driver._now()
        return defer.succeed(None)

    def _publish(self, how):
        try:
            self._check_open()
            self._ended = how
            # A put_content or move meanwhile may have replaced the entry:
            # the last writer to finish wins, as on a filesystem.
            if self._driver._files.get(self._path) is not self._entry:
                self._driver._store(self._path, self._entry)
        except Exception:
            return defer.fail()
        return defer.succeed(None)

    def close(self):
        return self._publish("closed")

    def commit(self):
        return self._publish("committed")

    def cancel(self):
        try:
            self._check_open()
            self._ended = "cancelled"
            if self._driver._files.get(self._path) is self._entry:
                self._driver._remove(self._path)
        except Exception:
            return defer.fail()
        return defer.succeed(None)
