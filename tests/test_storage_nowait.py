"""
Reads that cannot wait: when they are used, and that everything else still goes to the pool.

Whether they are used follows from the probe on the tree's own filesystem,
never from its name: the driver tests run on the trial temp directory's
filesystem, and (as root, where the machine allows mounts) again on a tmpfs
and on an overlay mounted for the test, where kernels differ in what they
support.
"""

import errno
import os
import shutil
import stat
import subprocess

from twisted.trial import unittest

from spectroreg.storage import _nowait
from spectroreg.storage.errors import PathNotFound
from spectroreg.storage.filesystem import FilesystemDriver
from spectroreg.storage._nowait import NoWaitReader, one_filesystem, parse_mountinfo
from tests.support.asynctest import async_test
from tests.support.requirements import require_external

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
23 22 0:5 / /proc rw,nosuid - proc proc rw
30 22 0:40 / /srv/nfs rw - nfs4 server:/export rw,vers=4.2
31 22 8:17 / /var/lib/registry rw,relatime shared:9 - xfs /dev/sdb1 rw
32 31 0:41 / /var/lib/registry/docker/registry/v2/blobs rw - nfs server:/blobs rw
33 22 0:42 / /mnt/with\\040space rw - ext4 /dev/sdc1 rw
34 22 0:43 / /data rw - fuse.sshfs host:/data rw
35 22 0:44 / /srv/nfs/local rw - ext4 /dev/sdd1 rw
"""


class MountTests(unittest.SynchronousTestCase):
    def test_parse(self):
        mounts = parse_mountinfo(MOUNTINFO + "garbage line\n")
        self.assertEqual(mounts[0], ("/", "ext4"))
        self.assertIn(("/mnt/with space", "ext4"), mounts)
        self.assertEqual(len(mounts), 8)

    def test_one_filesystem(self):
        """A probe in the root speaks for the tree: not a network filesystem, nothing mounted beneath."""
        mounts = parse_mountinfo(MOUNTINFO)
        cases = [
            ("/var/lib/spectro", True),  # on /
            ("/srv/nfs/images", False),  # NFS
            ("/srv/nfs/local/images", True),  # a disk mounted over the NFS tree
            ("/data/registry", False),  # FUSE
            ("/mnt/with space/registry", True),
            ("/var/lib/registry", False),  # NFS mounted beneath it
            ("/var/lib/registry/docker/registry/v2/repositories", True),  # beside that NFS mount
            ("/var/lib/registryx", True),  # only a name prefix of /var/lib/registry: on /
            ("/", False),  # everything is mounted beneath /
        ]
        for root, expected in cases:
            self.assertEqual(one_filesystem(root, mounts), expected, root)
        self.assertFalse(one_filesystem("/x", []), "no mount known over it")


def _fake_openat2(path, for_stat=False):
    """openat2 as a kernel that always has everything cached (symlinks refused as the real one)."""
    if os.path.realpath(path) != os.path.abspath(path):
        raise OSError(errno.ELOOP, "symlink")
    return os.open(path, (os.O_PATH if for_stat else os.O_RDONLY) | os.O_CLOEXEC)


class ProbeTests(unittest.SynchronousTestCase):
    """The reader is on only after its probe worked, in the root itself."""

    def setUp(self):
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(self.root)
        self.nowait_reads = []
        real = os.preadv

        def preadv(fd, buffers, offset, flags=0):
            self.nowait_reads.append(flags)
            return real(fd, buffers, offset)

        self.patch(_nowait.os, "preadv", preadv)

    def probed(self, openat2=_fake_openat2):
        reader = NoWaitReader(self.root, openat2=openat2)
        self.assertFalse(reader.enabled, "on before the probe")
        reader.probe(".probe-name")
        self.assertTrue(reader.probed)
        self.assertEqual(os.listdir(self.root), [], "the probe left its file")
        return reader

    def test_both_calls_work(self):
        reader = self.probed()
        self.assertTrue(reader.enabled)
        self.assertEqual(self.nowait_reads, [os.RWF_NOWAIT])
        with open(os.path.join(self.root, "f"), "wb") as handle:
            handle.write(b"data")
        self.assertEqual(reader.read("/f"), b"data")

    def test_nowait_read_refused(self):
        """openat2 works but preadv2(RWF_NOWAIT) says EOPNOTSUPP (overlayfs, some tmpfs): off, no read tried."""
        def refused(fd, buffers, offset, flags=0):
            self.nowait_reads.append(flags)
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")

        self.patch(_nowait.os, "preadv", refused)
        reader = self.probed()
        self.assertFalse(reader.enabled)
        del self.nowait_reads[:]
        with open(os.path.join(self.root, "f"), "wb") as handle:
            handle.write(b"data")
        self.assertIsNone(reader.read("/f"))
        self.assertIsNone(reader.stat("/f"))
        self.assertEqual(self.nowait_reads, [])

    def test_short_or_wrong_read(self):
        self.patch(_nowait.os, "preadv", lambda fd, buffers, offset, flags=0: 3)
        self.assertFalse(self.probed().enabled)

    def test_openat2_refused(self):
        def refused(path, for_stat=False):
            raise OSError(errno.ENOSYS, "no openat2")

        self.assertFalse(self.probed(refused).enabled)
        self.assertEqual(self.nowait_reads, [])

    def test_stat_handle_refused(self):
        def no_o_path(path, for_stat=False):
            if for_stat:
                raise OSError(errno.EINVAL, "no O_PATH")
            return _fake_openat2(path)

        self.assertFalse(self.probed(no_o_path).enabled)

    def test_root_missing_until_created(self):
        """No root yet: nothing decided, nothing created; the probe decides once the root exists."""
        os.rmdir(self.root)
        reader = NoWaitReader(self.root, openat2=_fake_openat2)
        self.assertFalse(reader.probe(".probe-name"))
        self.assertFalse(reader.probed)
        self.assertFalse(os.path.exists(self.root))
        os.makedirs(self.root)
        self.assertTrue(reader.probe(".probe-name"))
        self.assertTrue(reader.probed)
        self.assertEqual(os.listdir(self.root), [])

    def test_root_not_writable(self):
        """The probe cannot create its file (read-only tree): off, decided."""
        def cannot_create(*args, **kwargs):
            raise OSError(errno.EROFS, "Read-only file system")

        reader = NoWaitReader(self.root, openat2=_fake_openat2)
        self.patch(_nowait.os, "open", cannot_create)
        self.assertFalse(reader.probe(".probe-name"))
        self.assertTrue(reader.probed)

    def test_once(self):
        reader = self.probed()
        del self.nowait_reads[:]
        self.assertTrue(reader.probe(".probe-name"))
        self.assertEqual(self.nowait_reads, [])

    def test_probe_is_not_the_filesystem_name(self):
        """Not a network filesystem and the calls work: on, whatever the filesystem is called."""
        mountinfo = os.path.join(self.mktemp())
        for kind in ("overlay", "tmpfs", "ext4", "somethingnew"):
            with open(mountinfo, "w") as handle:
                handle.write("1 0 0:1 / / rw - {} none rw\n".format(kind))
            reader = NoWaitReader(self.root, openat2=_fake_openat2, mountinfo_path=mountinfo)
            self.assertTrue(reader.probe(".probe-name"), kind)


class ReaderTests(unittest.SynchronousTestCase):
    """The reader with the kernel's calls, where the probe found them usable."""

    def setUp(self):
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(self.root, "a"))
        with open(os.path.join(self.root, "a", "link"), "wb") as handle:
            handle.write(b"sha256:" + b"0" * 64)

    def probed_reader(self):
        reader = NoWaitReader(self.root)
        if not reader.probe(".probe-name"):
            raise unittest.SkipTest(
                "the probe found openat2/RWF_NOWAIT unusable on {}'s filesystem here "
                "(FakeKernelReaderTests runs these everywhere)".format(self.root))
        return reader

    def reader(self, openat2=None):
        reader = self.probed_reader()
        if openat2 is not None:
            reader._openat2 = openat2
        return reader

    def test_cached_file(self):
        reader = self.reader()
        with open(os.path.join(self.root, "a", "link"), "rb") as handle:
            handle.read()  # in the page cache now
        self.assertEqual(reader.read("/a/link"), b"sha256:" + b"0" * 64)

    def test_stat(self):
        reader = self.reader()
        info = reader.stat("/a/link")
        self.assertEqual((info.st_size, info.st_ino), (71, os.stat(os.path.join(self.root, "a", "link")).st_ino))
        self.assertTrue(stat.S_ISDIR(reader.stat("/a").st_mode))

    def test_known_missing(self):
        """A path the kernel's cache knows is missing (looked up before): FileNotFoundError, no pool."""
        reader = self.reader()
        for path in ("/missing", "/a/missing", "/a/missing/deeper"):
            # The lookup that leaves the negative entry in the kernel's cache.
            self.assertFalse(os.path.exists(self.root + path))
            with self.assertRaises(FileNotFoundError):
                reader.stat(path)
            with self.assertRaises(FileNotFoundError):
                reader.read(path)
        self.assertTrue(reader.enabled)

    def test_empty_file(self):
        open(os.path.join(self.root, "a", "empty"), "wb").close()
        self.assertEqual(self.reader().read("/a/empty"), b"")

    def test_declines(self):
        """Directories, big files and symlinks are left to the pool."""
        reader = self.reader()
        with open(os.path.join(self.root, "big"), "wb") as handle:
            handle.write(b"x" * (_nowait.MAX_SIZE + 1))
        os.symlink(os.path.join(self.root, "a"), os.path.join(self.root, "via-symlink"))
        for path in ("/a", "/big", "/via-symlink/link"):
            self.assertIsNone(reader.read(path), path)
        self.assertTrue(reader.enabled)

    def test_kernel_would_wait(self):
        """EAGAIN from openat2 (not cached) or from preadv2 (not in the page cache): None."""
        def would_wait(path, for_stat=False):
            raise OSError(errno.EAGAIN, "not cached")

        reader = self.reader(openat2=would_wait)
        self.assertIsNone(reader.read("/a/link"))
        self.assertIsNone(reader.stat("/a/link"))
        self.assertTrue(reader.enabled)

        reader = self.reader()
        self.patch(_nowait.os, "preadv", lambda *args: (_ for _ in ()).throw(OSError(errno.EAGAIN, "")))
        self.assertIsNone(reader.read("/a/link"))
        self.assertTrue(reader.enabled)

    def test_short_read(self):
        reader = self.reader()
        self.patch(_nowait.os, "preadv", lambda fd, buffers, offset, flags: 3)
        self.assertIsNone(reader.read("/a/link"))

    def test_unavailable_switches_off(self):
        """ENOSYS (old kernel) or EPERM (seccomp): stop trying."""
        calls = []

        def refused(path, for_stat=False):
            calls.append(path)
            raise OSError(errno.EPERM, "blocked")

        reader = self.reader(openat2=refused)
        self.assertIsNone(reader.stat("/a/link"))
        self.assertFalse(reader.enabled)
        self.assertIsNone(reader.read("/a/link"))
        self.assertEqual(len(calls), 1)

    def test_root_through_a_symlink(self):
        """A root reached through a symlink is left to the pool, which follows the link as it is now."""
        self.reader()  # available here at all
        link = os.path.abspath(self.mktemp())
        os.symlink(self.root, link)
        reader = NoWaitReader(link)
        self.assertFalse(reader.probe(".probe-name"))
        self.assertIsNone(reader.read("/a/link"))

    def test_not_local(self):
        mountinfo = os.path.join(self.root, "mountinfo")
        with open(mountinfo, "w") as handle:
            handle.write("1 0 0:1 / / rw - nfs4 server:/ rw\n")
        reader = NoWaitReader(self.root, openat2=_fake_openat2, mountinfo_path=mountinfo)
        self.assertFalse(reader.probe(".probe-name"))
        self.assertIsNone(reader.read("/a/link"))


class FakeKernelReaderTests(ReaderTests):
    """The same, on any filesystem: a kernel whose every file is cached."""

    def probed_reader(self):
        real = os.preadv
        self.patch(_nowait.os, "preadv", lambda fd, buffers, offset, flags=0: real(fd, buffers, offset))
        reader = NoWaitReader(self.root, openat2=_fake_openat2)
        self.assertTrue(reader.probe(".probe-name"))
        return reader


def _kernel_reads_without_waiting(root):
    """What the kernel does now in C{root}, asked directly: openat2(RESOLVE_CACHED) + preadv2(RWF_NOWAIT)."""
    openat2 = _nowait._load_openat2()
    if openat2 is None:
        return False
    path = os.path.join(root, "direct-question")
    with open(path, "wb") as handle:
        handle.write(b"asked")
    try:
        fd = openat2(os.fsencode(path))
        try:
            buffer = bytearray(6)
            return os.preadv(fd, [buffer], 0, os.RWF_NOWAIT) == 5
        finally:
            os.close(fd)
    except OSError:
        return False
    finally:
        os.unlink(path)


class DriverTests(unittest.TestCase):
    """
    The filesystem driver answers cached small reads without its pool when
    its probe found that the kernel offers that on the tree's filesystem, and
    all reads through its pool otherwise.
    """

    def make_root(self):
        """A root that does not exist yet: the write that creates it probes."""
        return os.path.abspath(self.mktemp())

    def setUp(self):
        self.root = self.make_root()
        self.driver = FilesystemDriver(self.root, maxthreads=2)
        self.addCleanup(self.driver.close)
        self.pooled = []
        real = self.driver._pool.run_shared

        def counting(key, function, *args):
            self.pooled.append(key)
            return real(key, function, *args)

        self.patch(self.driver._pool, "run_shared", counting)
        real_run = self.driver._pool.run

        def counting_run(function, *args, **kwargs):
            self.pooled.append((function.__name__,) + args)
            return real_run(function, *args, **kwargs)

        self.patch(self.driver._pool, "run", counting_run)

    @async_test
    async def test_probe_matches_the_kernel(self):
        await self.driver.put_content("/r/link", b"content")
        self.assertTrue(self.driver._nowait.probed)
        self.assertEqual(self.driver._nowait.enabled, _kernel_reads_without_waiting(self.root))
        self.assertEqual(sorted(os.listdir(self.root)), ["r"], "the probe left its file")

    @async_test
    async def test_hot_read_skips_the_pool(self):
        await self.driver.put_content("/r/link", b"content")
        fast = self.driver._nowait.enabled  # what the probe decided
        del self.pooled[:]
        self.assertEqual(await self.driver.get_content("/r/link"), b"content")
        info = await self.driver.stat("/r/link")
        self.assertEqual((info.path, info.size, info.is_dir), ("/r/link", 7, False))
        self.assertAlmostEqual(info.modified, os.stat(self.root + "/r/link").st_mtime, places=3)
        info = await self.driver.stat("/r")
        self.assertEqual((info.path, info.size, info.is_dir), ("/r", 0, True))
        if fast:
            self.assertEqual(self.pooled, [])
        else:
            self.assertEqual(self.pooled, [("get_content", "/r/link"), ("_stat", "/r/link"), ("_stat", "/r")])
        # Rewritten (a new inode by rename): the next read sees the new bytes.
        await self.driver.put_content("/r/link", b"changed!")
        self.assertEqual(await self.driver.get_content("/r/link"), b"changed!")
        open(self.root + "/r/empty", "wb").close()
        self.assertEqual(await self.driver.get_content("/r/empty"), b"")

    @async_test
    async def test_other_reads_use_the_pool(self):
        await self.driver.put_content("/r/big", b"b" * (_nowait.MAX_SIZE + 10))
        del self.pooled[:]
        self.assertEqual(len(await self.driver.get_content("/r/big")), _nowait.MAX_SIZE + 10)
        with self.assertRaises(PathNotFound):
            await self.driver.get_content("/r")
        self.assertEqual([key[1] for key in self.pooled], ["/r/big", "/r"])

    @async_test
    async def test_known_missing_skips_the_pool(self):
        """A path the kernel knows is missing (a blob not pushed yet) is PathNotFound at once."""
        await self.driver.put_content("/r/link", b"content")
        fast = self.driver._nowait.enabled
        for path in ("/r/missing", "/r/missing/deeper"):
            os.path.exists(self.root + path)  # the kernel has looked it up
            del self.pooled[:]
            with self.assertRaises(PathNotFound):
                await self.driver.get_content(path)
            with self.assertRaises(PathNotFound):
                await self.driver.stat(path)
            if fast:
                self.assertEqual(self.pooled, [], path)
            else:
                self.assertEqual([key[1] for key in self.pooled], [path, path])

    @async_test
    async def test_would_wait_falls_back(self):
        await self.driver.put_content("/r/link", b"content")

        def would_wait(path, for_stat=False):
            raise OSError(errno.EAGAIN, "not cached")

        self.patch(self.driver._nowait, "_openat2", would_wait)
        del self.pooled[:]
        self.assertEqual(await self.driver.get_content("/r/link"), b"content")
        self.assertEqual((await self.driver.stat("/r/link")).size, 7)
        self.assertEqual(self.pooled, [("get_content", "/r/link"), ("_stat", "/r/link")])


class _MountedRoot:
    """The driver tests on a filesystem of C{fstype} mounted for the test (root only)."""

    fstype = None

    def mount_options(self, base):
        return []

    def make_root(self):
        require_external("mounting a filesystem")
        if os.geteuid() != 0:
            raise unittest.SkipTest("mounting a {} needs root".format(self.fstype))
        base = os.path.abspath(self.mktemp())
        point = os.path.join(base, "mnt")
        os.makedirs(point)
        self.addCleanup(shutil.rmtree, base, ignore_errors=True)
        command = ["mount", "-t", self.fstype] + self.mount_options(base) + [self.fstype, point]
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if done.returncode != 0:
            raise unittest.SkipTest("this machine does not allow {}: {}".format(
                " ".join(command), done.stdout.decode(errors="replace").strip()))
        # Runs after the driver's close (cleanups run last-in, first-out).
        self.addCleanup(subprocess.run, ["umount", "-l", point])
        return point


class TmpfsDriverTests(_MountedRoot, DriverTests):
    fstype = "tmpfs"


class OverlayDriverTests(_MountedRoot, DriverTests):
    fstype = "overlay"

    def mount_options(self, base):
        for name in ("lower", "upper", "work"):
            os.makedirs(os.path.join(base, name))
        return ["-o", "lowerdir={0}/lower,upperdir={0}/upper,workdir={0}/work".format(base)]
