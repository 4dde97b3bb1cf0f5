"""
The upload store: resumable blob uploads kept in storage
(``_uploads/<id>/data`` + ``startedat``), so another daemon sharing the
storage, or this one after a restart, can continue them.

An upload is started (L{UploadStore.start}), opened for appending
(L{UploadStore.open}, one writer at a time per upload), and its
L{UploadWriter} either closed (the upload stays resumable), committed
under a digest (verified, published as a blob, linked) or cancelled.
Uploads nobody finished are purged (L{UploadStore.purge}).
"""

import datetime
import uuid as uuidlib

from twisted.internet import defer
from twisted.internet.interfaces import IConsumer
from twisted.logger import Logger
from zope.interface import implementer

from spectroreg.bounded import LRU
from spectroreg.logging import debug_enabled
from spectroreg.registry import paths
from spectroreg.registry.blobs import BlobDescriptor
from spectroreg.registry.digests import CANONICAL, Digest
from spectroreg.registry.errors import RegistryError, UploadOffsetMismatch, upload_unknown
from spectroreg.registry.interfaces import IUploadStore, IUploadWriter
from spectroreg.registry.names import is_valid_upload_id
from spectroreg.storage.errors import PathNotFound
from spectroreg.storage.interfaces import IHashingWriter

log = Logger()


def debug_upload_state(name, upload_id, state, size=None):
    """A debug line for a change of an upload's state (C{size}: bytes held, if known)."""
    if debug_enabled():
        log.debug("upload {upload_id} in {name}: {state}{at}", name=name, upload_id=upload_id,
                  state=state, at="" if size is None else " at {} bytes".format(size))


def format_rfc3339(when):
    """As Distribution writes ``startedat``: Go's RFC 3339, UTC, whole seconds."""
    return datetime.datetime.fromtimestamp(when, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text):
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # Go writes up to nanoseconds; Python parses up to microseconds.
    if "." in text:
        head, rest = text.split(".", 1)
        digits = ""
        while rest and rest[0].isdigit():
            digits += rest[0]
            rest = rest[1:]
        text = "{}.{}{}".format(head, (digits + "000000")[:6], rest)
    parsed = datetime.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.timestamp()


@implementer(IConsumer)
class HashingConsumer:
    """Consumes a driver read, hashing and counting."""

    def __init__(self, hasher):
        self.hasher = hasher
        self.size = 0
        self.producer = None

    def registerProducer(self, producer, streaming):
        self.producer = producer
        if not streaming:
            # A pull producer wants to be asked.
            self._pull = True
            producer.resumeProducing()

    def unregisterProducer(self):
        self.producer = None

    def write(self, data):
        self.hasher.update(data)
        self.size += len(data)
        if self.producer is not None and getattr(self, "_pull", False):
            self.producer.resumeProducing()



def digest_hasher():
    """A fresh hasher of the canonical algorithm (the in-memory fast path)."""
    return Digest(CANONICAL, "0" * 64).hasher()


class UploadLocks:
    """One lock per upload held (name, upload id): writers of one upload wait for each other."""

    def __init__(self):
        self._locks = {}

    async def acquire(self, key):
        """@return: a function that releases the lock (once; later calls do nothing)."""
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = defer.DeferredLock()
        await lock.acquire()
        released = []

        def release():
            if not released:
                released.append(True)
                lock.release()
                if not lock.locked and not lock.waiting:
                    self._locks.pop(key, None)

        return release

    def __len__(self):
        """How many uploads are locked or waited for."""
        return len(self._locks)


class HashStates:
    """
    (name, upload id) -> (offset, hasher) of uploads this process wrote:
    the fast path that saves re-reading an upload to hash it; recomputed
    from ``data`` when absent. At most C{capacity} (the uploads written to
    most recently): uploads started and abandoned (until the purge removes
    them) cannot make it grow without bound.
    """

    CAPACITY = 10000

    def __init__(self, capacity=CAPACITY):
        self._states = LRU(capacity)

    def remember(self, key, offset, hasher):
        """Remember the hash of the upload's first C{offset} bytes (C{hasher} None: forget it)."""
        if hasher is None:
            self.forget(key)
        else:
            self._states.put(key, (offset, hasher.copy()))

    def forget(self, key):
        self._states.pop(key, None)

    def resume(self, key, offset):
        """A copy of the hasher for the upload's first C{offset} bytes, or None."""
        state = self._states.get(key)
        return state[1].copy() if state is not None and state[0] == offset else None

    def __contains__(self, key):
        return self._states.peek(key) is not None

    def __len__(self):
        return len(self._states)


@implementer(IUploadWriter)
class UploadWriter:
    """
    Appends to one upload's ``data``, hashing (sha256) on the way; holds the
    upload's lock until it is closed, committed or cancelled.

    Obtained from L{UploadStore.open}.
    """

    def __init__(self, store, name, upload_id, writer, hasher, release):
        self._store = store
        self.name = name
        self.upload_id = upload_id
        self._writer = writer
        self._hasher = hasher
        self._release = release
        self.open = True
        # A writer that hashes where it writes (the filesystem's, in its
        # thread) takes the hashing off the reactor thread.
        self._hash_here = not (hasher is not None and IHashingWriter.providedBy(writer)
                               and writer.hash_with(hasher))
        debug_upload_state(name, upload_id, "opened for appending", writer.size)

    @property
    def size(self):
        return self._writer.size

    def write(self, data):
        """@return: Deferred firing when more may be written (back-pressure)."""
        if self._hasher is not None and self._hash_here:
            self._hasher.update(data)
        d = self._writer.write(data)
        d.addErrback(self._write_failed)
        return d

    def _write_failed(self, failure):
        # The hash now covers bytes storage may not hold: recompute later.
        self._hasher = None
        return failure

    async def close(self):
        """Persist what was written; the upload stays resumable."""
        if not self.open:
            return
        self.open = False
        key = (self.name, self.upload_id)
        try:
            await self._writer.close()
            self._store.hashes.remember(key, self._writer.size, self._hasher)
            debug_upload_state(self.name, self.upload_id, "closed, resumable", self._writer.size)
        except Exception:
            self._store.hashes.forget(key)
            raise
        finally:
            self._release()

    async def commit(self, digest):
        """
        Complete the upload as blob C{digest}: see L{UploadStore.publish}.

        @return: L{BlobDescriptor}.
        @raise RegistryError: DIGEST_INVALID (the upload is removed).
        """
        self.open = False
        try:
            await self._writer.commit()
            debug_upload_state(self.name, self.upload_id, "complete", self._writer.size)
        finally:
            self._release()
        return await self._store.publish(self.name, self.upload_id, digest, self._writer.size, self._hasher)

    async def cancel(self):
        """
        Drop what was written and remove the upload, still holding it: a
        writer waiting for it then finds it gone.
        """
        self.open = False
        try:
            await self._writer.cancel()
            debug_upload_state(self.name, self.upload_id, "cancelled", self._writer.size)
            await self._store.remove(self.name, self.upload_id)
        finally:
            self._release()


@implementer(IUploadStore)
class UploadStore:
    """
    @param io: the L{spectroreg.registry.storeio.StoreIO} every store shares.
    @param blobs: the L{spectroreg.registry.blobs.BlobStore} uploads are published to.
    @ivar locks: L{UploadLocks} of the uploads being written.
    @ivar hashes: L{HashStates} of the uploads this process wrote.
    """

    def __init__(self, io, blobs):
        self._io = io
        self._blobs = blobs
        self.locks = UploadLocks()
        self.hashes = HashStates()

    async def start(self, name):
        """Create an upload. @return: its id (str)."""
        self._io.check_writable()
        upload_id = str(uuidlib.uuid4())
        started = format_rfc3339(self._io.now()).encode("ascii")
        driver = self._io.driver
        # Not flushed to disk: a start a power loss takes away is an upload
        # the client finds unknown and starts again. Both files at once.
        putting = driver.put_content(paths.upload_startedat(name, upload_id), started, durable=False)
        # An empty ``data`` too, as Distribution starts an upload: the other
        # kind in a mixed fleet continues only an upload whose data exists
        # (on S3, an upload in flight on the key).
        try:
            writer = await driver.writer(paths.upload_data(name, upload_id), durable=False)
            await writer.close()
        finally:
            await putting
        self.hashes.remember((name, upload_id), 0, digest_hasher())
        debug_upload_state(name, upload_id, "started", 0)
        return upload_id

    async def exists(self, name, upload_id):
        if not is_valid_upload_id(upload_id):
            # Not an id we (or Distribution) hand out, and no storage path.
            return False
        return await self._io.exists(paths.upload_startedat(name, upload_id))

    async def size(self, name, upload_id):
        """Bytes received so far. @raise RegistryError: BLOB_UPLOAD_UNKNOWN."""
        if not await self.exists(name, upload_id):
            raise upload_unknown(upload_id)
        try:
            info = await self._io.driver.stat(paths.upload_data(name, upload_id))
        except PathNotFound:
            return 0
        return info.size

    async def open(self, name, upload_id, offset=None):
        """
        Open the upload for appending. Concurrent writers to one upload wait
        for each other.

        @param offset: where the client says its bytes start, if it says.
        @return: L{UploadWriter}.
        @raise RegistryError: BLOB_UPLOAD_UNKNOWN; L{UploadOffsetMismatch}
            when C{offset} is not the upload's size.
        """
        self._io.check_writable()
        release = await self.locks.acquire((name, upload_id))
        try:
            if not await self.exists(name, upload_id):
                raise upload_unknown(upload_id)
            data_path = paths.upload_data(name, upload_id)
            try:
                writer = await self._io.driver.writer(data_path, append=True)
            except PathNotFound:
                writer = await self._io.driver.writer(data_path)
            if offset is not None and offset != writer.size:
                await writer.close()
                raise UploadOffsetMismatch(offset, writer.size)
            hasher = self.hashes.resume((name, upload_id), writer.size)
            return UploadWriter(self, name, upload_id, writer, hasher, release)
        except BaseException:
            release()
            raise

    async def _hash_stored(self, path, digest):
        hasher = digest.hasher()
        consumer = HashingConsumer(hasher)
        try:
            await self._io.driver.read(path, consumer)
        except PathNotFound:
            pass  # no data: the digest of nothing
        return Digest(digest.algorithm, hasher.hexdigest()), consumer.size

    async def publish(self, name, upload_id, digest, size, hasher):
        """
        The second half of L{UploadWriter.commit}, once the upload's data is
        complete (C{size} bytes, hashed by C{hasher} unless None): verify
        C{digest}, publish the blob, link it, and only then remove the
        upload. On a digest mismatch the upload is removed (nothing is
        stored).

        Any step may fail (storage unreachable, a full disk, a kill) and the
        client retry the PUT, so each is safe to repeat and the upload
        outlives them all. Before its data is moved to the blob, the upload
        gets a marker naming the digest its content was verified as; a
        retry for that digest whose content is no longer in the upload (the
        move went through) but whose blob is in place just links it.

        @return: L{BlobDescriptor}.
        @raise RegistryError: DIGEST_INVALID.
        """
        self.hashes.forget((name, upload_id))
        data_path = paths.upload_data(name, upload_id)
        if digest.algorithm == CANONICAL and hasher is not None:
            actual = Digest(CANONICAL, hasher.hexdigest())
        else:
            actual, size = await self._hash_stored(data_path, digest)
        guard = self._io.guard
        if actual != digest:
            # Claimed before looking at the blob: a collection deleting it
            # meanwhile either sees the claim or is waited for.
            claim = await guard.claim([digest])
            published = await self._published(name, upload_id, digest)
            if published is None:
                await guard.release(claim)
                await self._io.delete(paths.upload_dir(name, upload_id))
                debug_upload_state(name, upload_id, "removed, content is {}, not {}".format(actual, digest), size)
                raise RegistryError(
                    "DIGEST_INVALID", detail="digest {} does not match the content ({})".format(digest, actual)
                )
            size = published
        else:
            # Before looking whether the blob exists: a collection deleting it
            # meanwhile either sees the claim or is waited for.
            await guard.claim([digest])
            await self._move_to_blob(name, upload_id, digest)
        await self._blobs.link(name, digest)
        await self._io.delete(paths.upload_dir(name, upload_id))
        debug_upload_state(name, upload_id, "published as " + str(digest), size)
        return BlobDescriptor(digest, size)

    async def _move_to_blob(self, name, upload_id, digest):
        """
        Move the upload's verified content to blob C{digest}, after the
        marker saying it was verified (see L{publish}). A blob a stat of
        this process found missing (the client's HEAD before pushing it) is
        published without looking again: if another push published it
        meanwhile, the move replaces it atomically with the same bytes.
        Otherwise an existing blob is kept as it is.
        """
        target = paths.blob_data(digest)
        marker = paths.upload_verified(name, upload_id)
        if self._blobs.forget_absent(digest):
            exists = False
            await self._io.write_link(marker, digest)
        else:
            # The marker is written while storage is asked about the blob: it
            # costs nothing more than a wait when the blob turns out to be
            # there already (the upload is removed).
            marking = defer.ensureDeferred(self._io.write_link(marker, digest))
            try:
                exists = await self._io.exists(target)
            finally:
                await marking
        if not exists:
            await self._io.driver.move(paths.upload_data(name, upload_id), target)

    async def _published(self, name, upload_id, digest):
        """
        The size of blob C{digest} when an earlier finish of this upload
        verified its content as C{digest} and published it; None otherwise.
        """
        verified = await self._io.read_link(paths.upload_verified(name, upload_id))
        if verified is None:
            verified = await self._io.read_link(paths.upload_verified_before(name, upload_id))
        if verified != digest:
            return None
        try:
            info = await self._io.driver.stat(paths.blob_data(digest))
        except PathNotFound:
            return None
        return None if info.is_dir else info.size

    async def cancel(self, name, upload_id):
        """Delete an upload. @raise RegistryError: BLOB_UPLOAD_UNKNOWN."""
        self._io.check_writable()
        if not await self.exists(name, upload_id):
            raise upload_unknown(upload_id)
        await self.remove(name, upload_id)

    async def remove(self, name, upload_id):
        """Delete whatever is left of an upload (nothing when it is gone)."""
        self.hashes.forget((name, upload_id))
        await self._io.delete(paths.upload_dir(name, upload_id))
        debug_upload_state(name, upload_id, "deleted")

    async def purge(self, older_than_seconds, dry_run=False):
        """
        Delete uploads started more than C{older_than_seconds} ago
        (``storage.maintenance.uploadpurging``). Uploads without a readable
        ``startedat`` are judged by their directory's modification time.

        @return: how many uploads were (or, with C{dry_run}, would be) deleted.
        """
        cutoff = self._io.now() - older_than_seconds
        found = []

        async def uploads_of(directory):
            for upload in await self._io.list(directory):
                started = await self._started(upload)
                if started is not None and started < cutoff:
                    found.append(upload)

        if not await self._io.each_repository_dir("_uploads", uploads_of):
            return 0
        for upload in found:
            if dry_run:
                log.info("upload purging (dry run): would delete {path}", path=upload)
            else:
                log.info("upload purging: deleting {path}", path=upload)
                await self._io.delete(upload)
                name, _, upload_id = upload[len(paths.REPOSITORIES) + 1:].rpartition("/_uploads/")
                self.hashes.forget((name, upload_id))
        return len(found)

    async def _started(self, upload):
        """When upload directory C{upload} was started; None when it is gone."""
        driver = self._io.driver
        try:
            return parse_rfc3339((await driver.get_content(upload + "/startedat")).decode("ascii"))
        except (PathNotFound, ValueError, UnicodeDecodeError):
            try:
                return (await driver.stat(upload)).modified
            except PathNotFound:
                return None


__all__ = ["UploadStore", "UploadWriter", "UploadLocks", "HashStates", "HashingConsumer",
           "digest_hasher", "format_rfc3339", "parse_rfc3339", "debug_upload_state"]
