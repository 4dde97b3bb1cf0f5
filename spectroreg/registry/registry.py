"""
The registry: repositories, blobs, uploads, manifests, tags, referrers and
the catalog on top of any ``IStorageDriver``, in Distribution's layout.

``Registry`` assembles the stores, each its own module, over one shared
L{StoreIO} (driver, write policy, guard):

- ``blobs``: L{spectroreg.registry.blobs.BlobStore}
- ``uploads``: L{spectroreg.registry.uploads.UploadStore}
- ``manifests``: L{spectroreg.registry.manifeststore.ManifestStore}
- ``tags``: L{spectroreg.registry.tags.TagStore}
- ``referrers``: L{spectroreg.registry.referrers.ReferrerIndex}
- ``catalog``: L{spectroreg.registry.catalog.Catalog}

It knows nothing of HTTP: failures are domain errors
(``spectroreg.registry.errors``) carrying an OCI code; ``spectroreg.api.errors``
decides how they are answered.
"""

from spectroreg.registry.blobs import BlobStore
from spectroreg.registry.cache import BlobDescriptorCache, ManifestCache
from spectroreg.registry.catalog import Catalog
from spectroreg.registry.descriptors import LocalDescriptors, NoDescriptors
from spectroreg.registry.manifeststore import ManifestStore
from spectroreg.registry.referrers import ReferrerIndex
from spectroreg.registry.storeio import StoreIO
from spectroreg.registry.tags import TagStore
from spectroreg.registry.uploads import UploadStore
from spectroreg.storage.readonly import ReadOnlyDriver


class Registry:
    """
    Repository logic on an IStorageDriver: the stores, and the settings
    every caller asks about.

    @param driver: an L{IStorageDriver}.
    @param storage_settings: L{spectroreg.config.settings.StorageSettings}.
    @param reactor: IReactorTime (for upload timestamps and purging).
    @param descriptors: the descriptor cache shared with other daemons
        (L{spectroreg.registry.rediscache}), or None for this process's own.
    """

    def __init__(self, driver, storage_settings, reactor=None, cache_capacity=10000, descriptors=None):
        # Read-only mode: nothing may reach storage that could change it,
        # whatever path it comes from (writes are also refused up front).
        self.driver = ReadOnlyDriver(driver) if storage_settings.readonly else driver
        self.cache = BlobDescriptorCache(cache_capacity) if storage_settings.blobdescriptor_cache == "inmemory" else None
        # Another daemon may share the storage: see spectroreg.registry.descriptors.
        if descriptors is None:
            descriptors = LocalDescriptors(self.cache) if self.cache is not None else NoDescriptors()
        # The cache shared with other daemons (Redis), for the metrics.
        self.shared_cache = descriptors if self.cache is None and not isinstance(descriptors, NoDescriptors) else None
        self._io = StoreIO(self.driver, storage_settings, reactor)
        manifest_cache = ManifestCache()
        self.blobs = BlobStore(self._io, descriptors, manifest_cache)
        self.uploads = UploadStore(self._io, self.blobs)
        self.tags = TagStore(self._io)
        self.referrers = ReferrerIndex(self._io)
        self.manifests = ManifestStore(self._io, self.blobs, self.tags, self.referrers, manifest_cache)
        self.catalog = Catalog(self._io)

    @property
    def settings(self):
        """L{spectroreg.config.settings.StorageSettings}, as every store sees them."""
        return self._io.settings

    @settings.setter
    def settings(self, settings):
        self._io.settings = settings

    @property
    def guard(self):
        """
        Online garbage collection's handshake (spectroreg.registry.gcguard):
        a StorageGuard when storage.maintenance.gc is enabled, else a NoGuard.
        """
        return self._io.guard

    @guard.setter
    def guard(self, guard):
        self._io.guard = guard

    @property
    def delete_enabled(self):
        return bool(self.settings.delete_enabled)

    @property
    def readonly(self):
        return bool(self.settings.readonly)

    def check_writable(self):
        """@raise RegistryError: UNSUPPORTED in read-only mode."""
        self._io.check_writable()

    def check_delete(self):
        """@raise RegistryError: UNSUPPORTED in read-only mode or when deletes are disabled."""
        self._io.check_delete()


__all__ = ["Registry"]
