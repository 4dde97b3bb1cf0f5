"""
A driver that refuses every write: what the registry runs on in read-only
mode (``storage.maintenance.readonly.enabled``).

Write requests are refused with 405 before they reach storage; this
wrapper makes "nothing is written in read-only mode" hold for every other
path as well (a read that would write, a maintenance task): such a write
fails with L{ReadOnlyStorage} instead of changing a tree that, in this mode,
may be read by garbage collection or be a read-only volume.
"""

from twisted.internet import defer
from zope.interface import implementer

from spectroreg.storage.errors import StorageError
from spectroreg.storage.interfaces import IStorageDriver


class ReadOnlyStorage(StorageError):
    """A write was attempted on storage opened read-only."""

    def __init__(self, operation, path):
        super().__init__("storage is read-only: {} refused".format(operation), path)
        self.operation = operation


@implementer(IStorageDriver)
class ReadOnlyDriver:
    """
    Reads go to C{driver}; C{put_content}, C{writer}, C{move} and C{delete}
    fail with L{ReadOnlyStorage} without calling it.

    @ivar driver: the wrapped driver.
    """

    def __init__(self, driver):
        self.driver = driver

    @property
    def name(self):
        return self.driver.name

    def __repr__(self):
        return "ReadOnlyDriver({!r})".format(self.driver)

    def get_content(self, path):
        return self.driver.get_content(path)

    def read(self, path, consumer, offset=0, length=None):
        return self.driver.read(path, consumer, offset, length)

    def stat(self, path):
        return self.driver.stat(path)

    def list(self, path):
        return self.driver.list(path)

    def walk(self, path, visit):
        return self.driver.walk(path, visit)

    def redirect_url(self, path, method="GET"):
        if method not in ("GET", "HEAD"):
            return defer.succeed(None)
        return self.driver.redirect_url(path, method)

    def close(self):
        return self.driver.close()

    def put_content(self, path, content, durable=True):
        return defer.fail(ReadOnlyStorage("put_content", path))

    def writer(self, path, append=False, durable=True):
        return defer.fail(ReadOnlyStorage("writer", path))

    def move(self, source, destination):
        return defer.fail(ReadOnlyStorage("move", destination))

    def delete(self, path):
        return defer.fail(ReadOnlyStorage("delete", path))
