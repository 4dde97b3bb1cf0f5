"""
The registry: repositories, blobs, uploads, manifests, tags, referrers and
the catalog on top of any ``IStorageDriver``, in Distribution's layout.

It knows nothing of HTTP: failures are ``RegistryError``s carrying an OCI
code. Blobs are published with ``move`` after their digest is verified, so
no partial blob is ever visible; uploads keep their state in storage
(``_uploads/<id>/data`` + ``startedat``) so another daemon sharing the
storage, or this one after a restart, can continue them.
"""

import collections
import json
import uuid as uuidlib

from twisted.internet import defer
from twisted.logger import Logger

from spectroreg.registry import manifests as mf
from spectroreg.registry import paths
from spectroreg.registry.cache import BlobDescriptorCache, ManifestCache
from spectroreg.registry.descriptors import LocalDescriptors, NoDescriptors
from spectroreg.registry.digests import CANONICAL, Digest, digest_of, parse_digest
from spectroreg.registry.errors import RegistryError, blob_unknown, manifest_unknown, name_unknown
from spectroreg.registry.errors import readonly, unsupported, upload_unknown
from spectroreg.registry.gcguard import NoGuard
from spectroreg.registry.names import is_valid_tag, is_valid_upload_id
from spectroreg.registry.uploads import HashingConsumer, LockReleaser, UploadWriter, format_rfc3339, parse_rfc3339
from spectroreg.registry.uploads import debug_upload_state, digest_hasher
from spectroreg.storage.errors import PathNotFound
from spectroreg.storage.interfaces import SKIP_DIR
from spectroreg.storage.readonly import ReadOnlyDriver

log = Logger()

BLOB_MEDIA_TYPE = "application/octet-stream"

# Digests whose blob data a stat found missing, kept so publishing an
# upload of them needs no second look (bounded; see finish_upload).
_ABSENT_BLOBS = 1000

# Claims a manifest PUT makes before giving up (online garbage collection;
# one is enough unless storage takes a good part of the grace period to answer).
_CLAIM_ATTEMPTS = 3


class BlobDescriptor:
    __slots__ = ("digest", "size", "media_type")

    def __init__(self, digest, size, media_type=BLOB_MEDIA_TYPE):
        self.digest = digest
        self.size = size
        self.media_type = media_type

    def __repr__(self):
        return "BlobDescriptor({!r}, {!r})".format(str(self.digest), self.size)


class ManifestRecord:
    """A stored manifest: its bytes, digest and the media type it is served with."""

    __slots__ = ("body", "digest", "media_type")

    def __init__(self, body, digest, media_type):
        self.body = body
        self.digest = digest
        self.media_type = media_type

    @property
    def size(self):
        return len(self.body)


class Registry:
    """
    Repository logic on an IStorageDriver.

    @param driver: an L{IStorageDriver}.
    @param storage_settings: L{spectroreg.config.settings.StorageSettings}.
    @param reactor: IReactorTime (for upload timestamps and purging).
    """

    def __init__(self, driver, storage_settings, reactor=None, cache_capacity=10000, descriptors=None):
        # Read-only mode: nothing may reach storage that could change it,
        # whatever path it comes from (writes are also refused up front).
        self.driver = ReadOnlyDriver(driver) if storage_settings.readonly else driver
        self.settings = storage_settings
        self._reactor = reactor
        self.cache = BlobDescriptorCache(cache_capacity) if storage_settings.blobdescriptor_cache == "inmemory" else None
        # Another daemon may share the storage: see spectroreg.registry.descriptors.
        if descriptors is None:
            descriptors = LocalDescriptors(self.cache) if self.cache is not None else NoDescriptors()
        self._descriptors = descriptors
        # The cache shared with other daemons (Redis), for the metrics.
        self.shared_cache = descriptors if self.cache is None and not isinstance(descriptors, NoDescriptors) else None
        # Saves a storage read per manifest GET (content-addressed: always right).
        self.manifests = ManifestCache()
        # (name, upload id) -> (offset, sha256 object): the fast path that saves
        # re-reading an upload to hash it; recomputed from ``data`` when absent.
        self._hash_states = {}
        self._upload_locks = {}
        self._absent_blobs = collections.OrderedDict()
        # Online garbage collection's handshake (spectroreg.registry.gcguard):
        # a StorageGuard when storage.maintenance.gc is enabled.
        self.guard = NoGuard()

    # -- settings -------------------------------------------------------

    @property
    def delete_enabled(self):
        return bool(self.settings.delete_enabled)

    @property
    def readonly(self):
        return bool(self.settings.readonly)

    @property
    def redirects_enabled(self):
        return not self.settings.redirect_disable

    def _now(self):
        if self._reactor is None:
            from twisted.internet import reactor

            self._reactor = reactor
        return self._reactor.seconds()

    def check_writable(self):
        if self.readonly:
            raise readonly()

    def check_delete(self):
        self.check_writable()
        if not self.delete_enabled:
            raise unsupported("deletes are disabled (storage.delete.enabled)")

    # -- small helpers --------------------------------------------------

    async def _exists(self, path):
        try:
            await self.driver.stat(path)
        except PathNotFound:
            return False
        return True

    async def _read_link(self, path):
        """The digest a link file names, or None when there is none."""
        try:
            content = await self.driver.get_content(path)
        except PathNotFound:
            return None
        try:
            return parse_digest(content.decode("ascii").strip())
        except (RegistryError, UnicodeDecodeError):
            log.warn("ignoring unreadable link file {path}", path=path)
            return None

    async def _write_link(self, path, digest):
        await self.driver.put_content(path, str(digest).encode("ascii"))

    async def _delete(self, path):
        try:
            await self.driver.delete(path)
            return True
        except PathNotFound:
            return False

    async def _list(self, path):
        try:
            return await self.driver.list(path)
        except PathNotFound:
            return []

    async def repository_exists(self, name):
        return await self._exists(paths.repository(name))

    # -- blobs ----------------------------------------------------------

    async def stat_blob_data(self, digest):
        """The global blob (no repository check). @raise RegistryError: BLOB_UNKNOWN."""
        # The ticket is taken before storage is read: see spectroreg.registry.cache.
        cached = await self._descriptors.descriptor(digest)
        if cached.value is not None:
            return BlobDescriptor(digest, cached.value[0], cached.value[1])
        try:
            info = await self.driver.stat(paths.blob_data(digest))
        except PathNotFound:
            self._note_absent(digest)
            raise blob_unknown(digest)
        if info.is_dir:
            raise blob_unknown(digest)
        self._absent_blobs.pop(digest, None)
        cached.fill((info.size, BLOB_MEDIA_TYPE))
        return BlobDescriptor(digest, info.size)

    async def is_linked(self, name, digest):
        """Whether repository C{name} holds blob C{digest} (layer or manifest)."""
        cached = await self._descriptors.link(name, digest)
        if cached.value:
            return True
        for path in (paths.layer_link(name, digest), paths.revision_link(name, digest)):
            linked = await self._read_link(path)
            if linked is not None and linked == digest:
                cached.fill(True)
                return True
        return False

    def _note_absent(self, digest):
        self._absent_blobs[digest] = True
        self._absent_blobs.move_to_end(digest)
        while len(self._absent_blobs) > _ABSENT_BLOBS:
            self._absent_blobs.popitem(last=False)

    async def stat_blob(self, name, digest):
        """
        A blob as seen from repository C{name}.
        @raise RegistryError: BLOB_UNKNOWN.
        """
        # The data first: a client asks about a blob before pushing it, and a
        # blob that does not exist anywhere then costs one look, not one per
        # kind of link. The answer is the same in either order.
        descriptor = await self.stat_blob_data(digest)
        if not await self.is_linked(name, digest):
            raise blob_unknown(digest)
        return descriptor

    def blob_path(self, digest):
        return paths.blob_data(digest)

    async def blob_redirect_url(self, digest, method="GET"):
        if not self.redirects_enabled:
            return None
        return await self.driver.redirect_url(paths.blob_data(digest), method)

    async def read_blob(self, digest, consumer, offset=0, length=None):
        """Stream blob bytes into C{consumer}; see IStorageDriver.read."""
        try:
            return await self.driver.read(paths.blob_data(digest), consumer, offset, length)
        except PathNotFound:
            await self.forget_blob(digest)
            raise blob_unknown(digest)

    async def link_blob(self, name, digest):
        cached = await self._descriptors.link(name, digest)
        await self._write_link(paths.layer_link(name, digest), digest)
        cached.fill(True)

    async def _unlinking(self, name, digest, remove):
        """
        Await C{remove()}, which deletes a link of C{digest} in C{name}; the
        cache stops answering for it before, and every lookup that read
        storage meanwhile is kept from filling it after.
        """
        await self._descriptors.unlink(name, digest)
        try:
            return await remove()
        finally:
            await self._descriptors.unlink(name, digest)

    async def delete_blob(self, name, digest):
        """Unlink C{digest} from repository C{name}."""
        self.check_delete()

        async def remove():
            linked = await self._read_link(paths.layer_link(name, digest))
            if linked is None:
                raise blob_unknown(digest)
            await self._delete(paths.layer_dir(name, digest))

        await self._unlinking(name, digest, remove)

    def forget_blob(self, digest):
        """
        Tell the caches a blob's data is gone (garbage collection).
        @return: a Deferred that fires once a shared cache has forgotten it.
        """
        self.manifests.forget(digest)
        return self._descriptors.forget(digest)

    async def forget_link(self, name, digest, remove):
        """Await C{remove()}, which deletes a link of C{digest} in C{name} (garbage collection)."""
        return await self._unlinking(name, digest, remove)

    def forget_revision(self, name, digest):
        """
        Tell the caches a revision is gone (garbage collection).
        @return: a Deferred that fires once a shared cache has forgotten it.
        """
        return self._descriptors.unlink(name, digest)

    async def _data_exists(self, digest):
        """Whether blob C{digest}'s data is in storage, asked of storage itself."""
        if await self._exists(paths.blob_data(digest)):
            return True
        await self.forget_blob(digest)
        return False

    async def mount_blob(self, name, digest, source=None):
        """
        Link a blob into C{name} that repository C{source} holds, or, when
        C{source} is None, that some repository holds (automatic mount). A
        blob no repository links (deleted everywhere, not yet collected) is
        not mounted: the data may still be in storage, but nobody may read it.

        @return: L{BlobDescriptor}, or None when there is nothing to mount.
        """
        self.check_writable()
        claim = await self.guard.claim([digest])
        descriptor = await self._mountable(digest, source)
        if descriptor is None:
            await self.guard.release(claim)
            return None
        await self.link_blob(name, digest)
        return descriptor

    async def _mountable(self, digest, source):
        if source is not None:
            if not await self.is_linked(source, digest):
                return None
        elif await self._linking_repository(digest) is None:
            return None
        if self.guard.active and not await self._data_exists(digest):
            return None
        try:
            return await self.stat_blob_data(digest)
        except RegistryError:
            return None

    async def _linking_repository(self, digest):
        """The name of a repository that links C{digest}, or None."""
        prefix = paths.REPOSITORIES + "/"
        checked = set()
        found = []

        async def look(directory):
            name = directory[len(prefix):].rsplit("/", 1)[0]
            if name not in checked:
                checked.add(name)
                if await self.is_linked(name, digest):
                    found.append(name)
            return bool(found)

        await self._each_repository_dir(("_layers", "_manifests"), look)
        return found[0] if found else None

    # -- uploads --------------------------------------------------------

    def _lock_for(self, name, upload_id):
        key = (name, upload_id)
        lock = self._upload_locks.get(key)
        if lock is None:
            lock = self._upload_locks[key] = defer.DeferredLock()
        return lock

    def _release_lock(self, name, upload_id, lock):
        lock.release()
        if not lock.locked and not lock.waiting:
            self._upload_locks.pop((name, upload_id), None)

    def _remember_hash(self, name, upload_id, offset, hasher):
        if hasher is None:
            self._forget_hash(name, upload_id)
        else:
            self._hash_states[(name, upload_id)] = (offset, hasher.copy())

    def _forget_hash(self, name, upload_id):
        self._hash_states.pop((name, upload_id), None)

    async def start_upload(self, name):
        """Create an upload. @return: its id (str)."""
        self.check_writable()
        upload_id = str(uuidlib.uuid4())
        await self.driver.put_content(paths.upload_startedat(name, upload_id), format_rfc3339(self._now()).encode("ascii"))
        # An empty ``data`` too, as Distribution starts an upload: the other
        # kind in a mixed fleet continues only an upload whose data exists
        # (on S3, an upload in flight on the key).
        writer = await self.driver.writer(paths.upload_data(name, upload_id))
        await writer.close()
        self._remember_hash(name, upload_id, 0, digest_hasher())
        debug_upload_state(name, upload_id, "started", 0)
        return upload_id

    async def upload_exists(self, name, upload_id):
        if not is_valid_upload_id(upload_id):
            # Not an id we (or Distribution) hand out, and no storage path.
            return False
        return await self._exists(paths.upload_startedat(name, upload_id))

    async def upload_size(self, name, upload_id):
        """Bytes received so far. @raise RegistryError: BLOB_UPLOAD_UNKNOWN."""
        if not await self.upload_exists(name, upload_id):
            raise upload_unknown(upload_id)
        try:
            info = await self.driver.stat(paths.upload_data(name, upload_id))
        except PathNotFound:
            return 0
        return info.size

    async def open_upload(self, name, upload_id, offset=None):
        """
        Open the upload for appending. Concurrent writers to one upload wait
        for each other.

        @param offset: where the client says its bytes start; not the
            current size → BLOB_UPLOAD_INVALID with status 416.
        @return: L{UploadWriter}.
        """
        self.check_writable()
        lock = self._lock_for(name, upload_id)
        await lock.acquire()
        try:
            if not await self.upload_exists(name, upload_id):
                raise upload_unknown(upload_id)
            data_path = paths.upload_data(name, upload_id)
            try:
                writer = await self.driver.writer(data_path, append=True)
            except PathNotFound:
                writer = await self.driver.writer(data_path)
            if offset is not None and offset != writer.size:
                await writer.close()
                raise RegistryError(
                    "BLOB_UPLOAD_INVALID",
                    status=416,
                    detail="chunk starts at {}, upload has {} bytes".format(offset, writer.size),
                    headers=[("Range", "0-{}".format(max(writer.size - 1, 0)))],
                )
            state = self._hash_states.get((name, upload_id))
            hasher = state[1].copy() if state is not None and state[0] == writer.size else None
            return UploadWriter(self, name, upload_id, writer, hasher, LockReleaser(self, name, upload_id, lock))
        except BaseException:
            self._release_lock(name, upload_id, lock)
            raise

    async def _hash_stored(self, path, digest):
        hasher = digest.hasher()
        consumer = HashingConsumer(hasher)
        try:
            await self.driver.read(path, consumer)
        except PathNotFound:
            pass  # no data: the digest of nothing
        return Digest(digest.algorithm, hasher.hexdigest()), consumer.size

    async def finish_upload(self, name, upload_id, digest, writer=None):
        """
        Complete an upload: verify C{digest}, publish the blob, link it, and
        only then remove the upload. On a digest mismatch the upload is
        cancelled (nothing is stored).

        Any step may fail (storage unreachable, a full disk, a kill) and the
        client retry the PUT, so each is safe to repeat and the upload
        outlives them all. Before its data is moved to the blob, the upload
        gets a marker naming the digest its content was verified as; a
        retry for that digest whose content is no longer in the upload (the
        move went through) but whose blob is in place just links it.

        @param writer: the L{UploadWriter} holding the last chunk, if any.
        @return: L{BlobDescriptor}.
        """
        self.check_writable()
        if writer is None:
            writer = await self.open_upload(name, upload_id)
        size, hasher = await writer._commit()
        self._forget_hash(name, upload_id)
        data_path = paths.upload_data(name, upload_id)
        target = paths.blob_data(digest)
        if digest.algorithm == CANONICAL and hasher is not None:
            actual = Digest(CANONICAL, hasher.hexdigest())
        else:
            actual, size = await self._hash_stored(data_path, digest)
        if actual != digest:
            # Claimed before looking at the blob: a collection deleting it
            # meanwhile either sees the claim or is waited for.
            claim = await self.guard.claim([digest])
            published = await self._published(name, upload_id, digest)
            if published is None:
                await self.guard.release(claim)
                await self._delete(paths.upload_dir(name, upload_id))
                debug_upload_state(name, upload_id, "removed, content is {}, not {}".format(actual, digest), size)
                raise RegistryError(
                    "DIGEST_INVALID", detail="digest {} does not match the content ({})".format(digest, actual)
                )
            size = published
        else:
            # Before looking whether the blob exists: a collection deleting it
            # meanwhile either sees the claim or is waited for.
            await self.guard.claim([digest])
            # A blob a stat of this process found missing (the client's HEAD
            # before pushing it) is published without looking again: if
            # another push published it meanwhile, the move replaces it
            # atomically with the same bytes. Otherwise an existing blob is
            # kept as it is.
            known_absent = self._absent_blobs.pop(digest, None) is not None
            if known_absent or not await self._exists(target):
                await self._write_link(paths.upload_verified(name, upload_id), digest)
                await self.driver.move(data_path, target)
        await self.link_blob(name, digest)
        await self._delete(paths.upload_dir(name, upload_id))
        debug_upload_state(name, upload_id, "published as " + str(digest), size)
        return BlobDescriptor(digest, size)

    async def _published(self, name, upload_id, digest):
        """
        The size of blob C{digest} when an earlier finish of this upload
        verified its content as C{digest} and published it; None otherwise.
        """
        if await self._read_link(paths.upload_verified(name, upload_id)) != digest:
            return None
        try:
            info = await self.driver.stat(paths.blob_data(digest))
        except PathNotFound:
            return None
        return None if info.is_dir else info.size

    async def cancel_upload(self, name, upload_id):
        """Delete an upload. @raise RegistryError: BLOB_UPLOAD_UNKNOWN."""
        self.check_writable()
        if not await self.upload_exists(name, upload_id):
            raise upload_unknown(upload_id)
        self._forget_hash(name, upload_id)
        await self._delete(paths.upload_dir(name, upload_id))
        debug_upload_state(name, upload_id, "deleted")

    async def put_blob(self, name, digest, data):
        """Store small content C{data} (bytes) as blob C{digest} in C{name}."""
        self.check_writable()
        actual = digest_of(data, digest.algorithm)
        if actual != digest:
            raise RegistryError("DIGEST_INVALID", detail="digest {} does not match the content".format(digest))
        upload_id = await self.start_upload(name)
        writer = await self.open_upload(name, upload_id)
        try:
            await writer.write(data)
        except BaseException:
            await writer._cancel()
            raise
        return await self.finish_upload(name, upload_id, digest, writer)

    async def purge_uploads(self, older_than_seconds, dry_run=False):
        """
        Delete uploads started more than C{older_than_seconds} ago
        (``storage.maintenance.uploadpurging``). Uploads without a readable
        ``startedat`` are judged by their directory's modification time.

        @return: how many uploads were (or, with C{dry_run}, would be) deleted.
        """
        cutoff = self._now() - older_than_seconds
        found = []

        async def uploads_of(directory):
            for upload in await self._list(directory):
                started = None
                try:
                    started = parse_rfc3339((await self.driver.get_content(upload + "/startedat")).decode("ascii"))
                except (PathNotFound, ValueError, UnicodeDecodeError):
                    try:
                        started = (await self.driver.stat(upload)).modified
                    except PathNotFound:
                        continue
                if started < cutoff:
                    found.append(upload)

        if not await self._each_repository_dir("_uploads", uploads_of):
            return 0
        for upload in found:
            if dry_run:
                log.info("upload purging (dry run): would delete {path}", path=upload)
            else:
                log.info("upload purging: deleting {path}", path=upload)
                await self._delete(upload)
                name, _, upload_id = upload[len(paths.REPOSITORIES) + 1:].rpartition("/_uploads/")
                self._forget_hash(name, upload_id)
        return len(found)

    # -- manifests and tags --------------------------------------------

    async def resolve(self, name, reference):
        """
        The digest C{reference} (tag str or L{Digest}) names in C{name}.
        @raise RegistryError: MANIFEST_UNKNOWN.
        """
        if isinstance(reference, Digest):
            linked = await self._read_link(paths.revision_link(name, reference))
            if linked is None:
                raise manifest_unknown(reference)
            return reference
        digest = await self._read_link(paths.tag_current_link(name, reference))
        if digest is None:
            raise manifest_unknown(reference)
        return digest

    async def get_manifest(self, name, reference):
        """@return: L{ManifestRecord}. @raise RegistryError: MANIFEST_UNKNOWN."""
        digest = await self.resolve(name, reference)
        cached = self.manifests.lookup(digest)
        if cached.value is not None:
            return cached.value
        try:
            body = await self.driver.get_content(paths.blob_data(digest))
        except PathNotFound:
            await self.forget_blob(digest)
            raise manifest_unknown(reference)
        record = ManifestRecord(body, digest, mf.media_type_of(body))
        cached.fill(record)
        return record

    async def put_manifest(self, name, reference, body, content_type=None):
        """
        Store a manifest under a tag (str) or its digest (L{Digest}).

        @return: (L{Digest}, L{spectroreg.registry.manifests.Manifest}).
        @raise RegistryError: MANIFEST_INVALID, MANIFEST_BLOB_UNKNOWN,
            DIGEST_INVALID (body does not match the digest reference).
        """
        self.check_writable()
        if len(body) > mf.MAX_MANIFEST_SIZE:
            raise RegistryError("MANIFEST_INVALID", status=413, detail="manifest exceeds 4 MiB")
        manifest = mf.parse_manifest(body, content_type)
        if isinstance(reference, Digest):
            digest = digest_of(body, reference.algorithm)
            if digest != reference:
                raise RegistryError(
                    "DIGEST_INVALID", detail="manifest digest {} does not match {}".format(digest, reference)
                )
        else:
            if not is_valid_tag(reference):
                raise RegistryError("MANIFEST_INVALID", detail="invalid tag {!r}".format(reference))
            digest = digest_of(body)
        needed = [d.digest for d in manifest.references()] + [d.digest for d in manifest.manifests]
        indexed = False
        for _ in range(_CLAIM_ATTEMPTS):
            # Claimed before anything is looked at: see spectroreg.registry.gcguard.
            claim = await self.guard.claim(needed + [digest])
            try:
                await self._check_needed(name, manifest)
            except RegistryError:
                await self.guard.release(claim)
                raise
            blob_path = paths.blob_data(digest)
            if not await self._exists(blob_path):
                await self.driver.put_content(blob_path, body)
            self._absent_blobs.pop(digest, None)
            if not indexed:
                # A repository's referrers index is built by its first push here
                # (a tree Distribution wrote has none): reads never write it.
                if not await self._exists(paths.referrers_complete(name)):
                    await self.rebuild_referrers(name)
                if manifest.subject is not None:
                    # Before the revision: an entry whose revision is missing is
                    # ignored, so a crash in between leaves no hole in the index.
                    await self._add_referrer(name, digest, len(body), manifest)
                indexed = True
            # The revision makes the blobs referenced: written only while the
            # claim still protects them, or claimed and checked again.
            if self.guard.still_fresh(claim):
                break
        else:
            raise RegistryError("UNAVAILABLE", detail="storage too slow to store the manifest safely; retry")
        linked = await self._descriptors.link(name, digest)
        await self._write_link(paths.revision_link(name, digest), digest)
        linked.fill(True)
        if not isinstance(reference, Digest):
            await self._write_link(paths.tag_index_link(name, reference, digest), digest)
            await self._write_link(paths.tag_current_link(name, reference), digest)
        return digest, manifest

    async def _check_needed(self, name, manifest):
        """
        @raise RegistryError: MANIFEST_BLOB_UNKNOWN when a blob or manifest
            C{manifest} references is not in repository C{name}.
        """
        missing = []
        for descriptor in manifest.references():
            if not await self.is_linked(name, descriptor.digest):
                missing.append(str(descriptor.digest))
            elif self.guard.active and not await self._data_exists(descriptor.digest):
                # Collected since a cache saw it (here or on another daemon).
                missing.append(str(descriptor.digest))
        for descriptor in manifest.manifests:
            if await self._read_link(paths.revision_link(name, descriptor.digest)) is None:
                missing.append(str(descriptor.digest))
            elif self.guard.active and not await self._data_exists(descriptor.digest):
                missing.append(str(descriptor.digest))
        if missing:
            raise RegistryError("MANIFEST_BLOB_UNKNOWN", detail={"missing": missing})

    async def delete_manifest(self, name, reference):
        """
        By tag: untag. By digest: delete the revision, every tag pointing
        at it, and its referrers entry.
        """
        self.check_delete()
        if not isinstance(reference, Digest):
            if await self._read_link(paths.tag_current_link(name, reference)) is None:
                raise manifest_unknown(reference)
            await self._delete(paths.tag_dir(name, reference))
            return
        digest = reference
        if await self._read_link(paths.revision_link(name, digest)) is None:
            raise manifest_unknown(digest)
        subject = None
        try:
            body = await self.driver.get_content(paths.blob_data(digest))
            subject = mf.parse_manifest(body).subject
        except (PathNotFound, RegistryError):
            pass
        for tag in await self.list_tags(name, must_exist=False):
            if await self._read_link(paths.tag_current_link(name, tag)) == digest:
                await self._delete(paths.tag_dir(name, tag))
        await self._unlinking(name, digest, lambda: self._delete(paths.revision_dir(name, digest)))
        if subject is not None:
            await self._delete(paths.referrer_entry(name, subject.digest, digest).rsplit("/", 1)[0])

    async def list_tags(self, name, must_exist=True):
        """
        Sorted tags. @raise RegistryError: NAME_UNKNOWN when the repository
        has no tags directory, as in Distribution: it never had a tagged
        manifest (only blobs, uploads or untagged manifests). A repository
        whose tags were all deleted lists none where the directory stays
        (filesystem), and is unknown where directories are implied (S3).
        """
        try:
            entries = await self.driver.list(paths.tags(name))
        except PathNotFound:
            if must_exist:
                raise name_unknown(name)
            entries = []
        tags = []
        for entry in entries:
            tag = entry.rsplit("/", 1)[-1]
            if is_valid_tag(tag):
                tags.append(tag)
        return sorted(tags)

    # -- referrers ------------------------------------------------------

    def _referrer_descriptor(self, digest, size, manifest):
        descriptor = {"mediaType": manifest.media_type, "digest": str(digest), "size": size}
        if manifest.artifact_type:
            descriptor["artifactType"] = manifest.artifact_type
        if manifest.annotations:
            descriptor["annotations"] = manifest.annotations
        return descriptor

    async def _add_referrer(self, name, digest, size, manifest):
        path = paths.referrer_entry(name, manifest.subject.digest, digest)
        content = json.dumps(self._referrer_descriptor(digest, size, manifest), sort_keys=True)
        await self.driver.put_content(path, content.encode("utf-8"))

    async def _revisions_with_subject(self, name):
        """(digest, size, manifest) of each manifest revision of C{name} that has a subject; reads only."""
        found = []
        for algorithm_dir in await self._list(paths.revisions(name)):
            algorithm = algorithm_dir.rsplit("/", 1)[-1]
            for revision in await self._list(algorithm_dir):
                try:
                    digest = parse_digest("{}:{}".format(algorithm, revision.rsplit("/", 1)[-1]))
                    body = await self.driver.get_content(paths.blob_data(digest))
                    manifest = mf.parse_manifest(body)
                except (RegistryError, PathNotFound):
                    continue
                if manifest.subject is not None:
                    found.append((digest, len(body), manifest))
        return found

    async def rebuild_referrers(self, name):
        """Rebuild C{name}'s referrers index from its manifest revisions (a write)."""
        self.check_writable()
        found = await self._revisions_with_subject(name)
        for digest, size, manifest in found:
            await self._add_referrer(name, digest, size, manifest)
        await self.driver.put_content(paths.referrers_complete(name), b"1")
        return len(found)

    async def _indexed_referrers(self, name, digest):
        found = []
        for algorithm_dir in await self._list(paths.referrers_subject_dir(name, digest)):
            for entry in await self._list(algorithm_dir):
                try:
                    content = await self.driver.get_content(entry + "/descriptor")
                    # Strictly: an entry written from a manifest accepted before
                    # manifests were read strictly may hold NaN or Infinity.
                    descriptor = mf.load_descriptor(content)
                    referrer = parse_digest(descriptor["digest"])
                except (PathNotFound, ValueError, KeyError, RegistryError):
                    continue
                # The revision may have been deleted by a Distribution sharing the tree.
                if await self._read_link(paths.revision_link(name, referrer)) is None:
                    continue
                found.append(descriptor)
        return found

    async def referrers(self, name, digest, artifact_type=None):
        """
        Descriptors (dicts) of the manifests in C{name} whose subject is
        C{digest}, optionally only those of C{artifact_type}; sorted by digest.

        Reads only, so it works in read-only mode and on a read-only volume:
        a repository without a complete index (a tree Distribution wrote)
        is answered from its manifest revisions, and its index is built by
        the next manifest push.
        """
        if await self._exists(paths.referrers_complete(name)):
            found = await self._indexed_referrers(name, digest)
        else:
            found = [self._referrer_descriptor(referrer, size, manifest)
                     for referrer, size, manifest in await self._revisions_with_subject(name)
                     if manifest.subject.digest == digest]
        if artifact_type is not None:
            found = [d for d in found if d.get("artifactType") == artifact_type]
        found.sort(key=lambda d: d["digest"])
        return found

    # -- catalog --------------------------------------------------------

    async def catalog(self):
        """
        Every repository name holding ``_layers``, sorted: as Distribution
        lists them, so a repository holding only blobs (pushed or mounted)
        is listed, and one holding only an upload is not.
        """
        names = []
        prefix = paths.REPOSITORIES + "/"

        async def repository_of(directory):
            names.append(directory[len(prefix):].rsplit("/", 1)[0])
            return False

        await self._each_repository_dir("_layers", repository_of)
        return sorted(names)

    async def _each_repository_dir(self, kind, found):
        """
        Await C{found(path)} for every ``<repository>/<kind>`` directory
        (``_layers``, ``_manifests``, ``_uploads``, or a tuple of them); no
        other underscore directory is entered, so a walk never descends into
        layers, revisions or tags. Once C{found} returns True nothing more
        is visited.

        @return: False when there is no repository at all.
        """
        kinds = (kind,) if isinstance(kind, str) else kind
        stopped = []

        async def visit(info):
            if stopped or not info.is_dir:
                return SKIP_DIR if stopped else None
            base = info.path.rsplit("/", 1)[-1]
            if base in kinds:
                if await found(info.path):
                    stopped.append(True)
                return SKIP_DIR
            if base.startswith("_"):
                return SKIP_DIR
            return None

        try:
            await self.driver.walk(paths.REPOSITORIES, visit)
        except PathNotFound:
            return False
        return True


__all__ = ["Registry", "BlobDescriptor", "ManifestRecord", "UploadWriter"]
