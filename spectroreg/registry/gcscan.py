"""
Garbage collection, the reading part: the repositories' manifests, tags and
layer links, and the blobs in storage, read through any ``IStorageDriver``
into ``spectroreg.registry.gc``'s structures. Reads only.

Digests are taken from the layout's paths (``<alg>/<hex>/link``,
``blobs/<alg>/<xx>/<hex>/data``) as Distribution's enumerators do; a path
that is not a well-formed digest is ignored, and so is a revision or tag
whose ``link`` file is missing.
"""

from twisted.internet import defer
from twisted.logger import Logger

from spectroreg.registry import gc, paths
from spectroreg.registry.digests import parse_digest
from spectroreg.registry.errors import RegistryError
from spectroreg.registry.names import is_valid_tag
from spectroreg.storage.errors import PathNotFound
from spectroreg.storage.interfaces import SKIP_DIR

log = Logger()

# Manifest bodies read at once while scanning (S3 round trips overlap).
READ_CONCURRENCY = 8


def _digest(algorithm, encoded):
    try:
        return parse_digest("{}:{}".format(algorithm, encoded))
    except RegistryError:
        return None


async def _files(driver, root):
    """FileInfo of every file below C{root} ([] when it does not exist)."""
    found = []

    def visit(info):
        if not info.is_dir:
            found.append(info)

    try:
        await driver.walk(root, visit)
    except PathNotFound:
        return []
    return found


async def linked(driver, root):
    """
    {digest: FileInfo of its link} for each ``<root>/<alg>/<hex>/link``
    (layer links, revisions, a tag's index).
    """
    found = {}
    for info in await _files(driver, root):
        parts = info.path[len(root) + 1:].split("/")
        if len(parts) == 3 and parts[2] == "link":
            digest = _digest(parts[0], parts[1])
            if digest is not None:
                found[digest] = info
    return found


async def _read_link(driver, path):
    try:
        content = await driver.get_content(path)
    except PathNotFound:
        return None
    try:
        return parse_digest(content.decode("ascii").strip())
    except (RegistryError, UnicodeDecodeError):
        return None


async def current_tags(driver, name):
    """{tag: digest} from each ``tags/<tag>/current/link`` of C{name}."""
    tags = {}
    try:
        entries = await driver.list(paths.tags(name))
    except PathNotFound:
        return tags
    for entry in entries:
        tag = entry.rsplit("/", 1)[-1]
        if not is_valid_tag(tag):
            continue
        digest = await _read_link(driver, paths.tag_current_link(name, tag))
        if digest is not None:
            tags[tag] = digest
    return tags


async def _references(driver, digest, known=None):
    if known is not None and digest in known:
        return known[digest]
    try:
        body = await driver.get_content(paths.blob_data(digest))
    except PathNotFound:
        log.warn("garbage collection: manifest {digest} has a revision but no blob", digest=str(digest))
        return None
    references = gc.references_of(body)
    if known is not None:
        known[digest] = references
    return references


async def _bounded(calls, limit=READ_CONCURRENCY):
    semaphore = defer.DeferredSemaphore(limit)
    return await defer.gatherResults(
        [semaphore.run(lambda call=call: defer.ensureDeferred(call())) for call in calls],
        consumeErrors=True,
    )


async def repository_state(driver, name, known=None):
    """
    The L{gc.RepositoryState} of repository C{name}, with revision link times.

    @param known: a dict digest -> L{gc.References} of manifests read before
        (bodies are content-addressed: what a digest references never
        changes); filled with what is read.
    """
    revisions = await linked(driver, paths.revisions(name))
    tags = await current_tags(driver, name)
    tag_index = {}
    for tag in tags:
        tag_index[tag] = set(await linked(driver, paths.tag_dir(name, tag) + "/index"))
    layers = await linked(driver, paths.layers(name))
    ordered = sorted(revisions, key=str)
    bodies = await _bounded([lambda d=d: _references(driver, d, known) for d in ordered])
    manifests = {d: refs for d, refs in zip(ordered, bodies) if refs is not None}
    times = {d: info.modified for d, info in revisions.items()}
    return gc.RepositoryState(name, revisions, tags, manifests, layers, tag_index, times)


async def repository_names(driver):
    """Sorted names of the repositories holding ``_manifests`` or ``_layers``."""
    prefix = paths.REPOSITORIES + "/"
    names = set()

    def visit(info):
        if not info.is_dir:
            return None
        base = info.path.rsplit("/", 1)[-1]
        if base in ("_manifests", "_layers"):
            names.add(info.path[len(prefix):].rsplit("/", 1)[0])
            return SKIP_DIR
        if base.startswith("_"):
            return SKIP_DIR
        return None

    try:
        await driver.walk(paths.REPOSITORIES, visit)
    except PathNotFound:
        return []
    return sorted(names)


async def repositories(driver, known=None):
    """A L{gc.RepositoryState} per repository, sorted by name (C{known}: see L{repository_state})."""
    found = []
    for name in await repository_names(driver):
        found.append(await repository_state(driver, name, known))
    return found


async def blobs(driver):
    """{digest: FileInfo of its ``data``} for every blob in storage."""
    found = {}
    root = paths.BLOBS
    for info in await _files(driver, root):
        parts = info.path[len(root) + 1:].split("/")
        if len(parts) == 4 and parts[3] == "data" and parts[2][:2] == parts[1]:
            digest = _digest(parts[0], parts[2])
            if digest is not None:
                found[digest] = info
    return found
