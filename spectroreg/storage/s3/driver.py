"""
``S3Driver``: the ``IStorageDriver`` on an S3 bucket.

Paths map to keys as in Distribution: ``<rootdirectory>/docker/...`` with
``rootdirectory`` stripped of its slashes (no leading slash at all when it
is empty). Directories are key prefixes. Unfinished writers keep their state
in the bucket (``state.py``).

Requests per operation: get_content, put_content, read: 1 (read: one more
per dropped connection, resuming at the byte it stopped); stat: 1 listing of
the parent directory (a second one, of the name alone, when the parent holds
more than 1000 entries; a HEAD for a closed, uncommitted file written by
another process); list: 1 per 1000 entries;
move: a CopyObject (or a multipart copy above ``multipartcopythresholdsize``)
and a DELETE (of the source and, just after a commit, its state object), with
a HEAD first unless this process just wrote the source; delete: a listing and
a DeleteObjects per 1000 keys, plus a ListMultipartUploads when unfinished
files are below; walk: one flat listing per 1000 keys; writer: none for a
new file, one GET of the state object to continue one, or none when this
process wrote that state object and a listing less than 5 s old shows it
unchanged, and none to fail with PathNotFound when such a listing shows
neither the file nor its state object (the registry stats an upload's
``startedat`` before continuing its ``data``: that listing answers both).
"""

import collections
import math

from twisted.internet import defer, task
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from spectroreg.storage.errors import InvalidOffset, PathNotFound, StorageError
from spectroreg.storage.interfaces import SKIP_DIR, FileInfo, IStorageDriver
from spectroreg.storage.s3.client import S3Client, raw_header
from spectroreg.storage.s3.credentials import CredentialSource
from spectroreg.storage.s3.endpoint import endpoint_from_settings
from spectroreg.storage.s3.errors import S3Error
from spectroreg.storage.s3.state import SIZE_HEADER, UploadState, is_hidden, state_key
from spectroreg.storage.s3.transport import BodyStreamer
from spectroreg.storage.s3.writer import MIN_PART, S3Writer

log = Logger()

MiB = 1024 * 1024
GiB = 1024 * MiB
MAX_PART = 5 * GiB
MAX_PARTS = 10000
MAX_COPY = 5 * GiB  # CopyObject's limit
DELETE_BATCH = 1000
PRESIGN_EXPIRES = 20 * 60  # Distribution's 20 minutes
STATE_DELETE_DELAY = 2.0
# How long a listing that showed a state object unchanged is believed, and
# how many tail bytes of state objects are kept in memory at most.
STATE_TRUST_SECONDS = 5.0
STATE_CACHE_TAIL_BYTES = 16 * MiB
# Listings remembered for writers are of small directories (an upload's).
LISTING_CACHE_NAMES = 64
# Memory per writer is about chunksize × (parts in flight + 1).
WRITER_MEMORY = 48 * MiB


def _not_found(error):
    return isinstance(error, S3Error) and (
        error.code in ("NoSuchKey", "NotFound") or error.status == 404)


def check_settings(settings):
    """Distribution's limits on the sizes; @raise ValueError: naming the key."""
    if settings.chunksize < MIN_PART:
        raise ValueError("storage.s3.chunksize must be at least {} (5 MiB), got {}".format(
            MIN_PART, settings.chunksize))
    if settings.chunksize > MAX_PART:
        raise ValueError("storage.s3.chunksize must be at most 5 GiB")
    if not MIN_PART <= settings.multipartcopychunksize <= MAX_PART:
        raise ValueError("storage.s3.multipartcopychunksize must be between 5 MiB and 5 GiB")
    if settings.multipartcopymaxconcurrency < 1:
        raise ValueError("storage.s3.multipartcopymaxconcurrency must be at least 1")
    if not 0 <= settings.multipartcopythresholdsize <= MAX_COPY:
        raise ValueError("storage.s3.multipartcopythresholdsize must be between 0 and 5 GiB")
    if not settings.bucket:
        raise ValueError("storage.s3.bucket is required")


@implementer(IPushProducer)
class _ReadProducer:
    """The producer a read registers; forwards to the body being streamed."""

    def __init__(self):
        self.paused = False
        self.stopped = False
        self.streamer = None

    def pauseProducing(self):
        self.paused = True
        if self.streamer is not None:
            self.streamer.pause()

    def resumeProducing(self):
        self.paused = False
        if self.streamer is not None:
            self.streamer.resume()

    def stopProducing(self):
        self.stopped = True
        if self.streamer is not None:
            self.streamer.stop(Failure(ConnectionDone("consumer stopped the read")))


@implementer(IStorageDriver)
class S3Driver:
    """
    @param settings: an L{S3Settings}.
    @param reactor: the reactor (default: the global one, imported lazily).
    @param clock: for retries and timeouts (default: C{reactor}).
    @param redirect: whether C{redirect_url} hands out presigned URLs.
    @param retry: a L{RetryPolicy}.
    @param parts_in_flight: parts a writer uploads at once (default: as many
        as fit in 48 MiB, 1 to 4).
    @param client: an L{S3Client} to use instead of building one (tests).
    """

    name = "s3"

    def __init__(self, settings, reactor=None, clock=None, redirect=True, retry=None,
                 parts_in_flight=None, client=None, request_timeout=60.0, idle_timeout=60.0):
        check_settings(settings)
        if reactor is None:
            from twisted.internet import reactor
        self._reactor = reactor
        self._clock = clock if clock is not None else reactor
        self.settings = settings
        self.redirect = redirect
        if client is None:
            credentials = CredentialSource(
                settings.accesskey, settings.secretkey, reactor,
                sessiontoken=getattr(settings, "sessiontoken", None))
            client = S3Client(
                endpoint_from_settings(settings), settings.bucket, settings.region, credentials,
                reactor=reactor, clock=self._clock, useragent=settings.useragent,
                skipverify=settings.skipverify, retry=retry, request_timeout=request_timeout,
                idle_timeout=idle_timeout)
        self.client = client
        self.chunksize = settings.chunksize
        if parts_in_flight is None:
            parts_in_flight = max(1, min(4, WRITER_MEMORY // settings.chunksize - 1))
        self.parts_in_flight = parts_in_flight
        self._root = settings.rootdirectory.strip("/")
        # Sizes of files this process just committed: the move that
        # publishes an upload then needs no HEAD to pick its copy method.
        self._sizes = collections.OrderedDict()
        # State objects of just-committed files, deleted with the move that
        # usually follows (one request less), or after STATE_DELETE_DELAY.
        self._pending_state_deletes = {}
        self._state_deletes_running = set()
        # key -> (etag, UploadState) of state objects this process wrote,
        # and state key -> (etag, when) of state objects seen in listings:
        # a writer continuing a file whose state object a fresh listing
        # shows unchanged needs no GET.
        self._states = collections.OrderedDict()
        self._seen_states = collections.OrderedDict()
        # directory prefix -> (when, names) of complete listings a stat
        # made, dropped when this process writes there: a writer asked to
        # continue a file such a fresh listing shows neither as an object nor
        # as a state object fails without a request.
        self._listings = collections.OrderedDict()
        if not settings.v4auth:
            log.warn("storage.s3.v4auth: false is not supported; signing with SigV4")

    @classmethod
    def from_settings(cls, s3_settings, reactor=None, redirect=True):
        """The driver for an L{S3Settings} (what the storage factory calls)."""
        from spectroreg.config.errors import ConfigError

        try:
            return cls(s3_settings, reactor=reactor, redirect=redirect)
        except ValueError as error:
            raise ConfigError(str(error))

    def __repr__(self):
        return "<S3Driver {}:{}>".format(self.settings.bucket, self._root or "/")

    def close(self):
        """Finish pending deletes, release pooled connections. @return: Deferred."""
        return defer.ensureDeferred(self._close())

    async def _close(self):
        for key in list(self._pending_state_deletes):
            try:
                await self._flush_state_delete(key)
            except StorageError as error:
                log.warn("could not delete {key}: {error}", key=state_key(key), error=error)
        while self._state_deletes_running:
            await self._state_deletes_running.pop()
        await self.client.close()

    def delete_state_later(self, key, path):
        """The state object of committed C{key} goes with its move, or soon."""
        self._cancel_state_delete(key)
        self._pending_state_deletes[key] = self._clock.callLater(
            STATE_DELETE_DELAY, self._delayed_state_delete, key, path)

    def _cancel_state_delete(self, key):
        call = self._pending_state_deletes.pop(key, None)
        if call is not None and call.active():
            call.cancel()
        return call is not None

    def _delayed_state_delete(self, key, path):
        self._pending_state_deletes.pop(key, None)
        d = defer.ensureDeferred(self.client.delete_object(state_key(key), path))
        d.addErrback(lambda failure: log.failure(
            "deleting {key}", failure, key=state_key(key)))
        self._state_deletes_running.add(d)
        d.addBoth(lambda _: self._state_deletes_running.discard(d))

    async def _flush_state_delete(self, key):
        if self._cancel_state_delete(key):
            await self.client.delete_object(state_key(key))

    # keys

    def key(self, path):
        """The object key of storage path C{path}."""
        relative = path.strip("/")
        if not self._root:
            return relative
        return self._root + "/" + relative if relative else self._root

    def _dir_prefix(self, path):
        key = self.key(path)
        return key + "/" if key else ""

    def _path(self, key):
        if self._root:
            key = key[len(self._root) + 1:]
        return "/" + key

    def object_headers(self):
        """Headers every object is created with (PUT, copy, multipart)."""
        s = self.settings
        headers = {"Content-Type": "application/octet-stream"}
        if s.encrypt:
            if s.keyid:
                headers["x-amz-server-side-encryption"] = "aws:kms"
                headers["x-amz-server-side-encryption-aws-kms-key-id"] = s.keyid
            else:
                headers["x-amz-server-side-encryption"] = "AES256"
        if s.storageclass and s.storageclass.upper() != "NONE":
            headers["x-amz-storage-class"] = s.storageclass
        if s.objectacl and s.objectacl.lower() != "none":
            headers["x-amz-acl"] = s.objectacl
        return headers

    def remember_size(self, key, size):
        self._forget_listing(key)
        self._sizes[key] = size
        self._sizes.move_to_end(key)
        while len(self._sizes) > 1000:
            self._sizes.popitem(last=False)

    def forget_size(self, key):
        self._forget_listing(key)
        self._sizes.pop(key, None)

    def _forget_listing(self, key):
        self._listings.pop(key.rpartition("/")[0] + "/", None)

    def _remember_listing(self, prefix, objects):
        self._listings[prefix] = (self._clock.seconds(), frozenset(name for name, _, _, _ in objects))
        self._listings.move_to_end(prefix)
        while len(self._listings) > 1000:
            self._listings.popitem(last=False)

    def _known_absent(self, key):
        """Whether a fresh listing shows neither C{key} nor its state object."""
        listing = self._listings.get(key.rpartition("/")[0] + "/")
        if listing is None or self._clock.seconds() - listing[0] > STATE_TRUST_SECONDS:
            return False
        return key not in listing[1] and state_key(key) not in listing[1]

    def remember_state(self, key, etag, state):
        """A writer wrote C{state} (answered with C{etag}) as C{key}'s state object."""
        self._states[key] = (etag, state)
        self._states.move_to_end(key)
        tails = 0
        for cached_key in reversed(list(self._states)):
            tails += len(self._states[cached_key][1].tail)
            if tails > STATE_CACHE_TAIL_BYTES or len(self._states) > 1000:
                self._states.pop(cached_key)

    def forget_state(self, key):
        self._forget_listing(key)
        self._states.pop(key, None)
        self._seen_states.pop(state_key(key), None)

    def _trusted_state(self, key):
        """C{key}'s state as this process wrote it, if a fresh listing shows it unchanged."""
        cached = self._states.get(key)
        seen = self._seen_states.get(state_key(key))
        if cached is None or seen is None or not _same_etag(cached[0], seen[0]):
            return None
        if self._clock.seconds() - seen[1] > STATE_TRUST_SECONDS:
            return None
        state = cached[1]
        return UploadState(state.upload_id, state.parts, state.tail)

    # small files

    def get_content(self, path):
        return defer.ensureDeferred(self._get_content(path))

    async def _get_content(self, path):
        try:
            return await self.client.get_object(self.key(path), path)
        except S3Error as error:
            if _not_found(error):
                raise PathNotFound(path)
            raise

    def put_content(self, path, content):
        return defer.ensureDeferred(self._put_content(path, content))

    async def _put_content(self, path, content):
        key = self.key(path)
        self.forget_size(key)
        await self.client.put_object(key, bytes(content), self.object_headers(), path)
        self.remember_size(key, len(content))

    # read

    def read(self, path, consumer, offset=0, length=None):
        return defer.ensureDeferred(self._read(path, consumer, offset, length))

    async def _head_size(self, path, key):
        try:
            size, _, _ = await self.client.head_object(key, path)
        except S3Error as error:
            if _not_found(error):
                raise PathNotFound(path)
            raise
        return size

    async def _read(self, path, consumer, offset, length):
        key = self.key(path)
        producer = _ReadProducer()
        consumer.registerProducer(producer, True)
        try:
            return await self._stream(path, key, consumer, producer, offset, length)
        finally:
            if not producer.stopped:
                consumer.unregisterProducer()

    async def _stream(self, path, key, consumer, producer, offset, length):
        if length == 0:
            if offset > await self._head_size(path, key):
                raise InvalidOffset(path, offset)
            return 0
        written = 0
        etag = None
        failures = 0
        while True:
            if producer.stopped:
                raise ConnectionDone("consumer stopped the read")
            start = offset + written
            byte_range = "bytes={}-".format(start)
            if length is not None:
                byte_range += str(offset + length - 1)
            try:
                response = await self.client.open_object(key, path, byte_range, etag)
            except S3Error as error:
                if _not_found(error):
                    raise PathNotFound(path)
                if error.status == 416 or error.code == "InvalidRange":
                    size = await self._head_size(path, key)
                    if start == size:
                        return written
                    raise InvalidOffset(path, offset)
                raise
            if etag is None:
                etag = raw_header(response, b"etag")
            if response.code == 200 and start > 0:
                response.deliverBody(_Ignore())
                raise StorageError("S3 ignored the Range of a GET", path)
            if producer.stopped:
                response.deliverBody(_Ignore())
                raise ConnectionDone("consumer stopped the read")
            streamer = BodyStreamer(consumer, self._clock, self.client.idle_timeout,
                                    paused=producer.paused)
            producer.streamer = streamer
            response.deliverBody(streamer)
            try:
                await streamer.finished
                return written + streamer.received
            except Exception as error:
                written += streamer.received
                producer.streamer = None
                if producer.stopped:
                    raise ConnectionDone("consumer stopped the read")
                failures += 1
                if failures >= self.client.retry.attempts:
                    raise S3Error("reading {} failed after {} attempts: {}".format(
                        key, failures, error), path, retriable=True)
                if length is not None and written >= length:
                    return written
                log.info("S3 GET {key} broke after {n} bytes ({error}); resuming",
                         key=key, n=written, error=error)
                await task.deferLater(self._clock, self.client.retry.delay(failures),
                                      lambda: None)

    # writers

    def writer(self, path, append=False):
        return defer.ensureDeferred(self._writer(path, append))

    async def _load_state(self, path, key):
        try:
            data = await self.client.get_object(state_key(key), path)
        except S3Error as error:
            if _not_found(error):
                return None
            raise
        try:
            return UploadState.decode(data)
        except ValueError as error:
            raise StorageError("{}: {}".format(state_key(key), error), path)

    async def _writer(self, path, append):
        key = self.key(path)
        absent = append and self._known_absent(key)
        self.forget_size(key)
        await self._flush_state_delete(key)
        if not append:
            # No look for an older state object: closing this writer replaces
            # it, committing or cancelling deletes it, and a multipart
            # upload it named is aborted when its directory is deleted.
            return S3Writer(self, path, key, UploadState(), state_exists=None)
        if absent:
            raise PathNotFound(path)
        state = self._trusted_state(key)
        if state is None:
            state = await self._load_state(path, key)
        if state is not None:
            return S3Writer(self, path, key, state, state_exists=True)
        return await self._writer_from_object(path, key)

    async def _writer_from_object(self, path, key):
        """Append to a committed object: it becomes the first part(s)."""
        size = await self._head_size(path, key)
        if size < MIN_PART:
            data = await self.client.get_object(key, path) if size else b""
            return S3Writer(self, path, key, UploadState(None, (), data))
        upload_id = await self.client.create_multipart(key, self.object_headers(), path)
        parts = await self._copy_parts(path, key, upload_id, key, size, MAX_PART)
        return S3Writer(self, path, key, UploadState(upload_id, parts))

    # stat, list

    def stat(self, path):
        return defer.ensureDeferred(self._stat(path))

    async def _stat(self, path):
        if path == "/":
            return FileInfo(path, 0, 0.0, True)
        key = self.key(path)
        # One listing of the parent answers for a file, an unfinished file
        # and a directory, and shows the state objects of unfinished
        # siblings (a writer continuing one of them then needs no GET).
        parent = key.rpartition("/")[0]
        objects, prefixes, token = await self.client.list_objects(
            parent + "/" if parent else "", delimiter="/", path=path)
        if token is None and parent and len(objects) <= LISTING_CACHE_NAMES:
            self._remember_listing(parent + "/", objects)
        found = await self._stat_from_listing(path, key, objects, prefixes)
        if found is not None:
            return found
        if token is not None:
            # A big directory: ask about this name alone.
            token = None
            while True:
                objects, prefixes, token = await self.client.list_objects(
                    key, delimiter="/", token=token, path=path)
                found = await self._stat_from_listing(path, key, objects, prefixes)
                if found is not None:
                    return found
                if token is None:
                    break
        raise PathNotFound(path)

    async def _stat_from_listing(self, path, key, objects, prefixes):
        """The L{FileInfo} of C{key} from a listing page, or None."""
        state = None
        now = self._clock.seconds()
        for name, size, modified, etag in objects:
            if name == key:
                return FileInfo(path, size, modified, False)
            if is_hidden(name):
                self._seen_states[name] = (etag, now)
                self._seen_states.move_to_end(name)
                if name == state_key(key):
                    state = (modified, etag)
        while len(self._seen_states) > 1000:
            self._seen_states.popitem(last=False)
        if state is not None:
            modified, etag = state
            cached = self._states.get(key)
            if cached is not None and _same_etag(cached[0], etag):
                return FileInfo(path, cached[1].size, modified, False)
            response = await self.client.request("HEAD", state_key(key), path=path)
            size = int(response.header(SIZE_HEADER.encode(), "0"))
            return FileInfo(path, size, modified, False)
        if key + "/" in prefixes:
            # As Distribution: a directory has no modification time on S3.
            return FileInfo(path, 0, 0.0, True)
        return None

    def list(self, path):
        return defer.ensureDeferred(self._list(path))

    async def _list(self, path):
        prefix = self._dir_prefix(path)
        children = set()
        token = None
        while True:
            objects, prefixes, token = await self.client.list_objects(
                prefix, delimiter="/", token=token, path=path)
            for name, _, _, _ in objects:
                if not is_hidden(name):
                    children.add(self._path(name))
            for name in prefixes:
                children.add(self._path(name.rstrip("/")))
            if token is None:
                break
        if not children and path != "/":
            raise PathNotFound(path)
        return sorted(children)

    # move

    def move(self, source, destination):
        return defer.ensureDeferred(self._move(source, destination))

    async def _move(self, source, destination):
        src = self.key(source)
        dst = self.key(destination)
        size = self._sizes.get(src)
        if size is None or size > self.settings.multipartcopythresholdsize:
            size = await self._head_size(source, src)
        if src == dst:
            return
        try:
            if size <= self.settings.multipartcopythresholdsize:
                await self.client.copy_object(src, dst, self.object_headers(), destination)
            else:
                await self._multipart_copy(source, src, dst, size)
        except S3Error as error:
            if _not_found(error):
                raise PathNotFound(source)
            raise
        self.forget_size(src)
        self.remember_size(dst, size)
        if self._cancel_state_delete(src):
            await self.client.delete_objects([src, state_key(src)], source)
        else:
            await self.client.delete_object(src, source)

    async def _multipart_copy(self, path, src, dst, size):
        upload_id = await self.client.create_multipart(dst, self.object_headers(), path)
        try:
            chunk = max(self.settings.multipartcopychunksize, math.ceil(size / MAX_PARTS))
            parts = await self._copy_parts(path, dst, upload_id, src, size, chunk)
            await self.client.complete_multipart(
                dst, upload_id, [(n, etag) for n, etag, _ in parts], path)
        except BaseException:
            await self.client.abort_multipart(dst, upload_id, path)
            raise

    async def _copy_parts(self, path, key, upload_id, source_key, size, chunk):
        """UploadPartCopy of C{source_key} in C{chunk}-sized ranges, bounded concurrency."""
        count = max(1, math.ceil(size / chunk))
        limit = defer.DeferredSemaphore(self.settings.multipartcopymaxconcurrency)

        def copy(number):
            first = (number - 1) * chunk
            last = min(size, first + chunk) - 1
            return limit.run(lambda: defer.ensureDeferred(self.client.upload_part_copy(
                key, upload_id, number, source_key, first, last, path)))

        results = await _gather([copy(number) for number in range(1, count + 1)])
        return [
            (number, etag, min(size, number * chunk) - (number - 1) * chunk)
            for number, etag in enumerate(results, 1)
        ]

    # delete

    def delete(self, path):
        return defer.ensureDeferred(self._delete(path))

    async def _delete(self, path):
        key = self.key(path)
        if path == "/":
            prefix = self._dir_prefix(path)

            def wanted(name):
                return True
        else:
            prefix = key

            def wanted(name):
                return name in (key, state_key(key)) or name.startswith(key + "/")

        keys = []
        token = None
        while True:
            objects, _, token = await self.client.list_objects(prefix, token=token, path=path)
            keys.extend(name for name, _, _, _ in objects if wanted(name))
            if token is None:
                break
        uploads = []
        if any(is_hidden(name) for name in keys):
            # Unfinished files below: abort every multipart upload there
            # (also ones a replaced state object named). Uploads orphaned by
            # a crash before any close are left to the bucket's lifecycle
            # rule (AbortIncompleteMultipartUpload), as with Distribution.
            uploads = [
                (name, upload_id)
                for name, upload_id, _ in await self.client.list_multipart_uploads(prefix, path)
                if wanted(name)
            ]
        if not keys and not uploads:
            if path == "/":
                return
            raise PathNotFound(path)
        for name, upload_id in uploads:
            await self.client.abort_multipart(name, upload_id, path)
        for start in range(0, len(keys), DELETE_BATCH):
            await self.client.delete_objects(keys[start:start + DELETE_BATCH], path)
        for name in keys:
            self.forget_size(name)
            self.forget_state(name)
            self._cancel_state_delete(name)

    # redirects

    def redirect_url(self, path, method="GET"):
        if not self.redirect or method not in ("GET", "HEAD"):
            return defer.succeed(None)
        return defer.ensureDeferred(
            self.client.presign(self.key(path), method, PRESIGN_EXPIRES))

    # walk

    def walk(self, path, visit):
        return defer.ensureDeferred(self._walk(path, visit))

    async def _walk(self, path, visit):
        prefix = self._dir_prefix(path)
        tree = _Node()
        token = None
        while True:
            objects, _, token = await self.client.list_objects(prefix, token=token, path=path)
            for name, size, modified, _ in objects:
                if not is_hidden(name):
                    tree.add(name[len(prefix):].split("/"), size, modified)
            if token is None:
                break
        if not tree.files and not tree.dirs:
            if path == "/":
                return
            raise PathNotFound(path)
        base = "" if path == "/" else path
        await self._visit_tree(base, tree, visit)

    async def _visit_tree(self, base, node, visit):
        for name in sorted(set(node.files) | set(node.dirs)):
            child = base + "/" + name
            if name in node.files:
                size, modified = node.files[name]
                await _call_visit(visit, FileInfo(child, size, modified, False))
            sub = node.dirs.get(name)
            if sub is not None:
                decision = await _call_visit(visit, FileInfo(child, 0, sub.modified, True))
                if decision is not SKIP_DIR:
                    await self._visit_tree(child, sub, visit)


class _Node:
    __slots__ = ("files", "dirs", "modified")

    def __init__(self):
        self.files = {}
        self.dirs = {}
        self.modified = 0.0

    def add(self, parts, size, modified):
        node = self
        for part in parts[:-1]:
            node.modified = max(node.modified, modified)
            node = node.dirs.setdefault(part, _Node())
        node.modified = max(node.modified, modified)
        if parts[-1]:
            node.files[parts[-1]] = (size, modified)


def _same_etag(a, b):
    return a is not None and b is not None and a.strip('"') == b.strip('"')


async def _call_visit(visit, info):
    decision = visit(info)
    if isinstance(decision, defer.Deferred) or hasattr(decision, "__await__"):
        decision = await decision
    return decision


async def _gather(deferreds):
    """Wait for all; raise the first failure's own exception."""
    try:
        return await defer.gatherResults(deferreds, consumeErrors=True)
    except defer.FirstError as error:
        error.subFailure.raiseException()


class _Ignore:
    """Discards a response body we do not want."""

    def makeConnection(self, transport):
        transport.stopProducing()

    def dataReceived(self, data):
        pass

    def connectionLost(self, reason):
        pass
