"""
What every store of the registry shares: the storage driver, the write
policy (read-only mode, deletes enabled), the clock, online garbage
collection's guard, and the few tolerant reads and writes every store
makes (existence, link files, delete and list that take a missing path
for an empty one, the walk over repositories).
"""

from twisted.logger import Logger

from spectroreg.registry import paths
from spectroreg.registry.digests import parse_digest
from spectroreg.registry.errors import RegistryError, readonly, unsupported
from spectroreg.registry.gcguard import NoGuard
from spectroreg.storage.errors import PathNotFound
from spectroreg.storage.interfaces import SKIP_DIR

log = Logger()


class StoreIO:
    """
    @ivar driver: the L{IStorageDriver} (read-only wrapped in read-only mode).
    @ivar settings: L{spectroreg.config.settings.StorageSettings}.
    @ivar guard: online garbage collection's handshake
        (L{spectroreg.registry.gcguard}); a L{NoGuard} when it is off.
    """

    def __init__(self, driver, settings, reactor=None):
        self.driver = driver
        self.settings = settings
        self.guard = NoGuard()
        self._reactor = reactor

    # -- policy ---------------------------------------------------------

    def now(self):
        if self._reactor is None:
            from twisted.internet import reactor

            self._reactor = reactor
        return self._reactor.seconds()

    def check_writable(self):
        """@raise RegistryError: UNSUPPORTED in read-only mode."""
        if self.settings.readonly:
            raise readonly()

    def check_delete(self):
        """@raise RegistryError: UNSUPPORTED in read-only mode or when deletes are disabled."""
        self.check_writable()
        if not self.settings.delete_enabled:
            raise unsupported("deletes are disabled (storage.delete.enabled)")

    # -- tolerant storage access ----------------------------------------

    async def exists(self, path):
        try:
            await self.driver.stat(path)
        except PathNotFound:
            return False
        return True

    async def read_link(self, path):
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

    async def write_link(self, path, digest):
        await self.driver.put_content(path, str(digest).encode("ascii"))

    async def delete(self, path):
        """Delete C{path}. @return: False when there was nothing to delete."""
        try:
            await self.driver.delete(path)
            return True
        except PathNotFound:
            return False

    async def list(self, path):
        """The children of C{path}; none when it does not exist."""
        try:
            return await self.driver.list(path)
        except PathNotFound:
            return []

    async def each_repository_dir(self, kind, found):
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


def repository_of(directory):
    """The repository name of a ``<repository>/<kind>`` directory the walk found."""
    return directory[len(paths.REPOSITORIES) + 1:].rsplit("/", 1)[0]


__all__ = ["StoreIO", "repository_of"]
