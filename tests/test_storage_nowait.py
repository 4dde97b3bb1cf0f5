"""Reads that cannot wait: when they are used, and that everything else still goes to the pool."""

import errno
import os
import stat

from twisted.trial import unittest

from spectroreg.storage import _nowait
from spectroreg.storage.errors import PathNotFound
from spectroreg.storage.filesystem import FilesystemDriver
from spectroreg.storage._nowait import NoWaitReader, local_tree, parse_mountinfo
from tests.support.asynctest import async_test

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

    def test_local_tree(self):
        mounts = parse_mountinfo(MOUNTINFO)
        cases = [
            ("/var/lib/spectro", True),  # on / (ext4)
            ("/srv/nfs/images", False),  # NFS
            ("/srv/nfs/local/images", True),  # a local disk mounted over the NFS tree
            ("/data/registry", False),  # FUSE
            ("/mnt/with space/registry", True),
            ("/var/lib/registry", False),  # NFS mounted beneath it
            ("/var/lib/registry/docker/registry/v2/repositories", True),  # beside that NFS mount
            ("/var/lib/registryx", True),  # only a name prefix of /var/lib/registry: on /
            ("/proc/x", False),
        ]
        for root, expected in cases:
            self.assertEqual(local_tree(root, mounts), expected, root)


class ReaderTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(self.root, "a"))
        with open(os.path.join(self.root, "a", "link"), "wb") as handle:
            handle.write(b"sha256:" + b"0" * 64)

    def reader(self, openat2=None):
        reader = NoWaitReader(self.root, openat2=openat2)
        if not reader.enabled:
            raise unittest.SkipTest("openat2/RWF_NOWAIT not available for {} here".format(self.root))
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
        self.assertIsNone(reader.stat("/a/missing/deeper"))

    def test_empty_file(self):
        open(os.path.join(self.root, "a", "empty"), "wb").close()
        self.assertEqual(self.reader().read("/a/empty"), b"")

    def test_declines(self):
        """Missing files, directories, big files and symlinks are left to the pool."""
        reader = self.reader()
        with open(os.path.join(self.root, "big"), "wb") as handle:
            handle.write(b"x" * (_nowait.MAX_SIZE + 1))
        os.symlink(os.path.join(self.root, "a"), os.path.join(self.root, "via-symlink"))
        for path in ("/missing", "/a/missing/deeper", "/a", "/big", "/via-symlink/link"):
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
        self.assertFalse(reader.enabled)
        self.assertIsNone(reader.read("/a/link"))

    def test_not_local(self):
        mountinfo = os.path.join(self.root, "mountinfo")
        with open(mountinfo, "w") as handle:
            handle.write("1 0 0:1 / / rw - nfs4 server:/ rw\n")
        reader = NoWaitReader(self.root, openat2=lambda path, for_stat=False: 0, mountinfo_path=mountinfo)
        self.assertFalse(reader.enabled)
        self.assertIsNone(reader.read("/a/link"))


class DriverTests(unittest.TestCase):
    """The filesystem driver answers cached small reads without its pool, the rest through it."""

    def setUp(self):
        self.root = os.path.abspath(self.mktemp())
        self.driver = FilesystemDriver(self.root, maxthreads=2)
        self.addCleanup(self.driver.close)
        if not self.driver._nowait.enabled:
            raise unittest.SkipTest("openat2/RWF_NOWAIT not available for {} here".format(self.root))
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
    async def test_hot_read_skips_the_pool(self):
        await self.driver.put_content("/r/link", b"content")
        del self.pooled[:]
        self.assertEqual(await self.driver.get_content("/r/link"), b"content")
        info = await self.driver.stat("/r/link")
        self.assertEqual((info.path, info.size, info.is_dir), ("/r/link", 7, False))
        self.assertAlmostEqual(info.modified, os.stat(self.root + "/r/link").st_mtime, places=3)
        info = await self.driver.stat("/r")
        self.assertEqual((info.path, info.size, info.is_dir), ("/r", 0, True))
        self.assertEqual(self.pooled, [])
        # Rewritten (a new inode by rename): the next read sees the new bytes.
        await self.driver.put_content("/r/link", b"changed!")
        self.assertEqual(await self.driver.get_content("/r/link"), b"changed!")

    @async_test
    async def test_other_reads_use_the_pool(self):
        await self.driver.put_content("/r/big", b"b" * (_nowait.MAX_SIZE + 10))
        del self.pooled[:]
        self.assertEqual(len(await self.driver.get_content("/r/big")), _nowait.MAX_SIZE + 10)
        for path in ("/r", "/r/missing"):
            with self.assertRaises(PathNotFound):
                await self.driver.get_content(path)
        with self.assertRaises(PathNotFound):
            await self.driver.stat("/r/missing/deeper")
        self.assertEqual(
            [key[1] for key in self.pooled], ["/r/big", "/r", "/r/missing", "/r/missing/deeper"])

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
