"""
``storage: filesystem``: files under ``rootdirectory``, in Distribution's layout.

A storage path maps onto the tree unchanged: ``/docker/registry/v2/blobs/...``
is ``<rootdirectory>/docker/registry/v2/blobs/...``, exactly where
Distribution's filesystem driver keeps it, so either program can serve the
other's data.

Crash safety: ``put_content`` writes a temporary file in the target's
directory, fsyncs it, renames it over the target and fsyncs the directory;
``move`` is a rename plus an fsync of the destination's directory. After a
crash a final path holds the old content or the new one, never a partial
file. Writers (uploads) append to their file directly and fsync on
``close``/``commit``; the registry publishes finished uploads with ``move``.
A put or writer asked for with ``durable=False`` skips those fsyncs for the
file and its own directory entry (directories above it are still flushed):
for what a power loss may take away (an upload's start). New directories
are flushed into their parents last, after the file and its directory.
Temporary files are named ``.spectroreg~<random>``: the ``~`` is not
allowed in storage paths, so they can never clash with a real file, and
``list``/``walk`` never show them. Stale ones (left by a crash) are removed
by the next put into the same directory, or by ``remove_stale_temp_files``;
never by a read, so reads work on a read-only tree and change nothing.

All blocking work runs in a bounded thread pool (``maxthreads``); the reactor
thread only moves bytes between the pool and consumers. A read whose consumer
is a response on a plain TCP connection is sent by the kernel instead
(``sendfile(2)``, see ``spectroreg.storage._sendfile``), from the reactor
thread for bytes in the page cache, after a read in the pool for the others.
"""

import errno
import os
import secrets
import stat as statmodule
import threading
import time

from twisted.internet import defer
from twisted.python.failure import Failure
from zope.interface import implementer

from spectroreg.storage import _diskio
from spectroreg.storage._cachedread import CachedReads
from spectroreg.storage._dirflush import DirectoryFlushes
from spectroreg.storage._nowait import NoWaitReader
from spectroreg.storage._producer import ChunkProducer
from spectroreg.storage._sendfile import SendfileProducer, sendfile_transport
from spectroreg.storage._threads import LazyThreadPool
from spectroreg.storage.base import PATH_PATTERN
from spectroreg.storage.errors import InvalidOffset, PathNotFound, StorageError
from spectroreg.storage.filewriter import FileWriter
from spectroreg.storage.interfaces import SKIP_DIR, FileInfo, IStorageDriver

TEMP_PREFIX = ".spectroreg~"
STALE_TEMP_AGE = 3600.0

_NOT_FOUND = (errno.ENOENT, errno.ENOTDIR)
_SMALL_READ = 64 * 1024


def _file_info(path, st):
    is_dir = statmodule.S_ISDIR(st.st_mode)
    return FileInfo(path, 0 if is_dir else st.st_size, float(st.st_mtime), is_dir)


def _is_visible(name):
    """Whether a directory entry is a storage path segment (temp files are not)."""
    return PATH_PATTERN.fullmatch("/" + name) is not None and name not in (".", "..")



class _NewDirectories:
    """
    The directories this process made for a durable write whose own entry
    is not flushed into their parent yet. Another writer that finds one of
    them already there (it lost the race to make it) must not take it for
    durable: it flushes the parents itself (L{_existing_dir}).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._directories = set()

    def make(self, directory, durable):
        """
        C{mkdir}; a durable one is remembered as unflushed at once (under
        the lock a loser's look takes: it cannot look in between).
        """
        with self._lock:
            _diskio.mkdir(directory)
            _flushes.changed(os.path.dirname(directory))
            if durable:
                self._directories.add(directory)

    def flushed(self, directory):
        with self._lock:
            self._directories.discard(directory)

    def __contains__(self, directory):
        with self._lock:
            return directory in self._directories


_new_directories = _NewDirectories()


def _fsync_dir(directory):
    _diskio.fsync_dir(directory)


# Every directory flush of the process goes through here, shared between
# writers (spectroreg.storage._dirflush).
_flushes = DirectoryFlushes(_fsync_dir)


def _ensure_dir(directory, durable=True, unflushed=None):
    """
    Create C{directory} and missing parents, flushing each new entry to disk
    (its parent directory C{fsync}ed); without C{durable}, all but
    C{directory}'s own entry: a power loss may take it (and what it holds)
    away, but nothing above it.

    Writes mostly go to directories that do not exist yet (a link's, a
    blob's, an upload's), so C{mkdir} is tried first: one call where a new
    directory under an existing one is the common case.

    @param unflushed: a list to add the new directories whose entries are
        to be flushed, instead of flushing them now. The caller flushes
        them after its own file and directory (see L{_flush_later}).
    @return: whether this call created C{directory} (then it holds nothing
        but what the caller puts there).
    """
    try:
        _new_directories.make(directory, durable)
    except FileExistsError:
        return _existing_dir(directory, durable, unflushed)
    except FileNotFoundError:
        parent = os.path.dirname(directory)
        if parent == directory:
            raise
        _ensure_dir(parent, True, unflushed)
        try:
            _new_directories.make(directory, durable)
        except FileExistsError:
            return _existing_dir(directory, durable, unflushed)
    if durable:
        if unflushed is None:
            _flush_entry(directory)
        else:
            unflushed.append(directory)
    return True


def _flush_entry(directory):
    """Flush C{directory}'s entry into its parent."""
    _flushes.flush(os.path.dirname(directory))
    _new_directories.flushed(directory)


def _existing_dir(directory, durable=True, unflushed=None):
    """
    False, for a directory that was there; NotADirectoryError for anything
    else. If another writer of this process made it, or a parent, for a
    durable write and has not flushed it yet, the entries are flushed here
    too (now, or through C{unflushed}): this writer's flushes must not
    return before the path to its file is on disk.
    """
    if not os.path.isdir(directory):
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", directory)
    if durable:
        pending = directory
        while pending in _new_directories:
            if unflushed is None:
                _flush_entry(pending)
            else:
                unflushed.append(pending)
            pending = os.path.dirname(pending)
    return False


def _flush_later(unflushed):
    """
    Flush the entries of the directories L{_ensure_dir} left, after the
    caller's own flushes. All must be done before the caller returns (each
    new name is durable only once its parent is flushed); after the
    caller's, they cost next to nothing on a journaling filesystem (ext4,
    XFS), whose flush of the file or its directory already committed every
    change made before, the new directories with it: one journal commit
    instead of one per directory.
    """
    for directory in unflushed:
        _flush_entry(directory)


@implementer(IStorageDriver)
class FilesystemDriver:
    """
    An L{IStorageDriver} over a directory tree.

    @param rootdirectory: the tree's root (created when first written to).
    @param maxthreads: the most threads doing disk work at once.
    @param reactor: the reactor results are delivered on (default: global).
    @param chunk_size: bytes per read handed to a consumer.
    @param stale_temp_age: seconds after which a temporary file found by a
        listing is taken to be a crash's leftover and removed.
    """

    name = "filesystem"

    def __init__(self, rootdirectory, maxthreads=100, reactor=None, chunk_size=256 * 1024,
                 stale_temp_age=STALE_TEMP_AGE):
        if reactor is None:
            from twisted.internet import reactor
        self._reactor = reactor
        self.rootdirectory = os.path.abspath(rootdirectory)
        self._pool = LazyThreadPool(maxthreads, reactor, name="spectroreg-filesystem")
        # Probed now, at startup, on the root's own filesystem; or, while the
        # root does not exist yet, by the write that creates it.
        self._nowait = NoWaitReader(self.rootdirectory)
        self._probe_nowait()
        self._chunk_size = chunk_size
        self._stale_temp_age = stale_temp_age

    def __repr__(self):
        return "FilesystemDriver({!r})".format(self.rootdirectory)

    @property
    def maxthreads(self):
        return self._pool.maxthreads

    def close(self):
        """Stop the thread pool (it also stops by itself at reactor shutdown)."""
        self._pool.stop()
        return defer.succeed(None)

    # helpers

    def _probe_nowait(self):
        self._nowait.probe(TEMP_PREFIX + "probe-" + secrets.token_hex(8))

    def _ensure_dir(self, directory, durable=True, unflushed=None):
        """L{_ensure_dir}, then the no-wait probe if the root was missing until now."""
        created = _ensure_dir(directory, durable, unflushed)
        if not self._nowait.probed:
            self._probe_nowait()
        return created

    def _full(self, path):
        return self.rootdirectory if path == "/" else self.rootdirectory + path

    @staticmethod
    def _flush_dir(directory):
        """Flush C{directory} (shared with the process's other writers: L{_flushes})."""
        _flushes.flush(directory)

    def _run(self, path, function, *args):
        """Run blocking C{function} in the pool; OS errors become storage errors."""
        d = self._pool.run(function, *args)
        d.addErrback(self._translate, path)
        return d

    @staticmethod
    def _translate(failure, path):
        error = failure.value
        if isinstance(error, StorageError):
            return failure
        if isinstance(error, OSError):
            if error.errno in _NOT_FOUND:
                return Failure(PathNotFound(path))
            return Failure(StorageError("{}: {}".format(
                errno.errorcode.get(error.errno, error.errno), error.strerror), path))
        return failure

    # IStorageDriver

    def get_content(self, path):
        # Small files the kernel has cached are read at once: the read
        # cannot wait (see spectroreg.storage._nowait); others in the pool.
        # So is a path the kernel knows is missing (a blob not pushed yet).
        try:
            content = self._nowait.read(path)
        except FileNotFoundError:
            return defer.fail(PathNotFound(path))
        if content is not None:
            return defer.succeed(content)
        d = self._pool.run_shared(("get_content", path), self._get_content, path)
        d.addErrback(self._translate, path)
        return d

    def _get_content(self, path):
        # os.open/os.read rather than open(): four syscalls instead of ten,
        # and each syscall hands the GIL back and forth with the reactor.
        fd = os.open(self._full(path), os.O_RDONLY | os.O_CLOEXEC)
        try:
            parts = []
            while True:
                try:
                    part = os.read(fd, _SMALL_READ)
                except IsADirectoryError:
                    raise PathNotFound(path)
                if not part:
                    return b"".join(parts)
                parts.append(part)
        finally:
            os.close(fd)

    def put_content(self, path, content, durable=True):
        return self._run(path, self._put_content, path, content, durable)

    def _put_content(self, path, content, durable=True):
        full = self._full(path)
        directory = os.path.dirname(full)
        unflushed = []
        created = self._ensure_dir(directory, durable, unflushed)
        temp = os.path.join(directory, TEMP_PREFIX + secrets.token_hex(8))
        fd = _diskio.create(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC)
        try:
            try:
                _diskio.write_all(fd, content)
                if durable:
                    _diskio.fsync(fd)
            finally:
                os.close(fd)
            _diskio.rename(temp, full)
            _flushes.changed(directory)
        except BaseException:
            try:
                os.unlink(temp)
            except OSError:
                pass
            raise
        if durable:
            _flushes.flush(directory)
        _flush_later(unflushed)
        if not created:
            # A directory made just now holds no crash's leftovers.
            self._sweep(directory)

    def _is_stale_temp(self, name, mtime, now):
        return name.startswith(TEMP_PREFIX) and now - mtime > self._stale_temp_age

    def _sweep(self, directory):
        """Remove stale temporary files from one directory; @return: how many."""
        removed = 0
        now = time.time()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            return 0
        for entry in entries:
            if not entry.name.startswith(TEMP_PREFIX):
                continue
            try:
                if self._is_stale_temp(entry.name, entry.stat().st_mtime, now):
                    os.unlink(entry.path)
                    removed += 1
            except OSError:
                pass
        return removed

    def remove_stale_temp_files(self):
        """
        Remove every stale temporary file (a crash's leftovers) in the tree.

        Puts already remove those beside them; this sweeps the whole tree.

        @return: Deferred firing with the number of files removed.
        """
        return self._run("/", self._sweep_tree)

    def _sweep_tree(self):
        removed = 0
        for directory, _, files in os.walk(self.rootdirectory):
            if any(name.startswith(TEMP_PREFIX) for name in files):
                removed += self._sweep(directory)
        return removed

    def read(self, path, consumer, offset=0, length=None):
        return defer.ensureDeferred(self._read(path, consumer, offset, length))

    async def _read(self, path, consumer, offset, length):
        # Opened before anything is sent: a missing file is still a clean 404.
        f, size = await self._run(path, self._open_for_read, path, offset)
        available = size - offset
        if length is not None:
            available = min(available, length)
        transport = sendfile_transport(consumer) if self._nowait.local else None
        if transport is not None:
            producer = SendfileProducer(
                consumer, transport, f.fileno(), offset, available, f.close,
                self._pool.run, self._reactor, path=path,
            )
            return await producer.start()

        if self._nowait.local:
            # Page-cached bytes read on the reactor thread (TLS downloads).
            read_chunk = CachedReads(f.fileno(), offset, offset + available,
                                     lambda *args: self._run(path, *args))
        else:
            def read_chunk(wanted):
                return self._run(path, f.read, wanted)

        producer = ChunkProducer(
            consumer, read_chunk, f.close, length=available,
            chunk_size=self._chunk_size, path=path,
        )
        return await producer.start()

    def _open_for_read(self, path, offset):
        try:
            f = open(self._full(path), "rb", buffering=0)
        except IsADirectoryError:
            raise PathNotFound(path)
        try:
            size = os.fstat(f.fileno()).st_size
            if offset > size:
                raise InvalidOffset(path, offset)
            f.seek(offset)
        except BaseException:
            f.close()
            raise
        return f, size

    def writer(self, path, append=False, durable=True):
        # Opened by the writer's first trip to the pool (see FileWriter).
        if not append:
            return defer.succeed(FileWriter(
                self, path, None, 0, True, durable,
                opener=lambda: self._open_for_write(path, False, durable)[0]))
        # The size of a file the kernel has at hand is known without a trip.
        try:
            st = self._nowait.stat(path)
        except FileNotFoundError:
            return defer.fail(PathNotFound(path))
        if st is not None and statmodule.S_ISREG(st.st_mode):
            return defer.succeed(FileWriter(
                self, path, None, st.st_size, False, durable,
                opener=lambda: self._open_for_write(path, True, durable)[0]))
        d = self._run(path, self._open_for_write, path, append, durable)
        d.addCallback(lambda opened: FileWriter(self, path, *opened, durable=durable))
        return d

    def _open_for_write(self, path, append, durable=True):
        full = self._full(path)
        if append:
            try:
                fd = os.open(full, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
            except IsADirectoryError:
                raise PathNotFound(path)
            created = False
        else:
            self._ensure_dir(os.path.dirname(full), durable)
            fd = _diskio.create(full, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC)
            _flushes.changed(os.path.dirname(full))
            created = True
        try:
            size = os.fstat(fd).st_size
        except BaseException:
            os.close(fd)
            raise
        return fd, size, created

    def stat(self, path):
        try:
            st = self._nowait.stat(path)  # see get_content
        except FileNotFoundError:
            if path == "/":
                return self._run(path, self._stat, path)
            return defer.fail(PathNotFound(path))
        if st is not None:
            return defer.succeed(_file_info(path, st))
        return self._run(path, self._stat, path)

    def _stat(self, path):
        try:
            st = os.stat(self._full(path))
        except FileNotFoundError:
            if path == "/":
                return FileInfo(path, 0, time.time(), True)
            raise
        return _file_info(path, st)

    def list(self, path):
        d = self._run(path, self._list_infos, path)
        d.addCallback(lambda infos: [info.path for info in infos])
        return d

    def _list_infos(self, path):
        """FileInfos of the visible children of C{path}, sorted by path."""
        full = self._full(path)
        prefix = "" if path == "/" else path
        infos = []
        try:
            entries = list(os.scandir(full))
        except FileNotFoundError:
            if path == "/":
                return []
            raise
        for entry in entries:
            name = entry.name
            if not _is_visible(name):
                continue
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue
            infos.append(_file_info(prefix + "/" + name, st))
        infos.sort(key=lambda info: info.path)
        return infos

    def move(self, source, destination):
        return self._run(source, self._move, source, destination)

    def _move(self, source, destination):
        full_source = self._full(source)
        full_destination = self._full(destination)
        if not os.path.lexists(full_source):
            raise PathNotFound(source)
        directory = os.path.dirname(full_destination)
        unflushed = []
        self._ensure_dir(directory, True, unflushed)
        try:
            _diskio.rename(full_source, full_destination)
        except FileNotFoundError:
            raise PathNotFound(source)
        _flushes.changed(os.path.dirname(full_source), directory)
        # Only the destination's entry is flushed: the source's removal may
        # be undone by a power loss, which leaves both names holding the
        # same bytes (a blob published and its upload still there to retry).
        _flushes.flush(directory)
        _flush_later(unflushed)

    def delete(self, path):
        return self._run(path, self._delete, path)

    def _delete(self, path):
        full = self._full(path)
        if path == "/":
            try:
                entries = list(os.scandir(full))
            except FileNotFoundError:
                return
            for entry in entries:
                self._remove(entry.path)
            return
        try:
            st = os.lstat(full)
        except (FileNotFoundError, NotADirectoryError):
            raise PathNotFound(path)
        self._remove(full, st)

    @staticmethod
    def _remove(full, st=None):
        if st is None:
            st = os.lstat(full)
        if statmodule.S_ISDIR(st.st_mode):
            _diskio.remove_tree(full)
        else:
            os.unlink(full)

    def redirect_url(self, path, method="GET"):
        return defer.succeed(None)

    def walk(self, path, visit):
        return defer.ensureDeferred(self._walk(path, visit, top=True))

    async def _walk(self, path, visit, top=False):
        try:
            infos = await self._run(path, self._list_infos, path)
        except PathNotFound:
            if top:
                raise
            # Removed meanwhile (perhaps by the visit itself).
            return
        for info in infos:
            decision = visit(info)
            if isinstance(decision, defer.Deferred) or hasattr(decision, "__await__"):
                decision = await decision
            if info.is_dir and decision is not SKIP_DIR:
                await self._walk(info.path, visit)
