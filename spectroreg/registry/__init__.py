"""
Repository logic on top of a storage driver (no HTTP here).

``Registry(driver, storage_settings, reactor=None)`` is the entry point;
its stores (``blobs``, ``uploads``, ``manifests``, ``tags``, ``referrers``,
``catalog``) do the work.
"""

from spectroreg.registry.blobs import BlobDescriptor
from spectroreg.registry.manifeststore import ManifestRecord
from spectroreg.registry.registry import Registry
from spectroreg.registry.uploads import UploadWriter

__all__ = ["Registry", "BlobDescriptor", "ManifestRecord", "UploadWriter"]
