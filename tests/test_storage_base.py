"""ValidatingDriver: the path table, error normalisation, writer rules."""

from twisted.internet import defer
from twisted.internet.error import ConnectionDone
from twisted.trial import unittest
from zope.interface import implementer
from zope.interface.verify import verifyObject

from spectroreg.storage.base import ValidatingDriver, check_path
from spectroreg.storage.errors import (
    InvalidOffset,
    InvalidPath,
    PathNotFound,
    StorageError,
)
from spectroreg.storage.inmemory import InMemoryDriver
from spectroreg.storage.interfaces import IFileWriter, IStorageDriver
from spectroreg.storage.testing import HashingConsumer
from tests.support.asynctest import async_test

VALID = [
    "/a", "/A", "/0", "/a/b", "/a.b", "/a-b", "/a_b", "/..a", "/a..", "/...", "/.a",
    "/a/.b/c", "/docker/registry/v2/blobs/sha256/ab/" + "ab" * 32 + "/data",
    "/docker/registry/v2/repositories/library/ubuntu/_manifests/tags/22.04/current/link",
    "/" + "x" * 255,
]
INVALID = [
    "", "/", "a", "a/b", "/a/", "//", "//a", "/a//b", "/.", "/..", "/a/.", "/a/..",
    "/a/./b", "/a/../b", "/../etc/passwd", "/a b", "/a\tb", "/a\nb", "/a\rb", "/a\x00",
    "/\u00e9", "/a\\b", "/a:b", "/a*", "/a?", "/a~", "/a+b", "/a%2f", "/a/b/", " /a",
    "/a ", "\\a",
]


class CheckPathTests(unittest.SynchronousTestCase):
    def test_valid(self):
        for path in VALID:
            check_path(path)
            check_path(path, directory=True)

    def test_invalid(self):
        for path in INVALID:
            self.assertRaises(InvalidPath, check_path, path)
        for path in INVALID:
            if path != "/":
                self.assertRaises(InvalidPath, check_path, path, directory=True)

    def test_root_only_as_directory(self):
        check_path("/", directory=True)
        self.assertRaises(InvalidPath, check_path, "/")

    def test_not_a_string(self):
        for path in (None, b"/a", 1, ["/a"]):
            self.assertRaises(InvalidPath, check_path, path)
            self.assertRaises(InvalidPath, check_path, path, directory=True)

    def test_error_carries_path(self):
        error = self.assertRaises(InvalidPath, check_path, "/a/../b")
        self.assertEqual(error.path, "/a/../b")


class Boom(Exception):
    pass


@implementer(IStorageDriver)
class BrokenDriver:
    """Raises or fails with whatever it is told to, on every call."""

    name = "broken"

    def __init__(self, error, synchronous=True):
        self.error = error
        self.synchronous = synchronous
        self.calls = []

    def _act(self, name, *args):
        self.calls.append((name,) + args)
        if self.synchronous:
            raise self.error
        return defer.fail(self.error)

    def get_content(self, path):
        return self._act("get_content", path)

    def put_content(self, path, content, durable=True):
        return self._act("put_content", path, content)

    def read(self, path, consumer, offset=0, length=None):
        return self._act("read", path, offset, length)

    def writer(self, path, append=False, durable=True):
        return self._act("writer", path, append)

    def stat(self, path):
        return self._act("stat", path)

    def list(self, path):
        return self._act("list", path)

    def move(self, source, destination):
        return self._act("move", source, destination)

    def delete(self, path):
        return self._act("delete", path)

    def redirect_url(self, path, method="GET"):
        return self._act("redirect_url", path, method)

    def walk(self, path, visit):
        return self._act("walk", path)


def all_calls(driver):
    return [
        driver.get_content("/p"), driver.put_content("/p", b"x"),
        driver.read("/p", HashingConsumer()), driver.writer("/p"), driver.stat("/p"),
        driver.list("/p"), driver.move("/p", "/q"), driver.delete("/p"),
        driver.redirect_url("/p"), driver.walk("/p", lambda info: None),
    ]


class ValidatingDriverTests(unittest.TestCase):
    def test_provides_interface(self):
        verifyObject(IStorageDriver, ValidatingDriver(InMemoryDriver()))
        self.assertEqual(ValidatingDriver(InMemoryDriver()).name, "inmemory")

    @async_test
    async def test_invalid_paths_never_reach_the_driver(self):
        inner = BrokenDriver(Boom())
        driver = ValidatingDriver(inner)
        for path in INVALID:
            for d in (driver.get_content(path), driver.put_content(path, b""),
                      driver.read(path, HashingConsumer()), driver.writer(path),
                      driver.move(path, "/ok"), driver.move("/ok", path),
                      driver.redirect_url(path)):
                await self.assertFailure(d, InvalidPath)
            if path != "/":
                for d in (driver.stat(path), driver.list(path), driver.delete(path),
                          driver.walk(path, lambda info: None)):
                    await self.assertFailure(d, InvalidPath)
        self.assertEqual(inner.calls, [])

    @async_test
    async def test_unexpected_errors_become_storage_errors(self):
        for synchronous in (True, False):
            driver = ValidatingDriver(BrokenDriver(Boom("disk on fire"), synchronous))
            for d in all_calls(driver):
                error = await self.assertFailure(d, StorageError)
                self.assertIs(type(error), StorageError)
                self.assertEqual(error.path, "/p")
                self.assertIn("disk on fire", str(error))

    @async_test
    async def test_storage_errors_pass_through(self):
        for error in (PathNotFound("/p"), InvalidOffset("/p", 5), StorageError("x", "/p"),
                      ConnectionDone()):
            driver = ValidatingDriver(BrokenDriver(error, synchronous=False))
            for d in all_calls(driver):
                self.assertIs(await self.assertFailure(d, type(error)), error)

    @async_test
    async def test_argument_checks(self):
        inner = BrokenDriver(Boom())
        driver = ValidatingDriver(inner)
        await self.assertFailure(driver.put_content("/p", "text"), StorageError)
        await self.assertFailure(driver.read("/p", HashingConsumer(), -1), InvalidOffset)
        await self.assertFailure(driver.read("/p", HashingConsumer(), "0"), InvalidOffset)
        await self.assertFailure(driver.read("/p", HashingConsumer(), 0, -1), StorageError)
        self.assertEqual(inner.calls, [])

    @async_test
    async def test_visit_errors_are_the_callers(self):
        driver = ValidatingDriver(InMemoryDriver())
        await driver.put_content("/a/b", b"x")

        def visit(info):
            raise Boom("mine")

        await self.assertFailure(driver.walk("/", visit), Boom)
        await self.assertFailure(
            driver.walk("/", lambda info: defer.fail(Boom("async"))), Boom)

    @async_test
    async def test_writer_is_wrapped(self):
        driver = ValidatingDriver(InMemoryDriver())
        writer = await driver.writer("/w")
        verifyObject(IFileWriter, writer)
        await self.assertFailure(writer.write("text"), StorageError)
        await writer.write(bytearray(b"ab"))
        await writer.write(memoryview(b"cd"))
        self.assertEqual(writer.size, 4)
        await writer.commit()
        self.assertEqual(await driver.get_content("/w"), b"abcd")
        for d in (writer.write(b"x"), writer.commit(), writer.close(), writer.cancel()):
            await self.assertFailure(d, StorageError)

    def test_extras_reach_the_driver(self):
        inner = InMemoryDriver()
        inner.special = "yes"
        self.assertEqual(ValidatingDriver(inner).special, "yes")
        self.assertIs(ValidatingDriver(inner).driver, inner)
