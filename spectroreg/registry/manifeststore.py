"""
The manifest store: a repository's manifests, by tag or digest. A manifest
is stored as a blob (its bytes under its digest) and linked into the
repository as a revision (``_manifests/revisions``); pushing one checks
that everything it references is in the repository, indexes it under its
subject (referrers), and tags it when pushed by tag.
"""

from twisted.internet import defer
from zope.interface import implementer

from spectroreg.registry import manifests as mf
from spectroreg.registry import paths
from spectroreg.registry.digests import Digest, digest_of
from spectroreg.registry.errors import ManifestTooLarge, RegistryError, manifest_unknown
from spectroreg.registry.interfaces import IManifestStore
from spectroreg.registry.names import is_valid_tag
from spectroreg.storage.errors import PathNotFound

# Claims a manifest PUT makes before giving up (online garbage collection;
# one is enough unless storage takes a good part of the grace period to answer).
_CLAIM_ATTEMPTS = 3


class ManifestRecord:
    """
    A stored manifest: its bytes, digest and the media type it is served with.

    @ivar headers: the response headers naming it (name, value bytes), made
        once: a cached record answers many GETs.
    """

    __slots__ = ("body", "digest", "media_type", "headers")

    def __init__(self, body, digest, media_type):
        self.body = body
        self.digest = digest
        self.media_type = media_type
        text = str(digest).encode("ascii")
        self.headers = (
            (b"Docker-Content-Digest", text),
            (b"Etag", b'"' + text + b'"'),
            (b"Content-Type", media_type.encode("utf-8")),
        )

    @property
    def size(self):
        return len(self.body)


@implementer(IManifestStore)
class ManifestStore:
    """
    @param io: the L{spectroreg.registry.storeio.StoreIO} every store shares.
    @param blobs: the L{spectroreg.registry.blobs.BlobStore}.
    @param tags: the L{spectroreg.registry.tags.TagStore}.
    @param referrers: the L{spectroreg.registry.referrers.ReferrerIndex}.
    @param cache: the L{spectroreg.registry.cache.ManifestCache} (content-addressed:
        saves a storage read per GET and is always right).
    """

    def __init__(self, io, blobs, tags, referrers, cache):
        self._io = io
        self._blobs = blobs
        self._tags = tags
        self._referrers = referrers
        self.cache = cache

    async def resolve(self, name, reference):
        """
        The digest C{reference} (tag str or L{Digest}) names in C{name}.
        @raise RegistryError: MANIFEST_UNKNOWN.
        """
        if isinstance(reference, Digest):
            if not await self._has_revision(name, reference):
                raise manifest_unknown(reference)
            return reference
        return await self._tags.get(name, reference)

    async def _has_revision(self, name, digest):
        return await self._io.read_link(paths.revision_link(name, digest)) is not None

    async def get(self, name, reference):
        """@return: L{ManifestRecord}. @raise RegistryError: MANIFEST_UNKNOWN."""
        digest = await self.resolve(name, reference)
        cached = self.cache.lookup(digest)
        if cached.value is not None:
            return cached.value
        try:
            body = await self._io.driver.get_content(paths.blob_data(digest))
        except PathNotFound:
            await self._blobs.forget(digest)
            raise manifest_unknown(reference)
        record = ManifestRecord(body, digest, mf.media_type_of(body))
        cached.fill(record)
        return record

    async def put(self, name, reference, body, content_type=None):
        """
        Store a manifest under a tag (str) or its digest (L{Digest}).

        @return: (L{Digest}, L{spectroreg.registry.manifests.Manifest}).
        @raise RegistryError: MANIFEST_INVALID (L{ManifestTooLarge} over
            L{mf.MAX_MANIFEST_SIZE}), MANIFEST_BLOB_UNKNOWN, DIGEST_INVALID
            (body does not match the digest reference).
        """
        self._io.check_writable()
        if len(body) > mf.MAX_MANIFEST_SIZE:
            raise ManifestTooLarge()
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
        await self._store_claimed(name, digest, body, manifest)
        await self._blobs.link_revision(name, digest)
        if not isinstance(reference, Digest):
            await self._tags.tag(name, reference, digest)
        return digest, manifest

    async def _store_claimed(self, name, digest, body, manifest):
        """
        Store the manifest's bytes and its referrers entry under a claim
        (spectroreg.registry.gcguard) that still protects what it references
        when this returns; only then may its revision be written.
        """
        guard = self._io.guard
        needed = [d.digest for d in manifest.references()] + [d.digest for d in manifest.manifests]
        indexed = False
        for _ in range(_CLAIM_ATTEMPTS):
            # Claimed before anything is looked at: see spectroreg.registry.gcguard.
            claim = await guard.claim(needed + [digest])
            blob_path = paths.blob_data(digest)
            # Asked while what it references is checked (mostly from caches
            # on this thread): one wait for storage fewer in a row.
            looking = defer.ensureDeferred(self._io.exists(blob_path))
            try:
                await self._check_needed(name, manifest)
            except BaseException as error:
                # What the look found no longer matters, nor how it failed.
                await looking.addErrback(lambda _: None)
                if isinstance(error, RegistryError):
                    await guard.release(claim)
                raise
            if not await looking:
                await self._io.driver.put_content(blob_path, body)
            self._blobs.forget_absent(digest)
            if not indexed:
                # Before the revision: an entry whose revision is missing is
                # ignored, so a crash in between leaves no hole in the index.
                await self._referrers.add(name, digest, len(body), manifest)
                indexed = True
            # The revision makes the blobs referenced: written only while the
            # claim still protects them, or claimed and checked again.
            if guard.still_fresh(claim):
                return
        raise RegistryError("UNAVAILABLE", detail="storage too slow to store the manifest safely; retry")

    async def _check_needed(self, name, manifest):
        """
        @raise RegistryError: MANIFEST_BLOB_UNKNOWN when a blob or manifest
            C{manifest} references is not in repository C{name}.
        """
        missing = []
        active = self._io.guard.active
        for descriptor in manifest.references():
            if not await self._blobs.is_linked(name, descriptor.digest):
                missing.append(str(descriptor.digest))
            elif active and not await self._blobs.data_exists(descriptor.digest):
                # Collected since a cache saw it (here or on another daemon).
                missing.append(str(descriptor.digest))
        for descriptor in manifest.manifests:
            if not await self._has_revision(name, descriptor.digest):
                missing.append(str(descriptor.digest))
            elif active and not await self._blobs.data_exists(descriptor.digest):
                missing.append(str(descriptor.digest))
        if missing:
            raise RegistryError("MANIFEST_BLOB_UNKNOWN", detail={"missing": missing})

    async def delete(self, name, reference):
        """
        By tag: untag. By digest: delete the revision, every tag pointing
        at it, and its referrers entry.
        @raise RegistryError: MANIFEST_UNKNOWN.
        """
        self._io.check_delete()
        if not isinstance(reference, Digest):
            await self._tags.untag(name, reference)
            return
        digest = reference
        if not await self._has_revision(name, digest):
            raise manifest_unknown(digest)
        subject = None
        try:
            body = await self._io.driver.get_content(paths.blob_data(digest))
            subject = mf.parse_manifest(body).subject
        except (PathNotFound, RegistryError):
            pass
        await self._tags.untag_digest(name, digest)
        await self._blobs.unlinking(name, digest, lambda: self._io.delete(paths.revision_dir(name, digest)))
        if subject is not None:
            await self._referrers.remove(name, subject.digest, digest)


__all__ = ["ManifestStore", "ManifestRecord"]
