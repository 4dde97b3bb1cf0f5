"""
The catalog: which repositories exist, found by walking the storage tree
as Distribution does.
"""

from zope.interface import implementer

from spectroreg.registry import paths
from spectroreg.registry.interfaces import ICatalog
from spectroreg.registry.storeio import repository_of


@implementer(ICatalog)
class Catalog:
    """@param io: the L{spectroreg.registry.storeio.StoreIO} every store shares."""

    def __init__(self, io):
        self._io = io

    async def names(self):
        """
        Every repository name holding ``_layers``, sorted: as Distribution
        lists them, so a repository holding only blobs (pushed or mounted)
        is listed, and one holding only an upload is not.
        """
        names = []

        async def found(directory):
            names.append(repository_of(directory))
            return False

        await self._io.each_repository_dir("_layers", found)
        return sorted(names)

    async def exists(self, name):
        """Whether anything of repository C{name} is in storage."""
        return await self._io.exists(paths.repository(name))


__all__ = ["Catalog"]
