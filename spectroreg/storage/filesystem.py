"""
``storage: filesystem``: files under ``rootdirectory``, in Distribution's layout.

A storage path maps onto the tree unchanged: ``/docker/registry/v2/blobs/...``
is ``<rootdirectory>/docker/registry/v2/blobs/...``, exactly where
Distribution's filesystem driver keeps it, so either program can serve the
other's data.

Crash safety: ``put_content`` writes a temporary file in the target's
directory, fsyncs it, renames it over the target and fsyncs the directory;
``move`` is a rename plus directory fsync. After a crash a final path holds
the old content or the new one, never a partial file. Writers (uploads)
append to their file directly and fsync on ``close``/``commit``; the registry
publishes finished uploads with ``move``. Temporary files are named
``.spectroreg~<random>``: the ``~`` is not allowed in storage paths, so they
can never clash with a real file, and ``list``/``walk`` never show them.
Stale ones (left by a crash) are removed by the next put into the same
directory, or by ``remove_stale_temp_files``; never by a read, so reads
work on a read-only tree and change nothing.

All blocking work runs in a bounded thread pool (``maxthreads``); the reactor
thread only moves bytes between the pool and consumers. A read whose consumer
is a response on a plain TCP connection is sent by the kernel instead
(``sendfile(2)``, see ``spectroreg.storage._sendfile``), from the reactor
thread for bytes in the page cache, after a read in the pool for the others.
"""

import collections
import errno
import os
import secrets
import shutil
import stat as statmodule
import time

from twisted.internet import defer
from twisted.python.failure import Failure
from zope.interface import implementer

from spectroreg.storage._cachedread import CachedReads
from spectroreg.storage._nowait import NoWaitReader
from spectroreg.storage._producer import ChunkProducer
from spectroreg.storage._sendfile import SendfileProducer, sendfile_transport
from spectroreg.storage._threads import LazyThreadPool
from spectroreg.storage.base import PATH_PATTERN
from spectroreg.storage.errors import InvalidOffset, PathNotFound, StorageError
from spectroreg.storage.interfaces import SKIP_DIR, FileInfo, IHashingWriter, IStorageDriver

TEMP_PREFIX = ".spectroreg~"
STALE_TEMP_AGE = 3600.0

_NOT_FOUND = (errno.ENOENT, errno.ENOTDIR)
_SMALL_READ = 64 * 1024
_IOV_MAX = 1024


def _file_info(path, st):
    is_dir = statmodule.S_ISDIR(st.st_mode)
    return FileInfo(path, 0 if is_dir else st.st_size, float(st.st_mtime), is_dir)


def _is_visible(name):
    """Whether a directory entry is a storage path segment (temp files are not)."""
    return PATH_PATTERN.fullmatch("/" + name) is not None and name not in (".", "..")


def _fsync_dir(directory):
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _ensure_dir(directory):
    """Create C{directory} and missing parents, making each new entry durable."""
    try:
        mode = os.stat(directory).st_mode
    except FileNotFoundError:
        pass
    else:
        if not statmodule.S_ISDIR(mode):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", directory)
        return
    parent = os.path.dirname(directory)
    if parent != directory:
        _ensure_dir(parent)
    try:
        os.mkdir(directory, 0o777)
    except FileExistsError:
        if not os.path.isdir(directory):
            raise
        return
    _fsync_dir(parent)


def _write_all(fd, data):
    """Write C{data}: bytes, or a list of bytes written in order with one
    C{writev} per up to L{_IOV_MAX} of them (no copy to join them first)."""
    if isinstance(data, list):
        for start in range(0, len(data), _IOV_MAX):
            _writev_all(fd, data[start:start + _IOV_MAX])
        return
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _writev_all(fd, pieces):
    written = os.writev(fd, pieces)
    total = sum(len(piece) for piece in pieces)
    if written == total:
        return
    # A short write (a signal, a full disk about to fail): finish piece by piece.
    for piece in pieces:
        if written >= len(piece):
            written -= len(piece)
            continue
        _write_all(fd, memoryview(piece)[written:])
        written = 0


def _start_writeback_function():
    """
    Linux's C{sync_file_range}, through ctypes, or None.

    Started after each write, the kernel's writeback runs while more of the
    upload arrives, so the C{fsync} that ends a writer waits for little
    more than the last write instead of the whole file.
    """
    try:
        import ctypes

        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (ImportError, OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    function.restype = ctypes.c_int
    return function


_sync_file_range = _start_writeback_function()
_SYNC_FILE_RANGE_WRITE = 2


def _start_writeback(fd):
    """Start writing C{fd}'s dirty pages to disk, without waiting (no durability: C{fsync} does that)."""
    if _sync_file_range is not None:
        # Offset 0, length 0: the whole file; pages already being written are skipped.
        _sync_file_range(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)


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

    def _ensure_dir(self, directory):
        """L{_ensure_dir}, then the no-wait probe if the root was missing until now."""
        _ensure_dir(directory)
        if not self._nowait.probed:
            self._probe_nowait()

    def _full(self, path):
        return self.rootdirectory if path == "/" else self.rootdirectory + path

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
        content = self._nowait.read(path)
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

    def put_content(self, path, content):
        return self._run(path, self._put_content, path, content)

    def _put_content(self, path, content):
        full = self._full(path)
        directory = os.path.dirname(full)
        self._ensure_dir(directory)
        temp = os.path.join(directory, TEMP_PREFIX + secrets.token_hex(8))
        # 0o666 and the kernel applies the umask: the same modes as files
        # Distribution writes.
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:
            try:
                _write_all(fd, content)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, full)
        except BaseException:
            try:
                os.unlink(temp)
            except OSError:
                pass
            raise
        _fsync_dir(directory)
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

    def writer(self, path, append=False):
        d = self._run(path, self._open_for_write, path, append)
        d.addCallback(lambda opened: _FileWriter(self, path, *opened))
        return d

    def _open_for_write(self, path, append):
        full = self._full(path)
        if append:
            try:
                fd = os.open(full, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
            except IsADirectoryError:
                raise PathNotFound(path)
            created = False
        else:
            self._ensure_dir(os.path.dirname(full))
            fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
            created = True
        try:
            size = os.fstat(fd).st_size
        except BaseException:
            os.close(fd)
            raise
        return fd, size, created

    def stat(self, path):
        st = self._nowait.stat(path)  # see get_content
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
        self._ensure_dir(directory)
        try:
            os.replace(full_source, full_destination)
        except FileNotFoundError:
            raise PathNotFound(source)
        _fsync_dir(directory)
        source_directory = os.path.dirname(full_source)
        if source_directory != directory:
            _fsync_dir(source_directory)

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
            shutil.rmtree(full)
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


@implementer(IHashingWriter)
class _FileWriter:
    """
    Appends to an open file descriptor from the pool, one write at a time.

    Writes are gathered up to C{flush_size} bytes before going to a thread;
    C{write()}'s Deferred fires at once while less than C{buffer_limit}
    bytes wait, and otherwise when the disk has caught up. A hasher given
    to L{hash_with} is updated in the same thread, just before each write:
    the reactor thread only moves bytes, and hashing runs beside it.
    """

    # A trip to the pool per MiB; up to 4 MiB wait meanwhile, so that the
    # reactor rarely has to stop reading the client while the disk catches up.
    flush_size = 1024 * 1024
    buffer_limit = 4 * 1024 * 1024

    def __init__(self, driver, path, fd, size, created):
        self._driver = driver
        self._path = path
        self._fd = fd
        self.size = size
        self._created = created
        self._buffer = collections.deque()
        self._buffered = 0
        self._inflight = False
        self._failure = None
        self._waiters = []
        self._idle_waiters = []
        self._ended = None
        self._hasher = None
        self._accepted = False

    def _run(self, function, *args):
        return self._driver._run(self._path, function, *args)

    def hash_with(self, hasher):
        if self._accepted or self._ended is not None:
            # Bytes already taken were not hashed here.
            return False
        self._hasher = hasher
        return True

    def _write_out(self, pieces):
        if self._hasher is not None:
            for piece in pieces:
                self._hasher.update(piece)
        _write_all(self._fd, pieces)
        _start_writeback(self._fd)

    def _check(self):
        if self._ended is not None:
            raise StorageError("writer already {}".format(self._ended), self._path)
        if self._failure is not None:
            self._failure.raiseException()

    def write(self, data):
        try:
            self._check()
        except Exception:
            return defer.fail()
        if not data:
            return defer.succeed(None)
        self._accepted = True
        self._buffer.append(data)
        self._buffered += len(data)
        self.size += len(data)
        self._flush()
        if self._buffered < self.buffer_limit:
            return defer.succeed(None)
        waiter = defer.Deferred()
        self._waiters.append(waiter)
        return waiter

    def _flush(self, force=False):
        if self._inflight or not self._buffer or self._failure is not None:
            return
        if not force and self._buffered < self.flush_size:
            return
        # At most flush_size bytes per trip to the pool (at least one piece),
        # handed over as they came: writev needs no joined copy.
        pieces = []
        taken = 0
        while self._buffer and (not pieces or taken + len(self._buffer[0]) <= self.flush_size):
            piece = self._buffer.popleft()
            pieces.append(piece)
            taken += len(piece)
        self._buffered -= taken
        self._inflight = True
        d = self._run(self._write_out, pieces)
        d.addCallbacks(self._flushed, self._flush_failed)

    def _flushed(self, _):
        self._inflight = False
        self._flush()
        if self._buffered < self.buffer_limit:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                waiter.callback(None)
        self._wake_idle()

    def _flush_failed(self, failure):
        self._inflight = False
        self._failure = failure
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.errback(failure)
        self._wake_idle()

    def _wake_idle(self):
        if not self._inflight:
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                waiter.callback(None)

    async def _drain(self):
        """Wait until everything buffered is written (or a write failed)."""
        while self._failure is None and (self._inflight or self._buffer):
            if not self._inflight:
                self._flush(force=True)
            if self._inflight:
                waiter = defer.Deferred()
                self._idle_waiters.append(waiter)
                await waiter
        if self._failure is not None:
            self._failure.raiseException()

    def _finish(self, how):
        if self._ended is not None:
            return defer.fail(StorageError("writer already {}".format(self._ended), self._path))
        self._ended = how
        # After a failed write this still releases the descriptor, then fails.
        return defer.ensureDeferred(self._persist())

    async def _persist(self):
        # What is still buffered (less than a flush) goes out in the same
        # trip to the pool as the fsync: a small upload costs one trip.
        try:
            while self._inflight:
                waiter = defer.Deferred()
                self._idle_waiters.append(waiter)
                await waiter
            if self._failure is not None:
                self._failure.raiseException()
        except BaseException:
            await self._run(os.close, self._fd)
            raise
        pieces = list(self._buffer)
        self._buffer.clear()
        self._buffered = 0
        await self._run(self._sync_and_close, self._fd, self._created, pieces)

    def _sync_and_close(self, fd, created, pieces=()):
        try:
            if pieces:
                if self._hasher is not None:
                    for piece in pieces:
                        self._hasher.update(piece)
                _write_all(fd, pieces)
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            _fsync_dir(os.path.dirname(self._driver._full(self._path)))

    def close(self):
        return self._finish("closed")

    def commit(self):
        return self._finish("committed")

    def cancel(self):
        # A failed write does not prevent cancelling: it is the way out.
        if self._ended is not None:
            return defer.fail(StorageError("writer already {}".format(self._ended), self._path))
        self._ended = "cancelled"
        return defer.ensureDeferred(self._cancel())

    async def _cancel(self):
        try:
            await self._drain()
        except Exception:
            pass
        await self._run(self._close_and_unlink, self._fd)

    def _close_and_unlink(self, fd):
        os.close(fd)
        try:
            os.unlink(self._driver._full(self._path))
        except FileNotFoundError:
            pass
