"""
Repository logic on top of a storage driver (no HTTP here).

``Registry(driver, storage_settings, reactor=None)`` is the entry point.
"""

from spectroreg.registry.registry import BlobDescriptor, ManifestRecord, Registry, UploadWriter

__all__ = ["Registry", "BlobDescriptor", "ManifestRecord", "UploadWriter"]
