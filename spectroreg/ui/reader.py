"""
What the web pages show, read through the registry's public methods and the
storage layout, without HTTP.

Costs (storage operations) are bounded per page: see docs/ui.md. Manifest
bodies come from the registry's content-addressed manifest cache, image
configs from a small cache of ours (also content-addressed, so never stale).
"""

import json

from twisted.internet import defer

from spectroreg.registry import manifests as mf
from spectroreg.registry import paths
from spectroreg.bounded import LRU
from spectroreg.registry.digests import parse_digest
from spectroreg.registry.errors import RegistryError
from spectroreg.storage.errors import PathNotFound

# Tags looked at for a repository's line on the index page.
SUMMARY_TAGS = 20
# Child manifests of an index read to add up its size.
INDEX_CHILDREN = 16
# Image configs larger than this are not read (a config is a few KiB).
MAX_CONFIG_SIZE = 1024 * 1024
# Storage operations in flight at once for one page.
CONCURRENCY = 8

IMAGE_CONFIG_TYPES = frozenset([
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
])
# buildx's provenance/SBOM entries in an index.
_ATTESTATION = "attestation-manifest"


class ManifestView:
    """
    One manifest as the pages describe it.

    @ivar kind: "image", "index", "artifact" or "other".
    @ivar blobs: digest (str) -> size of the configs and layers it (and, for
        an index, the children read) stands for.
    @ivar size: their total: the compressed size a pull downloads (None
        when unknown).
    """

    def __init__(self, record, document, manifest):
        self.record = record
        self.digest = record.digest
        self.media_type = record.media_type
        self.document = document if isinstance(document, dict) else {}
        self.manifest = manifest
        self.artifact_type = None
        self.platforms = []
        self.children = []
        self.blobs = {}
        self.size = None
        self.config = None
        self.annotations = _string_map(self.document.get("annotations"))
        subject = manifest.subject if manifest is not None else None
        self.subject = subject.digest if subject is not None else None
        if manifest is None:
            self.kind = "other"
        elif manifest.media_type in mf.INDEX_TYPES:
            self.kind = "index"
            self.artifact_type = _text(self.document.get("artifactType"))
            for child in manifest.manifests:
                platform = _platform((child.raw or {}).get("platform"))
                attestation = (child.annotations or {}).get("vnd.docker.reference.type") == _ATTESTATION
                self.children.append((child, platform, attestation))
                if platform and not attestation and platform not in self.platforms:
                    self.platforms.append(platform)
        else:
            config_type = manifest.config.media_type if manifest.config is not None else None
            explicit = _text(self.document.get("artifactType"))
            if explicit or config_type not in IMAGE_CONFIG_TYPES:
                self.kind = "artifact"
                self.artifact_type = explicit or config_type
            else:
                self.kind = "image"
            for descriptor in manifest.references():
                self.blobs[str(descriptor.digest)] = descriptor.size
            self.size = sum(self.blobs.values())

    @property
    def layers(self):
        return self.manifest.layers if self.manifest is not None else []


def _text(value):
    return value if isinstance(value, str) and value else None


def _string_map(value):
    if not isinstance(value, dict):
        return {}
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}


def _platform(value):
    if not isinstance(value, dict):
        return None
    parts = [value.get("os"), value.get("architecture")]
    if not all(isinstance(p, str) and p for p in parts):
        return None
    text = "/".join(parts)
    variant = value.get("variant")
    if isinstance(variant, str) and variant:
        text += "/" + variant
    return text


# Bounds on what is kept of one image config (the cache holds many).
_MAX_ITEMS = 100
_MAX_TEXT = 1000


def _clip(value):
    if value is None:
        return None
    if not isinstance(value, str):
        value = json.dumps(value)
    return value if len(value) <= _MAX_TEXT else value[:_MAX_TEXT] + "\u2026"


def _words(value):
    if isinstance(value, str):
        return [_clip(value)]
    if isinstance(value, list):
        return [_clip(v) for v in value[:_MAX_ITEMS]]
    return None


def summarise_config(document):
    """
    What the pages show of an image config (a dict): platform, created,
    entrypoint, command, working directory, user, labels and history, each
    bounded in size. The environment is left out: it often holds secrets.
    """
    inner = document.get("config")
    if not isinstance(inner, dict):
        inner = {}
    labels = inner.get("Labels")
    history = []
    for entry in (document.get("history") or [])[:_MAX_ITEMS] if isinstance(document.get("history"), list) else []:
        if isinstance(entry, dict):
            history.append({
                "created": _clip(entry.get("created")) if isinstance(entry.get("created"), str) else None,
                "created_by": _clip(entry.get("created_by")) if isinstance(entry.get("created_by"), str) else "",
                "empty_layer": entry.get("empty_layer") is True,
            })
    return {
        "platform": _platform(document),
        "created": _clip(document.get("created")) if isinstance(document.get("created"), str) else None,
        "entrypoint": _words(inner.get("Entrypoint")),
        "cmd": _words(inner.get("Cmd")),
        "workdir": _clip(inner.get("WorkingDir")) if isinstance(inner.get("WorkingDir"), str) else None,
        "user": _clip(inner.get("User")) if isinstance(inner.get("User"), str) else None,
        "labels": {_clip(str(k)): _clip(v) for k, v in list(labels.items())[:_MAX_ITEMS]}
        if isinstance(labels, dict) else {},
        "history": history,
    }


class TagRow:
    """A tag, what it points at, and when it was last pushed (POSIX seconds or None)."""

    def __init__(self, tag, view, pushed):
        self.tag = tag
        self.view = view
        self.pushed = pushed
        self.created = None


class RepositorySummary:
    """
    A repository's line on the index page.

    @ivar partial: True when it has more tags than were looked at (the
        push time and size are then those of the first L{SUMMARY_TAGS}).
    """

    def __init__(self, name, tag_count, pushed, size, partial):
        self.name = name
        self.tag_count = tag_count
        self.pushed = pushed
        self.size = size
        self.partial = partial


async def bounded(factories, limit=CONCURRENCY):
    """Run coroutine functions C{factories}, at most C{limit} at a time; their results in order."""
    semaphore = defer.DeferredSemaphore(limit)
    deferreds = [semaphore.run(lambda f=f: defer.ensureDeferred(f())) for f in factories]
    try:
        return await defer.gatherResults(deferreds, consumeErrors=True)
    except defer.FirstError as error:
        error.subFailure.raiseException()


def page_after(items, last, n):
    """(the C{n} items after C{last} in sorted C{items}, whether more follow)."""
    if last:
        items = [item for item in items if item > last]
    return items[:n], len(items) > n


class RegistryReader:
    """
    Read helpers for the pages over a L{spectroreg.registry.Registry}.
    """

    def __init__(self, registry, config_capacity=256):
        self._registry = registry
        self._configs = LRU(config_capacity)

    @property
    def registry(self):
        return self._registry

    async def repositories(self):
        """Every repository name, sorted (one walk of the repositories tree)."""
        return await self._registry.catalog.names()

    async def tags(self, name):
        """
        Sorted tags. A repository whose tags were all deleted has none (the
        API's tags list may call it unknown, as Distribution does where
        directories are implied); the page still shows it.

        @raise RegistryError: NAME_UNKNOWN when there is no such repository.
        """
        try:
            return await self._registry.tags.all(name)
        except RegistryError as error:
            if error.code != "NAME_UNKNOWN" or not await self._registry.catalog.exists(name):
                raise
            return []

    async def view(self, name, reference, children=True):
        """
        The L{ManifestView} of C{reference} (tag or L{Digest}) in C{name};
        with C{children}, an index's children are read (up to
        L{INDEX_CHILDREN}) to add up its size.
        @raise RegistryError: MANIFEST_UNKNOWN.
        """
        record = await self._registry.manifests.get(name, reference)
        try:
            document = mf.load_json(record.body)
        except RegistryError:
            document = None
        try:
            manifest = mf.parse_manifest(record.body) if document is not None else None
        except RegistryError:
            manifest = None
        view = ManifestView(record, document, manifest)
        if children and view.kind == "index":
            await self._add_children(name, view)
        return view

    async def _add_children(self, name, view):
        wanted = [child.digest for child, _, attestation in view.children if not attestation]

        async def child_view(digest):
            try:
                return await self.view(name, digest, children=False)
            except RegistryError:
                return None

        complete = len(wanted) <= INDEX_CHILDREN
        found = await bounded([lambda d=d: child_view(d) for d in wanted[:INDEX_CHILDREN]])
        for child in found:
            if child is None:
                complete = False
                continue
            view.blobs.update(child.blobs)
        view.size = sum(view.blobs.values()) if complete else None

    async def pushed(self, name, tag):
        """When C{tag} was last pushed (its link file's time), or None."""
        try:
            info = await self._registry.driver.stat(paths.tag_current_link(name, tag))
        except PathNotFound:
            return None
        return info.modified or None

    async def tag_row(self, name, tag, with_config=True):
        """A L{TagRow}, or None when the tag vanished meanwhile."""
        try:
            view = await self.view(name, tag)
        except RegistryError:
            return None
        row = TagRow(tag, view, await self.pushed(name, tag))
        if with_config and view.kind == "image":
            config = await self.config(view)
            if config is not None:
                row.created = _text(config.get("created"))
        return row

    async def tag_rows(self, name, tags, with_config=True):
        rows = await bounded([lambda t=t: self.tag_row(name, t, with_config) for t in tags])
        return [row for row in rows if row is not None]

    async def summary(self, name):
        """A L{RepositorySummary} from the first L{SUMMARY_TAGS} tags."""
        try:
            tags = await self._registry.tags.all(name, must_exist=False)
        except RegistryError:
            tags = []
        rows = await self.tag_rows(name, tags[:SUMMARY_TAGS], with_config=False)
        blobs = {}
        known = True
        for row in rows:
            if row.view.size is None and row.view.kind != "other":
                known = False
            blobs.update(row.view.blobs)
        times = [row.pushed for row in rows if row.pushed]
        size = sum(blobs.values()) if (known and rows) else None
        return RepositorySummary(name, len(tags), max(times) if times else None, size,
                                 len(tags) > SUMMARY_TAGS)

    async def summaries(self, names):
        return await bounded([lambda n=n: self.summary(n) for n in names], limit=4)

    async def config(self, view):
        """The L{summarise_config} of an image L{ManifestView}'s config, or None."""
        descriptor = view.manifest.config if view.manifest is not None else None
        if descriptor is None or descriptor.size > MAX_CONFIG_SIZE:
            return None
        key = str(descriptor.digest)
        cached = self._configs.get(key)
        if cached is not None:
            return cached
        try:
            body = await self._registry.driver.get_content(paths.blob_data(descriptor.digest))
            document = json.loads(body.decode("utf-8"))
        except (PathNotFound, UnicodeDecodeError, ValueError, RecursionError):
            return None
        if not isinstance(document, dict):
            return None
        summary = summarise_config(document)
        self._configs.put(key, summary)
        return summary

    async def referrers(self, name, digest):
        """Descriptors (dicts) of the manifests whose subject is C{digest}."""
        found = []
        for descriptor in await self._registry.referrers.get(name, digest):
            try:
                parse_digest(descriptor.get("digest"))
            except (RegistryError, TypeError, AttributeError):
                continue
            found.append(descriptor)
        return found


__all__ = ["RegistryReader", "ManifestView", "TagRow", "RepositorySummary", "page_after", "bounded",
           "SUMMARY_TAGS"]
