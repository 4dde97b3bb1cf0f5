"""
Blocking disk calls of the filesystem driver, run in its thread pool:
gathered writes, early writeback, directory removal, and every call that
decides what survives a power loss (L{create}, L{mkdir}, L{rename},
L{fsync}, L{fsync_dir}); the driver makes those through here only, so a test
can record their order.
"""

import os

_IOV_MAX = 1024


def write_all(fd, data):
    """Write C{data}: bytes, or a list of bytes written in order with one
    C{writev} per up to L{_IOV_MAX} of them (no copy to join them first)."""
    if isinstance(data, list):
        for start in range(0, len(data), _IOV_MAX):
            writev_all(fd, data[start:start + _IOV_MAX])
        return
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def writev_all(fd, pieces):
    written = os.writev(fd, pieces)
    total = sum(len(piece) for piece in pieces)
    if written == total:
        return
    # A short write (a signal, a full disk about to fail): finish piece by piece.
    for piece in pieces:
        if written >= len(piece):
            written -= len(piece)
            continue
        write_all(fd, memoryview(piece)[written:])
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


def start_writeback(fd):
    """Start writing C{fd}'s dirty pages to disk, without waiting (no durability: C{fsync} does that)."""
    if _sync_file_range is not None:
        # Offset 0, length 0: the whole file; pages already being written are skipped.
        _sync_file_range(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)


def fsync(fd):
    """Flush an open file's bytes (and size) to disk."""
    os.fsync(fd)


def fsync_dir(directory):
    """Flush a directory's entries to disk: names created, renamed into or out of it."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create(path, flags):
    """Open C{path} with C{flags} (including C{O_CREAT}), mode 0666 less the umask, as Distribution."""
    return os.open(path, flags, 0o666)


def rename(source, destination):
    """Rename, replacing C{destination} atomically."""
    os.replace(source, destination)


def remove_tree(directory):
    """
    Remove C{directory} and everything below it, never following a
    symlink (one is removed, not what it points to). What
    C{shutil.rmtree} does, in about half the system calls and a fraction
    of the Python: every entry is reached through its directory's open
    descriptor (C{O_NOFOLLOW}), and the kind of each comes from the
    listing itself.
    """
    fd = os.open(directory, _DIRECTORY_FLAGS)
    try:
        _empty(fd)
    finally:
        os.close(fd)
    os.rmdir(directory)


_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _empty(fd):
    """Remove everything in the directory open as C{fd}."""
    with os.scandir(fd) as entries:
        names = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
    for name, is_dir in names:
        if is_dir:
            try:
                child = os.open(name, _DIRECTORY_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                continue
            try:
                _empty(child)
            finally:
                os.close(child)
            os.rmdir(name, dir_fd=fd)
        else:
            try:
                os.unlink(name, dir_fd=fd)
            except FileNotFoundError:
                pass


def mkdir(directory):
    """Create one directory (mode 0777 less the umask, as Distribution)."""
    os.mkdir(directory, 0o777)

