"""
The referrers of a manifest (OCI 1.1): the manifests in a repository whose
``subject`` names it, kept as an index of descriptors under
``_referrers/<subject>/<algorithm>/<hex>/descriptor`` once the repository's
index is complete (``_referrers/complete``), and found from the manifest
revisions themselves before that (a tree Distribution wrote has none).
"""

import json

from zope.interface import implementer

from spectroreg.registry import manifests as mf
from spectroreg.registry import paths
from spectroreg.registry.digests import parse_digest
from spectroreg.registry.errors import RegistryError
from spectroreg.registry.interfaces import IReferrerIndex
from spectroreg.storage.errors import PathNotFound


def referrer_descriptor(digest, size, manifest):
    """The descriptor (dict) listing manifest C{digest} among its subject's referrers."""
    descriptor = {"mediaType": manifest.media_type, "digest": str(digest), "size": size}
    if manifest.artifact_type:
        descriptor["artifactType"] = manifest.artifact_type
    if manifest.annotations:
        descriptor["annotations"] = manifest.annotations
    return descriptor


@implementer(IReferrerIndex)
class ReferrerIndex:
    """@param io: the L{spectroreg.registry.storeio.StoreIO} every store shares."""

    def __init__(self, io):
        self._io = io

    async def get(self, name, digest, artifact_type=None):
        """
        Descriptors (dicts) of the manifests in C{name} whose subject is
        C{digest}, optionally only those of C{artifact_type}; sorted by digest.

        Reads only, so it works in read-only mode and on a read-only volume:
        a repository without a complete index (a tree Distribution wrote)
        is answered from its manifest revisions, and its index is built by
        the next manifest push.
        """
        if await self._io.exists(paths.referrers_complete(name)):
            found = await self._indexed(name, digest)
        else:
            found = [referrer_descriptor(referrer, size, manifest)
                     for referrer, size, manifest in await self._revisions_with_subject(name)
                     if manifest.subject.digest == digest]
        if artifact_type is not None:
            found = [d for d in found if d.get("artifactType") == artifact_type]
        found.sort(key=lambda d: d["digest"])
        return found

    async def add(self, name, digest, size, manifest):
        """
        Index manifest C{digest} (C{size} bytes) under its subject, building
        the repository's index first when it has none: reads never write it.
        """
        if not await self._io.exists(paths.referrers_complete(name)):
            await self.rebuild(name)
        if manifest.subject is not None:
            await self._add(name, digest, size, manifest)

    async def remove(self, name, subject, digest):
        """Drop manifest C{digest} from the referrers of C{subject}."""
        await self._io.delete(paths.referrer_entry(name, subject, digest).rsplit("/", 1)[0])

    async def rebuild(self, name):
        """Rebuild C{name}'s referrers index from its manifest revisions (a write)."""
        self._io.check_writable()
        found = await self._revisions_with_subject(name)
        for digest, size, manifest in found:
            await self._add(name, digest, size, manifest)
        await self._io.driver.put_content(paths.referrers_complete(name), b"1")
        return len(found)

    async def _add(self, name, digest, size, manifest):
        path = paths.referrer_entry(name, manifest.subject.digest, digest)
        content = json.dumps(referrer_descriptor(digest, size, manifest), sort_keys=True)
        await self._io.driver.put_content(path, content.encode("utf-8"))

    async def _revisions_with_subject(self, name):
        """(digest, size, manifest) of each manifest revision of C{name} that has a subject; reads only."""
        found = []
        for algorithm_dir in await self._io.list(paths.revisions(name)):
            algorithm = algorithm_dir.rsplit("/", 1)[-1]
            for revision in await self._io.list(algorithm_dir):
                try:
                    digest = parse_digest("{}:{}".format(algorithm, revision.rsplit("/", 1)[-1]))
                    body = await self._io.driver.get_content(paths.blob_data(digest))
                    manifest = mf.parse_manifest(body)
                except (RegistryError, PathNotFound):
                    continue
                if manifest.subject is not None:
                    found.append((digest, len(body), manifest))
        return found

    async def _indexed(self, name, digest):
        found = []
        for algorithm_dir in await self._io.list(paths.referrers_subject_dir(name, digest)):
            for entry in await self._io.list(algorithm_dir):
                try:
                    content = await self._io.driver.get_content(entry + "/descriptor")
                    # Strictly: an entry written from a manifest accepted before
                    # manifests were read strictly may hold NaN or Infinity.
                    descriptor = mf.load_descriptor(content)
                    referrer = parse_digest(descriptor["digest"])
                except (PathNotFound, ValueError, KeyError, RegistryError):
                    continue
                # The revision may have been deleted by a Distribution sharing the tree.
                if await self._io.read_link(paths.revision_link(name, referrer)) is None:
                    continue
                found.append(descriptor)
        return found


__all__ = ["ReferrerIndex", "referrer_descriptor"]
