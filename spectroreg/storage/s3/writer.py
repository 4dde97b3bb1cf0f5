"""
The S3 ``IFileWriter``: a multipart upload fed in parts of ``chunksize``,
kept in the bucket as Distribution keeps it (``inflight.py``).

Bytes collect in a buffer; each time it holds ``chunksize`` bytes a part is
cut and uploaded while writing goes on, with at most ``parts_in_flight``
parts uploading at once. ``write()`` fires only when the buffer is below a
part and a slot is free, so memory stays at ``chunksize × (parts_in_flight
+ 1)`` per writer whatever the file size.

- ``close()`` sends the buffer as a part, however small (the file is then
  whole in the bucket for any process, spectroreg or Distribution).
- ``commit()`` sends the rest as the last part and completes the upload, or
  for a file that never had an upload and is smaller than a part, simply
  PUTs it.
- ``cancel()`` aborts the upload and deletes the file.

A writer opened on a file whose last part is below 5 MiB, or on a committed
object, gets ready to append only when the first bytes come (``_prepare``):
a writer that only tells the size (an upload's status) costs no more.
"""

import math

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from spectroreg.bounded import Waiters
from spectroreg.storage.errors import StorageError
from spectroreg.storage.interfaces import IFileWriter
from spectroreg.storage.s3 import inflight
from spectroreg.storage.s3.cache import InFlight
from spectroreg.storage.s3.errors import S3Error
from spectroreg.storage.s3.inflight import MIN_PART

log = Logger()

MAX_PART = 5 * 1024 * 1024 * 1024

# What a writer does before its first bytes (see Opening).
RESEND_TAIL = "resend the small last part"
RESTART = "complete and restart the upload"
ADOPT_OBJECT = "append to the committed object"


class Opening:
    """
    Where a writer starts.

    @ivar upload_id: the upload in flight, or None.
    @ivar parts: its parts, C{[(number, etag, size)]}.
    @ivar prepare: None, or one of C{RESEND_TAIL}, C{RESTART}, C{ADOPT_OBJECT}.
    @ivar tail: with C{RESEND_TAIL}, the bytes of the last part.
    @ivar size: the file's size.
    @ivar new: whether the file is new (C{writer(path)}, not appending).
    """

    def __init__(self, upload_id=None, parts=(), prepare=None, tail=b"", size=None, new=False):
        self.new = new
        self.upload_id = upload_id
        self.parts = list(parts)
        self.prepare = prepare
        self.tail = tail
        self.size = sum(s for _, _, s in self.parts) if size is None else size


@implementer(IFileWriter)
class S3Writer:
    """
    @param driver: the L{S3Driver} (client, cache, headers, chunk size).
    @param opening: an L{Opening}.
    """

    def __init__(self, driver, path, key, opening):
        self._driver = driver
        self._client = driver.client
        self._cache = driver.cache
        self._path = path
        self._key = key
        self._chunk = driver.chunksize
        self._max_in_flight = driver.parts_in_flight
        self._upload_id = opening.upload_id
        self._parts = {number: (etag, size) for number, etag, size in opening.parts}
        self._next_part = max(self._parts, default=0) + 1
        self._prepare_step = opening.prepare
        self._tail = opening.tail
        self._buffer = bytearray()
        self._written = False
        self._new = opening.new
        self._object_stale = False
        self._in_flight = {}
        self._waiters = Waiters()
        self._failure = None
        self._create_lock = defer.DeferredLock()
        self._ended = None
        self.size = opening.size

    def __repr__(self):
        return "<S3Writer {} size={} upload={}>".format(self._key, self.size, self._upload_id)

    # IFileWriter

    def write(self, data):
        return defer.ensureDeferred(self._write(data))

    def close(self):
        return defer.ensureDeferred(self._end("closed", self._close))

    def commit(self):
        return defer.ensureDeferred(self._end("committed", self._commit))

    def cancel(self):
        return defer.ensureDeferred(self._end("cancelled", self._cancel))

    # writing

    def _check_open(self):
        if self._ended is not None:
            raise StorageError("writer already {}".format(self._ended), self._path)
        if self._failure is not None:
            raise self._failure

    async def _write(self, data):
        self._check_open()
        if not data:
            return
        if not self._written:
            await self._prepare()
            self._written = True
        self._buffer += data
        self.size += len(data)
        while len(self._buffer) >= self._chunk:
            with memoryview(self._buffer) as view:
                part = bytes(view[:self._chunk])
            del self._buffer[:self._chunk]
            self._start_part(part)
            while len(self._in_flight) >= self._max_in_flight and self._failure is None:
                await self._waiters.wait()
        if self._failure is not None:
            raise self._failure

    async def _end(self, how, operation):
        self._check_open()
        self._ended = how
        return await operation()

    def _start_part(self, data):
        number = self._next_part
        self._next_part += 1
        d = defer.ensureDeferred(self._upload_part(number, data))
        self._in_flight[number] = d

        def done(result):
            del self._in_flight[number]
            self._waiters.fire()

        d.addBoth(done)

    async def _upload_part(self, number, data):
        try:
            upload_id = await self._ensure_upload()
            etag = await self._client.upload_part(self._key, upload_id, number, data, self._path)
        except Exception as error:
            if self._failure is None:
                self._failure = error if isinstance(error, StorageError) else StorageError(
                    "uploading part {}: {}".format(number, error), self._path)
            return
        self._parts[number] = (etag, len(data))

    async def _ensure_upload(self):
        await self._create_lock.acquire()
        try:
            if self._upload_id is None:
                self._upload_id = await self._client.create_multipart(
                    self._key, self._driver.object_headers(), self._path)
            return self._upload_id
        finally:
            self._create_lock.release()

    async def _drain(self):
        while self._in_flight:
            await self._waiters.wait()
        if self._failure is not None:
            raise self._failure

    def _sorted_parts(self):
        return [(n, etag, size) for n, (etag, size) in sorted(self._parts.items())]

    # getting ready to append

    async def _prepare(self):
        step, self._prepare_step = self._prepare_step, None
        if step == RESEND_TAIL:
            # The small last part goes again, same number, with what follows.
            number = max(self._parts)
            del self._parts[number]
            self._next_part = number
            self._buffer += self._tail
        elif step == RESTART:
            await self._restart()
        elif step == ADOPT_OBJECT:
            await self._adopt_object(self.size)
        self._tail = b""

    async def _restart(self):
        """Complete the upload with the file's parts; a new one starts from the object."""
        parts = self._sorted_parts()
        upload_id, self._upload_id = self._upload_id, None
        self._parts = {}
        self._next_part = 1
        if not parts:
            await self._client.abort_multipart(self._key, upload_id, self._path)
            return
        await self._client.complete_multipart(
            self._key, upload_id, [(n, etag) for n, etag, _ in parts], self._path)
        await self._adopt_object(sum(size for _, _, size in parts))

    async def _adopt_object(self, size):
        """The committed object at the key becomes the start of a new upload."""
        self._object_stale = True
        if size < MIN_PART:
            if size:
                self._buffer += await self._client.get_object(self._key, self._path)
            return
        await self._ensure_upload()
        count = math.ceil(size / MAX_PART)
        parts = await self._driver.copy_parts(
            self._path, self._key, self._upload_id, self._key, size, math.ceil(size / count))
        self._parts = {number: (etag, length) for number, etag, length in parts}
        self._next_part = len(parts) + 1

    # ending

    async def _close(self):
        if not self._written:
            if self._new:
                # An empty new file exists too (Distribution starts its
                # uploads this way): an upload without parts.
                await self._ensure_upload()
                self._cache.remember_upload(self._key, InFlight(self._upload_id, ()))
            return  # otherwise nothing changed: the file is as it was
        await self._drain()
        tail = bytes(self._buffer)
        del self._buffer[:]
        if tail:
            self._start_part(tail)
            await self._drain()
        else:
            await self._ensure_upload()
        parts = self._sorted_parts()
        small = bool(parts) and parts[-1][2] < MIN_PART and parts[-1][2] == len(tail)
        self._cache.remember_upload(self._key, InFlight(
            self._upload_id, parts, tail if small else b""))
        if self._object_stale:
            # The object was the upload's start; the upload holds it all now.
            await self._client.delete_object(self._key, self._path)

    async def _commit(self):
        self._cache.forget(self._key)
        if self._prepare_step == ADOPT_OBJECT:
            self._cache.remember_size(self._key, self.size)
            return  # nothing written to a committed object: it is the file
        await self._drain()
        if self._upload_id is None:
            await self._client.put_object(
                self._key, bytes(self._buffer), self._driver.object_headers(), self._path)
        else:
            if self._buffer or not self._parts:
                self._start_part(bytes(self._buffer))
                del self._buffer[:]
                await self._drain()
            await self._complete([(n, etag) for n, etag, _ in self._sorted_parts()])
        self._cache.remember_size(self._key, self.size)

    async def _complete(self, parts):
        try:
            await self._client.complete_multipart(self._key, self._upload_id, parts, self._path)
        except S3Error as error:
            # The completion may have gone through with its answer lost; a
            # retry then finds the upload gone. The object tells.
            if error.code != "NoSuchUpload":
                raise
            try:
                size, _, _ = await self._client.head_object(self._key, self._path)
            except S3Error:
                raise error
            if size != self.size:
                raise
            log.info("S3 upload {key} was completed by an earlier attempt", key=self._key)

    async def _cancel(self):
        self._cache.forget(self._key)
        while self._in_flight:
            await self._waiters.wait()
        if self._upload_id is not None:
            await self._client.abort_multipart(self._key, self._upload_id, self._path)
        await inflight.abort_all(self._client, self._key, self._path)
        await self._client.delete_objects([self._key], self._path)
