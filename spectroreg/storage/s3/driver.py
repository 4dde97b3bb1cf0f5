"""
``S3Driver``: the ``IStorageDriver`` on an S3 bucket.

Paths map to keys as in Distribution: ``<rootdirectory>/docker/...`` with
``rootdirectory`` stripped of its slashes (no leading slash at all when it
is empty). Directories are key prefixes. Unfinished files are S3 multipart
uploads on their own key, exactly as Distribution keeps them
(``inflight.py``), so either server continues the other's uploads.

Requests per operation: get_content, put_content, read: 1 (read: one more
per dropped connection, resuming at the byte it stopped); stat: 1 listing of
the parent directory (a second one, of the name alone, when the parent holds
more than 1000 entries), then, in a directory that holds something else and
for a name that is no object (or one a multipart upload completed), a
ListMultipartUploads and a ListParts (an unfinished file); list: 1 per 1000
entries; move: a CopyObject (or a multipart copy above
``multipartcopythresholdsize``) and a DELETE, with a HEAD first unless this
process just wrote the source; delete: a listing and a DeleteObjects per
1000 keys, and a ListMultipartUploads unless the path is one object; walk:
one flat listing per 1000 keys; writer: a ListMultipartUploads for a new
file (an older upload on the key is aborted), to continue one a ListParts
when this process left the upload there, else a ListMultipartUploads and a
ListParts, as Distribution.
"""

import math

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from spectroreg.storage.errors import PathNotFound
from spectroreg.storage.interfaces import SKIP_DIR, FileInfo, IStorageDriver
from spectroreg.storage.s3 import inflight
from spectroreg.storage.s3.cache import S3Cache
from spectroreg.storage.s3.client import S3Client
from spectroreg.storage.s3.credentials import CredentialSource
from spectroreg.storage.s3.endpoint import endpoint_from_settings
from spectroreg.storage.s3.errors import S3Error, not_found
from spectroreg.storage.s3.inflight import MIN_PART
from spectroreg.storage.s3.reading import ObjectStream, ReadProducer
from spectroreg.storage.s3.writer import ADOPT_OBJECT, RESEND_TAIL, RESTART, Opening, S3Writer

log = Logger()

MiB = 1024 * 1024
GiB = 1024 * MiB
MAX_PART = 5 * GiB
MAX_PARTS = 10000
MAX_COPY = 5 * GiB  # CopyObject's limit
DELETE_BATCH = 1000
PRESIGN_EXPIRES = 20 * 60  # Distribution's 20 minutes
# Memory per writer is about chunksize × (parts in flight + 1).
WRITER_MEMORY = 48 * MiB


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
        self.cache = S3Cache()
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
        """Release pooled connections. @return: Deferred."""
        return defer.ensureDeferred(self.client.close())

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

    # small files

    def get_content(self, path):
        return defer.ensureDeferred(self._get_content(path))

    async def _get_content(self, path):
        try:
            return await self.client.get_object(self.key(path), path)
        except S3Error as error:
            if not_found(error):
                raise PathNotFound(path)
            raise

    def put_content(self, path, content, durable=True):
        return defer.ensureDeferred(self._put_content(path, content))

    async def _put_content(self, path, content):
        key = self.key(path)
        self.cache.forget(key)
        await self.client.put_object(key, bytes(content), self.object_headers(), path)
        self.cache.remember_size(key, len(content))

    # read

    def read(self, path, consumer, offset=0, length=None):
        return defer.ensureDeferred(self._read(path, consumer, offset, length))

    async def _head_size(self, path, key):
        try:
            size, _, _ = await self.client.head_object(key, path)
        except S3Error as error:
            if not_found(error):
                raise PathNotFound(path)
            raise
        return size

    async def _read(self, path, consumer, offset, length):
        key = self.key(path)
        producer = ReadProducer()
        consumer.registerProducer(producer, True)
        try:
            return await ObjectStream(
                self.client, self._clock, self._head_size, path, key, consumer, producer,
                offset, length).run()
        finally:
            if not producer.stopped:
                consumer.unregisterProducer()

    # writers

    def writer(self, path, append=False, durable=True):
        return defer.ensureDeferred(self._writer(path, append))

    async def _writer(self, path, append):
        key = self.key(path)
        if not append:
            # An older upload on the key would be found before this one.
            await inflight.abort_all(self.client, key, path)
            self.cache.forget(key)
            return S3Writer(self, path, key, Opening(new=True))
        return S3Writer(self, path, key, await self._opening(path, key))

    async def _opening(self, path, key):
        """Where a writer continuing C{key} starts. @raise PathNotFound: nothing there."""
        cached = self.cache.upload_of(key)
        found = await inflight.find(
            self.client, key, path, cached.upload_id if cached is not None else None)
        if found is None:
            # A committed object: its bytes come first (Distribution answers
            # PathNotFound here; being able to is harmless).
            return Opening(prepare=ADOPT_OBJECT, size=await self._head_size(path, key))
        if not found.clean:
            return Opening(found.upload_id, found.parts, prepare=RESTART)
        if found.parts and found.parts[-1][2] < MIN_PART:
            if (cached is not None and cached.upload_id == found.upload_id and cached.tail
                    and inflight.same_parts(cached.parts, found.parts)):
                return Opening(found.upload_id, found.parts, prepare=RESEND_TAIL,
                               tail=cached.tail)
            return Opening(found.upload_id, found.parts, prepare=RESTART)
        return Opening(found.upload_id, found.parts)

    # stat, list

    def stat(self, path):
        return defer.ensureDeferred(self._stat(path))

    async def _stat(self, path):
        if path == "/":
            return FileInfo(path, 0, 0.0, True)
        key = self.key(path)
        # One listing of the parent answers for a file and a directory.
        parent = key.rpartition("/")[0]
        objects, prefixes, token = await self.client.list_objects(
            parent + "/" if parent else "", delimiter="/", path=path)
        found, etag = _stat_from_listing(path, key, objects, prefixes)
        siblings = token is not None or any(name != key for name, _, _, _ in objects) or any(
            prefix != key + "/" for prefix in prefixes)
        if found is None and token is not None:
            # A big directory: ask about this name alone.
            token = None
            while found is None:
                objects, prefixes, token = await self.client.list_objects(
                    key, delimiter="/", token=token, path=path)
                found, etag = _stat_from_listing(path, key, objects, prefixes)
                if token is None:
                    break
        if found is not None and (found.is_dir or not _multipart_etag(etag)):
            return found
        if siblings:
            unfinished = await self._stat_unfinished(path, key)
            if unfinished is not None:
                return unfinished
        if found is None:
            raise PathNotFound(path)
        return found

    async def _stat_unfinished(self, path, key):
        """
        The upload in flight on C{key} as a file, or None. Asked only in a
        directory that holds something else (an upload's ``startedat``), and
        when there is no object at the key or one a multipart upload completed
        (Distribution continuing an upload leaves the bytes so far there while
        the upload goes on): a multipart copy that could not be aborted, alone
        in a blob's directory, is no file, and a missing blob costs no more
        than a listing.
        """
        cached = self.cache.upload_of(key)
        upload = await inflight.find(
            self.client, key, path, cached.upload_id if cached is not None else None)
        if upload is None:
            return None
        modified = upload.initiated if upload.initiated is not None else self._clock.seconds()
        return FileInfo(path, upload.size, modified, False)

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
                if not _hidden(name):
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
        size = self.cache.size_of(src)
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
            if not_found(error):
                raise PathNotFound(source)
            raise
        self.cache.forget(src)
        self.cache.remember_size(dst, size)
        await self.client.delete_object(src, source)

    async def _multipart_copy(self, path, src, dst, size):
        upload_id = await self.client.create_multipart(dst, self.object_headers(), path)
        try:
            chunk = max(self.settings.multipartcopychunksize, math.ceil(size / MAX_PARTS))
            parts = await self.copy_parts(path, dst, upload_id, src, size, chunk)
            await self.client.complete_multipart(
                dst, upload_id, [(n, etag) for n, etag, _ in parts], path)
        except BaseException:
            await self.client.abort_multipart(dst, upload_id, path)
            raise

    async def copy_parts(self, path, key, upload_id, source_key, size, chunk):
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
                return name == key or name.startswith(key + "/") or _hidden_beside(name, key)

        keys = []
        token = None
        while True:
            objects, _, token = await self.client.list_objects(prefix, token=token, path=path)
            keys.extend(name for name, _, _, _ in objects if wanted(name))
            if token is None:
                break
        uploads = []
        if keys != [key]:
            # Unfinished files below (or this one): their multipart uploads
            # go too. Distribution leaves them to the bucket's lifecycle rule.
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
        for name in set(keys) | {name for name, _ in uploads}:
            self.cache.forget(name)

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
                if not _hidden(name):
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


def _stat_from_listing(path, key, objects, prefixes):
    """C{(FileInfo, etag)} of C{key} from a listing page, or C{(None, None)}."""
    for name, size, modified, etag in objects:
        if name == key:
            return FileInfo(path, size, modified, False), etag
    if key + "/" in prefixes:
        # As Distribution: a directory has no modification time on S3.
        return FileInfo(path, 0, 0.0, True), None
    return None, None


def _multipart_etag(etag):
    """Whether an object's ETag says a multipart upload completed it (``"<md5>-<parts>"``)."""
    return etag is not None and "-" in etag


def _hidden(name):
    """
    Whether C{name} is no file: ``~`` never occurs in a storage path, and
    earlier spectroreg versions kept upload state in ``<key>~upload``
    objects; listings skip any left over and deletes take them along.
    """
    return "~" in name.rsplit("/", 1)[-1]


def _hidden_beside(name, key):
    return name.startswith(key + "~") and "/" not in name[len(key):]


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
