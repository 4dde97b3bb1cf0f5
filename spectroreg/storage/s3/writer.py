"""
The S3 ``IFileWriter``: a multipart upload fed in parts of ``chunksize``.

Bytes collect in a buffer; each time it holds ``chunksize`` bytes a part is
cut and uploaded while writing goes on, with at most ``parts_in_flight``
parts uploading at once. ``write()`` fires only when the buffer is below a
part and a slot is free, so memory stays at ``chunksize × (parts_in_flight
+ 1)`` per writer whatever the file size.

- ``close()`` sends the buffer as a part when S3 accepts it as one (5 MiB or
  more) and writes the state object (``state.py``): the file can be
  continued later by any process sharing the bucket.
- ``commit()`` sends the rest as the last part and completes the upload, or
  for a file smaller than one part, simply PUTs it; then it deletes the
  state object.
- ``cancel()`` aborts the upload and deletes the file and its state object.

Requests per close: at most one part and one state PUT; per commit: the last
part, the completion and the state DELETE. Distribution does a
ListMultipartUploads and a ListParts on every resume and re-sends small
parts; here a resume is one GET of the state object.
"""

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from spectroreg.storage.errors import StorageError
from spectroreg.storage.interfaces import IFileWriter
from spectroreg.storage.s3.errors import S3Error
from spectroreg.storage.s3.state import SIZE_HEADER, UploadState, state_key

log = Logger()

MIN_PART = 5 * 1024 * 1024


@implementer(IFileWriter)
class S3Writer:
    """
    @param driver: the L{S3Driver} (client, headers, chunk size).
    @param state: the L{UploadState} to continue.
    @param state_exists: whether a state object is in the bucket now (so
        commit and cancel delete it); None when unknown (a new writer).
    """

    def __init__(self, driver, path, key, state, state_exists=False):
        self._driver = driver
        self._client = driver.client
        self._path = path
        self._key = key
        self._chunk = driver.chunksize
        self._max_in_flight = driver.parts_in_flight
        self._upload_id = state.upload_id
        self._parts = {number: (etag, size) for number, etag, size in state.parts}
        self._next_part = max(self._parts, default=0) + 1
        self._buffer = bytearray(state.tail)
        self._state_exists = state_exists
        self._in_flight = {}
        self._waiters = []
        self._failure = None
        self._create_lock = defer.DeferredLock()
        self._ended = None
        self.size = state.size

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

    # internals

    def _check_open(self):
        if self._ended is not None:
            raise StorageError("writer already {}".format(self._ended), self._path)
        if self._failure is not None:
            raise self._failure

    async def _write(self, data):
        self._check_open()
        self._buffer += data
        self.size += len(data)
        while len(self._buffer) >= self._chunk:
            with memoryview(self._buffer) as view:
                part = bytes(view[:self._chunk])
            del self._buffer[:self._chunk]
            self._start_part(part)
            while len(self._in_flight) >= self._max_in_flight and self._failure is None:
                await self._wait_one()
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
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                waiter.callback(None)

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

    def _wait_one(self):
        waiter = defer.Deferred()
        self._waiters.append(waiter)
        return waiter

    async def _drain(self):
        while self._in_flight:
            await self._wait_one()
        if self._failure is not None:
            raise self._failure

    def _state(self):
        parts = [(n, etag, size) for n, (etag, size) in sorted(self._parts.items())]
        return UploadState(self._upload_id, parts, self._buffer)

    async def _close(self):
        await self._drain()
        if len(self._buffer) >= MIN_PART:
            self._start_part(bytes(self._buffer))
            del self._buffer[:]
            await self._drain()
        state = self._state()
        self._driver.forget_state(self._key)
        etag = await self._client.put_object(
            state_key(self._key), state.encode(),
            {"Content-Type": "application/octet-stream", SIZE_HEADER: str(state.size)},
            self._path)
        self._state_exists = True
        self._driver.remember_state(self._key, etag, state)

    async def _commit(self):
        self._driver.forget_state(self._key)
        await self._drain()
        if self._upload_id is None:
            await self._client.put_object(
                self._key, bytes(self._buffer), self._driver.object_headers(), self._path)
        else:
            if self._buffer or not self._parts:
                self._start_part(bytes(self._buffer))
                del self._buffer[:]
                await self._drain()
            parts = [(n, etag) for n, (etag, _) in sorted(self._parts.items())]
            await self._complete(parts)
        self._driver.remember_size(self._key, self.size)
        if self._state_exists is not False:
            self._driver.delete_state_later(self._key, self._path)

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
        self._driver.forget_state(self._key)
        while self._in_flight:
            await self._wait_one()
        if self._upload_id is not None:
            await self._client.abort_multipart(self._key, self._upload_id, self._path)
        await self._client.delete_objects([self._key, state_key(self._key)], self._path)
        self._driver.forget_size(self._key)
