"""
The blob store: a blob's data (stat, read, redirect URL), its links into
repositories (link, unlink, cross-repository mount), and telling the
descriptor caches what garbage collection removed.

Blob data lives once, globally (``blobs/<algorithm>/<xx>/<hex>/data``); a
repository holds a blob through a layer link (pushed or mounted) or a
manifest revision link.
"""

from zope.interface import implementer

from spectroreg.bounded import LRU
from spectroreg.registry import paths
from spectroreg.registry.errors import RegistryError, blob_unknown
from spectroreg.registry.interfaces import IBlobStore
from spectroreg.registry.storeio import repository_of
from spectroreg.storage.errors import PathNotFound

BLOB_MEDIA_TYPE = "application/octet-stream"

# Digests whose blob data a stat found missing, kept so publishing an
# upload of them needs no second look (see forget_absent).
_ABSENT_BLOBS = 1000


class BlobDescriptor:
    __slots__ = ("digest", "size", "media_type")

    def __init__(self, digest, size, media_type=BLOB_MEDIA_TYPE):
        self.digest = digest
        self.size = size
        self.media_type = media_type

    def __repr__(self):
        return "BlobDescriptor({!r}, {!r})".format(str(self.digest), self.size)


@implementer(IBlobStore)
class BlobStore:
    """
    @param io: the L{spectroreg.registry.storeio.StoreIO} every store shares.
    @param descriptors: the descriptor cache (L{spectroreg.registry.descriptors}).
    @param manifest_cache: the L{spectroreg.registry.cache.ManifestCache},
        told when a blob's data is gone.
    """

    def __init__(self, io, descriptors, manifest_cache):
        self._io = io
        self._descriptors = descriptors
        self._manifest_cache = manifest_cache
        self._absent = LRU(_ABSENT_BLOBS)

    # -- data -----------------------------------------------------------

    async def stat_data(self, digest):
        """The global blob (no repository check). @raise RegistryError: BLOB_UNKNOWN."""
        # The ticket is taken before storage is read: see spectroreg.registry.cache.
        cached = await self._descriptors.descriptor(digest)
        if cached.value is not None:
            return BlobDescriptor(digest, cached.value[0], cached.value[1])
        try:
            info = await self._io.driver.stat(paths.blob_data(digest))
        except PathNotFound:
            self._absent.put(digest, True)
            raise blob_unknown(digest)
        if info.is_dir:
            raise blob_unknown(digest)
        self._absent.pop(digest)
        cached.fill((info.size, BLOB_MEDIA_TYPE))
        return BlobDescriptor(digest, info.size)

    def forget_absent(self, digest):
        """
        Forget that a stat of this process found blob C{digest} missing.
        @return: whether it had (the blob was missing a moment ago).
        """
        return self._absent.pop(digest) is not None

    async def data_exists(self, digest):
        """Whether blob C{digest}'s data is in storage, asked of storage itself."""
        if await self._io.exists(paths.blob_data(digest)):
            return True
        await self.forget(digest)
        return False

    async def stat(self, name, digest):
        """
        A blob as seen from repository C{name}.
        @raise RegistryError: BLOB_UNKNOWN.
        """
        # The data first: a client asks about a blob before pushing it, and a
        # blob that does not exist anywhere then costs one look, not one per
        # kind of link. The answer is the same in either order.
        descriptor = await self.stat_data(digest)
        if not await self.is_linked(name, digest):
            raise blob_unknown(digest)
        return descriptor

    async def redirect_url(self, digest, method="GET"):
        """Where the driver would have a client fetch the blob, or None (redirects off, or none)."""
        if self._io.settings.redirect_disable:
            return None
        return await self._io.driver.redirect_url(paths.blob_data(digest), method)

    async def read(self, digest, consumer, offset=0, length=None):
        """Stream blob bytes into C{consumer}; see IStorageDriver.read."""
        try:
            return await self._io.driver.read(paths.blob_data(digest), consumer, offset, length)
        except PathNotFound:
            await self.forget(digest)
            raise blob_unknown(digest)

    # -- links ----------------------------------------------------------

    async def is_linked(self, name, digest):
        """Whether repository C{name} holds blob C{digest} (layer or manifest)."""
        cached = await self._descriptors.link(name, digest)
        if cached.value:
            return True
        for path in (paths.layer_link(name, digest), paths.revision_link(name, digest)):
            linked = await self._io.read_link(path)
            if linked is not None and linked == digest:
                cached.fill(True)
                return True
        return False

    async def link(self, name, digest):
        """Link blob C{digest} into C{name} as a layer."""
        await self._link(name, digest, paths.layer_link(name, digest))

    async def link_revision(self, name, digest):
        """Link manifest C{digest} into C{name} as a revision."""
        await self._link(name, digest, paths.revision_link(name, digest))

    async def _link(self, name, digest, path):
        cached = await self._descriptors.link(name, digest)
        await self._io.write_link(path, digest)
        cached.fill(True)

    async def unlinking(self, name, digest, remove):
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

    async def delete(self, name, digest):
        """Unlink C{digest} from repository C{name}. @raise RegistryError: BLOB_UNKNOWN."""
        self._io.check_delete()

        async def remove():
            linked = await self._io.read_link(paths.layer_link(name, digest))
            if linked is None:
                raise blob_unknown(digest)
            await self._io.delete(paths.layer_dir(name, digest))

        await self.unlinking(name, digest, remove)

    # -- what garbage collection removed --------------------------------

    def forget(self, digest):
        """
        Tell the caches a blob's data is gone.
        @return: a Deferred that fires once a shared cache has forgotten it.
        """
        self._manifest_cache.forget(digest)
        return self._descriptors.forget(digest)

    def forget_revision(self, name, digest):
        """
        Tell the caches a revision is gone.
        @return: a Deferred that fires once a shared cache has forgotten it.
        """
        return self._descriptors.unlink(name, digest)

    # -- mounts ---------------------------------------------------------

    async def mount(self, name, digest, source=None):
        """
        Link a blob into C{name} that repository C{source} holds, or, when
        C{source} is None, that some repository holds (automatic mount). A
        blob no repository links (deleted everywhere, not yet collected) is
        not mounted: the data may still be in storage, but nobody may read it.

        @return: L{BlobDescriptor}, or None when there is nothing to mount.
        """
        self._io.check_writable()
        claim = await self._io.guard.claim([digest])
        descriptor = await self._mountable(digest, source)
        if descriptor is None:
            await self._io.guard.release(claim)
            return None
        await self.link(name, digest)
        return descriptor

    async def _mountable(self, digest, source):
        if source is not None:
            if not await self.is_linked(source, digest):
                return None
        elif await self._linking_repository(digest) is None:
            return None
        if self._io.guard.active and not await self.data_exists(digest):
            return None
        try:
            return await self.stat_data(digest)
        except RegistryError:
            return None

    async def _linking_repository(self, digest):
        """The name of a repository that links C{digest}, or None."""
        checked = set()
        found = []

        async def look(directory):
            name = repository_of(directory)
            if name not in checked:
                checked.add(name)
                if await self.is_linked(name, digest):
                    found.append(name)
            return bool(found)

        await self._io.each_repository_dir(("_layers", "_manifests"), look)
        return found[0] if found else None


__all__ = ["BlobStore", "BlobDescriptor", "BLOB_MEDIA_TYPE"]
