"""
Garbage collection, the pure part: what a manifest references, what a
mark from the repositories' manifests reaches, and what a sweep may
remove. No I/O here: ``spectroreg.registry.gcscan`` reads the storage into
the structures below and ``spectroreg.registry.collector`` deletes.

The rules are Distribution's mark and sweep:

- every manifest revision of every repository is a root; with
  ``delete_untagged`` only the manifests a tag points at are, and the
  revisions nothing keeps are removed (as Distribution v3 does: a kept
  index keeps its children, and a kept manifest keeps its referrers, the
  manifests in the same repository whose ``subject`` it is);
- a kept manifest marks its own blob, its config and layers, and the
  manifests it lists (which, when they are revisions of the repository,
  are kept in turn);
- every blob no repository's kept manifest marks is eligible for
  deletion, and so are the layer links that point at it.
"""

import json

from spectroreg.registry.digests import parse_digest
from spectroreg.registry.errors import RegistryError


class References:
    """
    What one manifest body points at.

    @ivar blobs: digests of its config and layers (and, for Docker schema 1,
        its ``fsLayers``), in order, duplicates kept.
    @ivar children: digests of the manifests an index or manifest list names.
    @ivar subject: the digest of its ``subject``, or None.
    """

    __slots__ = ("blobs", "children", "subject")

    def __init__(self, blobs=(), children=(), subject=None):
        self.blobs = tuple(blobs)
        self.children = tuple(children)
        self.subject = subject

    def __eq__(self, other):
        if not isinstance(other, References):
            return NotImplemented
        return (self.blobs, self.children, self.subject) == (other.blobs, other.children, other.subject)

    def __repr__(self):
        return "References(blobs={!r}, children={!r}, subject={!r})".format(
            self.blobs, self.children, self.subject)


NOTHING = References()


def _digest_in(value):
    if isinstance(value, dict):
        value = value.get("digest")
    if not isinstance(value, str):
        return None
    try:
        return parse_digest(value)
    except RegistryError:
        return None


def references_of(body):
    """
    The L{References} of a stored manifest body (bytes), read leniently:
    a collector must not lose track of a blob because a manifest is of a
    kind a push would refuse today (schema 1, foreign layers, unknown
    fields). A body that is not a JSON object references nothing.
    """
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return NOTHING
    if not isinstance(document, dict):
        return NOTHING
    blobs = []
    config = _digest_in(document.get("config"))
    if config is not None:
        blobs.append(config)
    for key, field in (("layers", "digest"), ("fsLayers", "blobSum"), ("blobs", "digest")):
        entries = document.get(key)
        if isinstance(entries, list):
            for entry in entries:
                if isinstance(entry, dict):
                    found = _digest_in(entry.get(field))
                    if found is not None:
                        blobs.append(found)
    children = []
    entries = document.get("manifests")
    if isinstance(entries, list):
        for entry in entries:
            found = _digest_in(entry)
            if found is not None:
                children.append(found)
    return References(blobs, children, _digest_in(document.get("subject")))


class RepositoryState:
    """
    One repository as a collection found it.

    @ivar name: the repository name.
    @ivar revisions: set of manifest digests with a revision link.
    @ivar tags: dict tag -> digest its ``current`` link names.
    @ivar tag_index: dict tag -> set of digests in its ``index`` (history).
    @ivar manifests: dict digest -> L{References} for each revision whose
        body could be read (a revision missing here references nothing).
    @ivar layers: set of digests with a layer link.
    @ivar revision_times: dict digest -> when its revision link was last
        written (POSIX seconds), where known.
    """

    def __init__(self, name, revisions=(), tags=None, manifests=None, layers=(), tag_index=None,
                 revision_times=None):
        self.name = name
        self.revisions = set(revisions)
        self.tags = dict(tags or {})
        self.tag_index = {tag: set(digests) for tag, digests in (tag_index or {}).items()}
        self.manifests = dict(manifests or {})
        self.layers = set(layers)
        self.revision_times = dict(revision_times or {})


class Marking:
    """
    The result of L{mark}.

    @ivar marked: set of blob digests some kept manifest needs (manifest
        bodies included).
    @ivar kept: dict repository name -> set of kept revisions.
    @ivar untagged: dict repository name -> sorted list of revisions to
        remove (empty unless ``delete_untagged``).
    """

    def __init__(self, marked, kept, untagged):
        self.marked = marked
        self.kept = kept
        self.untagged = untagged

    @property
    def untagged_count(self):
        return sum(len(digests) for digests in self.untagged.values())


def _referrers_by_subject(repository):
    found = {}
    for digest in repository.revisions:
        references = repository.manifests.get(digest, NOTHING)
        if references.subject is not None:
            found.setdefault(references.subject, set()).add(digest)
    return found


def _keep(repository, roots):
    """The revisions of C{repository} that C{roots} keep: children and referrers, transitively."""
    referrers = _referrers_by_subject(repository)
    kept = set()
    pending = [digest for digest in roots if digest in repository.revisions]
    while pending:
        digest = pending.pop()
        if digest in kept:
            continue
        kept.add(digest)
        references = repository.manifests.get(digest, NOTHING)
        for child in references.children:
            if child in repository.revisions and child not in kept:
                pending.append(child)
        for referrer in referrers.get(digest, ()):
            if referrer not in kept:
                pending.append(referrer)
    return kept


def mark(repositories, delete_untagged=False, spared=None):
    """
    Mark from the manifests of C{repositories} (iterable of
    L{RepositoryState}). @return: L{Marking}.

    @param spared: with C{delete_untagged}, dict repository name -> untagged
        revisions to keep anyway (a collection that could not remove them
        marks again with them as roots).
    """
    spared = spared or {}
    marked = set()
    kept_by_name = {}
    untagged = {}
    for repository in repositories:
        if delete_untagged:
            roots = set(repository.tags.values()) | set(spared.get(repository.name, ()))
            kept = _keep(repository, roots)
            removed = repository.revisions - kept
            if removed:
                untagged[repository.name] = sorted(removed, key=str)
        else:
            kept = set(repository.revisions)
        kept_by_name[repository.name] = kept
        for digest in kept:
            marked.add(digest)
            references = repository.manifests.get(digest, NOTHING)
            marked.update(references.blobs)
            marked.update(references.children)
    return Marking(marked, kept_by_name, untagged)


def eligible_blobs(marking, blobs):
    """The digests among C{blobs} (iterable) that L{mark} left unmarked, sorted."""
    return sorted((digest for digest in set(blobs) if digest not in marking.marked), key=str)


def stale_links(marking, repositories):
    """
    Layer links a sweep removes: (name, digest) for each link to a blob no
    kept manifest marks (its data eligible for deletion, or already gone),
    sorted.
    """
    found = []
    for repository in repositories:
        for digest in repository.layers:
            if digest not in marking.marked:
                found.append((repository.name, digest))
    return sorted(found, key=lambda pair: (pair[0], str(pair[1])))


def is_old_enough(modified, now, grace_period):
    """Whether something last written at C{modified} is past C{grace_period} at C{now}."""
    return modified is not None and now - modified >= grace_period
