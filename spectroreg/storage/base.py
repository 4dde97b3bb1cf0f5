"""
The layer every driver is used through: path validation and error normalisation.

``ValidatingDriver`` wraps any ``IStorageDriver`` (the factory returns one),
so drivers may assume valid paths and offsets and need not care which
exceptions leak out of their libraries: anything that is not already a
``StorageError`` becomes one that names the path. Given an observer, it
also reports each operation's latency and failure (the storage metrics).
"""

import functools
import re

from twisted.internet import defer
from twisted.internet.error import ConnectionClosed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from spectroreg.logging import debug_enabled
from spectroreg.storage.errors import InvalidOffset, InvalidPath, PathNotFound, StorageError
from spectroreg.storage.interfaces import IHashingWriter, IStorageDriver

log = Logger()

PATH_PATTERN = re.compile(r"^(/[A-Za-z0-9._-]+)+$")
_VALID_PATH = re.compile(r"(?:/(?!\.\.?(?:/|$))[A-Za-z0-9._-]+)+")


def check_path(path, directory=False):
    """
    Raise L{InvalidPath} unless C{path} is a valid storage path.

    @param directory: whether C{path} names a directory, where C{/} (the
        root) is accepted too.
    """
    if not isinstance(path, str):
        raise InvalidPath(path)
    if directory and path == "/":
        return
    # One match (every storage call checks its path): the pattern, without
    # "." and ".." segments, which a driver mapping paths onto a real tree
    # must never see.
    if _VALID_PATH.fullmatch(path) is None:
        raise InvalidPath(path)


def _passes_through(failure):
    return failure.check(StorageError, ConnectionClosed, defer.CancelledError)


def _normalise(failure, path, operation):
    if _passes_through(failure):
        return failure
    return Failure(StorageError(
        "{} failed: {}: {}".format(operation, failure.type.__name__, failure.getErrorMessage()),
        path,
    ))


def _call(operation, path, function, *args, **kwargs):
    d = defer.maybeDeferred(function, *args, **kwargs)
    d.addErrback(_normalise, path, operation)
    if operation != "write" and debug_enabled():  # not every chunk of an upload
        d.addBoth(_log_outcome, operation, path)
    return d


def _log_outcome(result, operation, path):
    if isinstance(result, Failure):
        outcome = "{}: {}".format(result.type.__name__, result.getErrorMessage())
    else:
        outcome = "ok"
    log.debug("storage {operation} {path}: {outcome}", operation=operation, path=path, outcome=outcome)
    return result


def _validated(directory=False):
    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, path, *args, **kwargs):
            try:
                check_path(path, directory)
            except InvalidPath:
                return defer.fail()
            return method(self, path, *args, **kwargs)

        return wrapper

    return decorate


@implementer(IStorageDriver)
class ValidatingDriver:
    """
    An L{IStorageDriver} that checks every argument, then calls C{driver}.

    @ivar driver: the wrapped driver.
    """

    # An IStorageObserver (spectroreg.ops.interfaces) told the latency and
    # outcome of every operation; None: nothing is measured.
    observer = None

    def __init__(self, driver, observer=None):
        self.driver = driver
        self.observer = observer

    def _call(self, operation, path, function, *args):
        d = _call(operation, path, function, *args)
        if self.observer is not None:
            _measure(d, self.observer, self.driver.name, operation)
        return d

    @property
    def name(self):
        return self.driver.name

    def __getattr__(self, attribute):
        # Driver-specific extras (e.g. an S3 driver's bucket) stay reachable.
        if attribute == "driver":
            raise AttributeError(attribute)
        return getattr(self.driver, attribute)

    def __repr__(self):
        return "ValidatingDriver({!r})".format(self.driver)

    @_validated()
    def get_content(self, path):
        return self._call("get_content", path, self.driver.get_content, path)

    @_validated()
    def put_content(self, path, content, durable=True):
        if not isinstance(content, (bytes, bytearray, memoryview)):
            return defer.fail(StorageError("content must be bytes", path))
        if durable:
            return self._call("put_content", path, self.driver.put_content, path, bytes(content))
        return self._call("put_content", path, self.driver.put_content, path, bytes(content), False)

    @_validated()
    def read(self, path, consumer, offset=0, length=None):
        if not isinstance(offset, int) or offset < 0:
            return defer.fail(InvalidOffset(path, offset))
        if length is not None and (not isinstance(length, int) or length < 0):
            return defer.fail(StorageError("invalid length {!r}".format(length), path))
        return self._call("read", path, self.driver.read, path, consumer, offset, length)

    @_validated()
    def writer(self, path, append=False, durable=True):
        if durable:
            d = self._call("writer", path, self.driver.writer, path, append)
        else:
            d = self._call("writer", path, self.driver.writer, path, append, False)
        d.addCallback(_ValidatingWriter, path, self.observer, self.driver.name)
        return d

    @_validated(directory=True)
    def stat(self, path):
        return self._call("stat", path, self.driver.stat, path)

    @_validated(directory=True)
    def list(self, path):
        return self._call("list", path, self.driver.list, path)

    def move(self, source, destination):
        try:
            check_path(source)
            check_path(destination)
        except InvalidPath:
            return defer.fail()
        return self._call("move", source, self.driver.move, source, destination)

    @_validated(directory=True)
    def delete(self, path):
        return self._call("delete", path, self.driver.delete, path)

    def close(self):
        return self.driver.close()

    @_validated()
    def redirect_url(self, path, method="GET"):
        return self._call("redirect_url", path, self.driver.redirect_url, path, method)

    @_validated(directory=True)
    def walk(self, path, visit):
        # Exceptions raised by the caller's own visit function are the
        # caller's: they come back unchanged, not as StorageError.
        raised = []

        def guarded_visit(info):
            try:
                result = visit(info)
            except BaseException as error:
                raised.append(error)
                raise
            if isinstance(result, defer.Deferred):
                result.addErrback(_remember, raised)
            return result

        def unwrap(failure):
            if raised and failure.value is raised[0]:
                return failure
            return _normalise(failure, path, "walk")

        d = defer.maybeDeferred(self.driver.walk, path, guarded_visit)
        d.addErrback(unwrap)
        return d


def _measure(d, observer, driver, operation):
    started = observer.now()

    def done(result):
        failed = isinstance(result, Failure) and not result.check(PathNotFound)
        observer.observe(driver, operation, observer.now() - started, failed)
        return result

    d.addBoth(done)


def _remember(failure, raised):
    raised.append(failure.value)
    return failure


@implementer(IHashingWriter)
class _ValidatingWriter:
    """Normalises a driver's writer: errors, argument types, use after the end."""

    def __init__(self, writer, path, observer=None, driver_name=None):
        self._writer = writer
        self._path = path
        self._ended = None
        self._observer = observer
        self._driver_name = driver_name

    def _call(self, operation, function, *args):
        d = _call(operation, self._path, function, *args)
        if self._observer is not None:
            _measure(d, self._observer, self._driver_name, operation)
        return d

    @property
    def size(self):
        return self._writer.size

    def __repr__(self):
        return "<writer {} size={}>".format(self._path, self._writer.size)

    def _check_open(self, operation):
        if self._ended is not None:
            raise StorageError(
                "{} on a writer already {}".format(operation, self._ended), self._path)

    def write(self, data):
        try:
            self._check_open("write")
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise StorageError("data must be bytes", self._path)
        except StorageError:
            return defer.fail()
        return self._call("write", self._writer.write, bytes(data))

    def hash_with(self, hasher):
        if self._ended is not None or not IHashingWriter.providedBy(self._writer):
            return False
        return self._writer.hash_with(hasher)

    def _end(self, how, operation):
        try:
            self._check_open(operation)
        except StorageError:
            return defer.fail()
        self._ended = how
        return self._call(operation, getattr(self._writer, operation))

    def close(self):
        return self._end("closed", "close")

    def commit(self):
        return self._end("committed", "commit")

    def cancel(self):
        return self._end("cancelled", "cancel")
