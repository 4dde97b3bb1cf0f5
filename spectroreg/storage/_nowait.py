"""
Reading small files on the reactor thread when, and only when, it cannot wait.

A registry reads the same few small files all the time: a tag's ``link``, a
manifest by digest, a layer link. Handing each read to a thread costs far
more than the read (two GIL hand-offs per syscall on a busy reactor). Linux
can say up front whether a read would wait:

- ``openat2(2)`` with ``RESOLVE_CACHED`` opens a file only if every path
  component is in the dentry cache, and fails with ``EAGAIN`` instead of
  doing any lookup I/O;
- ``preadv2(2)`` with ``RWF_NOWAIT`` reads only data already in the page
  cache, and fails with ``EAGAIN`` instead of reading the disk.

Whether a filesystem offers both is not a matter of its name: overlayfs
opens with ``RESOLVE_CACHED`` but refuses ``RWF_NOWAIT`` (``EOPNOTSUPP``),
and tmpfs accepts or refuses it depending on the kernel. So the reader is
off until L{NoWaitReader.probe} has tried both calls on a file it creates
in the tree's root itself, on the tree's own filesystem, and they worked.

L{NoWaitReader.read} tries both and returns None whenever the kernel would
have had to wait (L{NoWaitReader.stat} likewise, with an ``O_PATH`` handle
and ``fstat``) (or anything is unusual); the caller then reads in its
thread pool as before. A path the kernel's cache knows to be missing (a
negative dentry: the blob a client asks about before pushing it, an upload
about to be published) raises ``FileNotFoundError`` at once. Beyond the
probe, the reader stays off for a tree on a network filesystem (another machine's writes reach the page cache
only after a revalidation that ``RESOLVE_CACHED`` skips), for a tree with
another filesystem mounted beneath it (the probe tested only the root's),
for a root reached through a symlink, and it switches itself off at the
first sign the calls are unavailable after all (seccomp filter).
"""

import ctypes
import errno
import os
import stat as statmodule
import sys

# Trees other machines write to: off whatever the probe says.
NETWORK_FILESYSTEMS = frozenset(
    ["nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "9p", "afs", "glusterfs", "lustre",
     "gpfs", "ocfs2", "gfs2", "virtiofs", "fuse"]
)

# Larger files (big manifests) are read in a thread: a copy of megabytes is
# worth a hop.
MAX_SIZE = 64 * 1024

_SYS_OPENAT2 = 437  # the same number on every Linux architecture
_AT_FDCWD = -100
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_CACHED = 0x20
_RESOLVE = _RESOLVE_CACHED | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS
_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY
# For stat: a handle on the inode only, no open() of the file itself.
_PATH_FLAGS = getattr(os, "O_PATH", 0) | os.O_CLOEXEC

# Answers from the kernel's cache that the path does not exist.
_MISSING = frozenset([errno.ENOENT, errno.ENOTDIR])

# The kernel or a sandbox does not offer the calls: stop trying.
_UNAVAILABLE = frozenset([errno.ENOSYS, errno.EINVAL, errno.EPERM, errno.EOPNOTSUPP, errno.E2BIG])

# What the probe writes and reads back.
_PROBE_DATA = b"spectroreg no-wait probe\n"


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def _load_openat2():
    """
    C{openat2(path: bytes, for_stat=False) -> fd}, raising OSError; None
    where it cannot exist. C{for_stat}: an C{O_PATH} descriptor, enough for
    fstat() and opening nothing.
    """
    if (
        not sys.platform.startswith("linux")
        or not hasattr(os, "preadv")
        or not hasattr(os, "RWF_NOWAIT")
        or not hasattr(os, "O_PATH")
    ):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        syscall = libc.syscall
    except (OSError, AttributeError):
        return None
    syscall.restype = ctypes.c_long
    hows = {False: _OpenHow(_OPEN_FLAGS, 0, _RESOLVE), True: _OpenHow(_PATH_FLAGS, 0, _RESOLVE)}
    refs = {key: ctypes.byref(how) for key, how in hows.items()}
    size = ctypes.sizeof(_OpenHow)

    def openat2(path, for_stat=False):
        fd = syscall(_SYS_OPENAT2, _AT_FDCWD, path, refs[for_stat], size)
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
        return fd

    return openat2


def _unescape(field):
    # mountinfo escapes space, tab, newline and backslash as \\ooo.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit() and i + 3 < len(field):
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text):
    """C{/proc/self/mountinfo} as a list of (mount point, filesystem type)."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right.split():
            continue
        mounts.append((_unescape(fields[4]), right.split()[0]))
    return mounts


def _beneath(path, directory):
    return path == directory or directory == "/" or path.startswith(directory.rstrip("/") + "/")


def _network(fstype):
    return fstype is None or fstype in NETWORK_FILESYSTEMS or fstype.split(".")[0] in NETWORK_FILESYSTEMS


def one_filesystem(root, mounts):
    """
    True when C{root} (an absolute path without symlinks) lies on one
    filesystem of this machine: the last mount over it is not a network
    filesystem (L{NETWORK_FILESYSTEMS}, FUSE) and nothing else is mounted
    beneath it, so a probe in C{root} speaks for the whole tree.
    """
    fstype = None
    for point, kind in mounts:  # later entries cover earlier ones
        if _beneath(root, point):
            fstype = kind
    if _network(fstype):
        return False
    return not any(point != root and _beneath(point, root) for point, _ in mounts)


class NoWaitReader:
    """
    @param rootdirectory: the tree read from (absolute).
    @param openat2: the C{openat2} call (tests); default: the kernel's.
    @ivar enabled: whether reads are attempted at all: only after a
        successful L{probe}.
    @ivar probed: whether L{probe} has decided (it cannot before the root
        exists).
    @ivar local: whether the tree lies on one filesystem of this machine
        (L{one_filesystem}), whose page cache says what a read would wait for.
    """

    def __init__(self, rootdirectory, openat2=None, mountinfo_path="/proc/self/mountinfo"):
        self._root = os.path.abspath(rootdirectory)
        self._openat2 = openat2 if openat2 is not None else _load_openat2()
        # On one local filesystem: the page cache tells what a read would wait for.
        self.local = self._one_filesystem(mountinfo_path)
        # Symlinks are refused in the path (RESOLVE_NO_SYMLINKS), so a root
        # reached through one is read by the pool, which follows it as it is now.
        self._eligible = (
            self._openat2 is not None
            and os.path.realpath(self._root) == self._root
            and self.local
        )
        self.enabled = False
        self.probed = not self._eligible

    def _one_filesystem(self, mountinfo_path):
        try:
            with open(mountinfo_path, encoding="utf-8", errors="replace") as handle:
                mounts = parse_mountinfo(handle.read())
        except OSError:
            return False
        return one_filesystem(self._root, mounts)

    def probe(self, name):
        """
        Decide whether to read without the pool: create the file C{name}
        (a single path segment no listing shows) in the root, then open it
        with C{RESOLVE_CACHED} and read it back with C{RWF_NOWAIT}, as
        L{read} and L{stat} would; remove it. Blocking: call it at startup
        or in a thread. While the root does not exist it decides nothing
        (call again once it does).

        @return: L{enabled}.
        """
        if self.probed:
            return self.enabled
        full = os.path.join(self._root, name)
        try:
            fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError:  # read-only, full, not permitted: the pool reads it
            self.probed = True
            return False
        try:
            try:
                os.write(fd, _PROBE_DATA)
            finally:
                os.close(fd)
            self.enabled = self._calls_work(full)
        except OSError:
            self.enabled = False
        finally:
            try:
                os.unlink(full)
            except OSError:
                pass
        self.probed = True
        return self.enabled

    def _calls_work(self, full):
        path = os.fsencode(full)
        try:
            fd = self._openat2(path)
        except OSError:
            return False
        try:
            buffer = bytearray(len(_PROBE_DATA) + 1)
            try:
                count = os.preadv(fd, [buffer], 0, os.RWF_NOWAIT)
            except OSError:
                return False
            if bytes(buffer[:count]) != _PROBE_DATA:
                return False
        finally:
            os.close(fd)
        try:
            os.close(self._openat2(path, True))
        except OSError:
            return False
        return True

    def _open(self, path, for_stat=False):
        """
        A descriptor, or None when the kernel would have had to wait (or refused).

        @raise FileNotFoundError: the kernel knows, from its cache, that the
            path does not exist (``ENOENT`` or ``ENOTDIR`` under
            C{RESOLVE_CACHED} comes only from cached entries: a lookup it
            would have had to make is ``EAGAIN``).
        """
        if not self.enabled:
            return None
        try:
            if for_stat:
                return self._openat2(os.fsencode(self._root + path), True)
            return self._openat2(os.fsencode(self._root + path))
        except OSError as error:
            if error.errno in _MISSING:
                raise FileNotFoundError(errno.ENOENT, "not found", path)
            if error.errno in _UNAVAILABLE:
                self.enabled = False
            return None

    def stat(self, path):
        """
        C{os.stat_result} of C{path} if the kernel has it at hand, else None.

        @raise FileNotFoundError: the kernel knows it does not exist.
        """
        fd = self._open(path, for_stat=True)
        if fd is None:
            return None
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def read(self, path):
        """
        The content of C{path} (relative to the tree, starting with ``/``) if
        the kernel has it at hand, else None.

        @raise FileNotFoundError: the kernel knows it does not exist.
        """
        fd = self._open(path)
        if fd is None:
            return None
        try:
            info = os.fstat(fd)
            if not statmodule.S_ISREG(info.st_mode) or info.st_size > MAX_SIZE:
                return None
            buffer = bytearray(info.st_size + 1)
            try:
                count = os.preadv(fd, [buffer], 0, os.RWF_NOWAIT)
            except OSError as error:
                if error.errno in _UNAVAILABLE:
                    self.enabled = False
                return None
            if count != info.st_size:
                # Not all cached, or the file changed size since fstat.
                return None
            return bytes(buffer[:count])
        finally:
            os.close(fd)
