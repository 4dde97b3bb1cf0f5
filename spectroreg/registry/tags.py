"""
The tag store: a repository's tags, each a link to the manifest it names
(``_manifests/tags/<tag>/current/link``, with an index of every manifest it
ever named under ``index/``), as Distribution keeps them.
"""

from twisted.internet import defer
from zope.interface import implementer

from spectroreg.registry import paths
from spectroreg.registry.errors import manifest_unknown, name_unknown
from spectroreg.registry.interfaces import ITagStore
from spectroreg.registry.names import is_valid_tag
from spectroreg.storage.errors import PathNotFound


@implementer(ITagStore)
class TagStore:
    """@param io: the L{spectroreg.registry.storeio.StoreIO} every store shares."""

    def __init__(self, io):
        self._io = io

    async def get(self, name, tag):
        """The digest C{tag} names in C{name}. @raise RegistryError: MANIFEST_UNKNOWN."""
        digest = await self._io.read_link(paths.tag_current_link(name, tag))
        if digest is None:
            raise manifest_unknown(tag)
        return digest

    async def tag(self, name, tag, digest):
        """Point C{tag} at manifest C{digest} (the caller checked the manifest is stored)."""
        # Both at once: each needs only the revision, written before; neither
        # needs the other (the index is the tag's history, read by nobody
        # to resolve the tag).
        indexing = defer.ensureDeferred(self._io.write_link(paths.tag_index_link(name, tag, digest), digest))
        try:
            await self._io.write_link(paths.tag_current_link(name, tag), digest)
        finally:
            await indexing

    async def untag(self, name, tag):
        """Remove C{tag}. @raise RegistryError: MANIFEST_UNKNOWN."""
        await self.get(name, tag)
        await self._io.delete(paths.tag_dir(name, tag))

    async def all(self, name, must_exist=True):
        """
        Sorted tags. @raise RegistryError: NAME_UNKNOWN when the repository
        has no tags directory, as in Distribution: it never had a tagged
        manifest (only blobs, uploads or untagged manifests). A repository
        whose tags were all deleted lists none where the directory stays
        (filesystem), and is unknown where directories are implied (S3).
        """
        try:
            entries = await self._io.driver.list(paths.tags(name))
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

    async def untag_digest(self, name, digest):
        """Remove every tag of C{name} that names manifest C{digest}."""
        for tag in await self.all(name, must_exist=False):
            if await self._io.read_link(paths.tag_current_link(name, tag)) == digest:
                await self._io.delete(paths.tag_dir(name, tag))


__all__ = ["TagStore"]
