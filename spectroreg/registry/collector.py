"""
Garbage collection, the deleting part: Distribution's offline
``garbage-collect`` (``collect_offline``) and the collection the daemon runs
while it serves (``OnlineCollector``). The marking rules live in
``spectroreg.registry.gc``; the handshake with requests in
``spectroreg.registry.gcguard``; docs/storage.md explains why the online
collection never deletes what a request needs.
"""

from twisted.application.internet import TimerService
from twisted.internet import defer
from twisted.logger import Logger

from spectroreg.registry import gc, gcscan, paths
from spectroreg.storage.errors import PathNotFound

log = Logger()

# Manifests whose references an online collector remembers between runs.
REFERENCES_KEPT = 100000


async def _delete(driver, path):
    try:
        await driver.delete(path)
        return True
    except PathNotFound:
        return False


class Outcome:
    """What one collection did (or, in a dry run, would have done)."""

    def __init__(self):
        self.marked = 0
        self.eligible = []
        self.blobs_deleted = []
        self.bytes_freed = 0
        self.manifests_deleted = []
        self.links_deleted = 0
        self.skipped = 0
        self.stopped_early = False

    def __repr__(self):
        return "<Outcome marked={} eligible={} deleted={} manifests={} skipped={}>".format(
            self.marked, len(self.eligible), len(self.blobs_deleted), len(self.manifests_deleted), self.skipped)


async def remove_revision(driver, repository, digest):
    """
    Remove a manifest revision of C{repository} (a L{gc.RepositoryState}) as
    Distribution's ``RemoveManifest`` does: the revision, and its entry in
    each tag's index; plus our referrers entry when it has a subject.
    """
    name = repository.name
    for tag, history in sorted(repository.tag_index.items()):
        if digest in history:
            await _delete(driver, paths.tag_index_link(name, tag, digest).rsplit("/", 1)[0])
    await _delete(driver, paths.revision_dir(name, digest))
    subject = repository.manifests.get(digest, gc.NOTHING).subject
    if subject is not None:
        await _delete(driver, paths.referrer_entry(name, subject, digest).rsplit("/", 1)[0])


def _emit_marking(emit, repository, marking):
    emit(repository.name)
    kept = marking.kept.get(repository.name, set())
    for digest in sorted(kept, key=str):
        emit("{}: marking manifest {} ".format(repository.name, digest))
        references = repository.manifests.get(digest, gc.NOTHING)
        for blob in list(references.blobs) + list(references.children):
            emit("{}: marking blob {}".format(repository.name, blob))
    for digest in marking.untagged.get(repository.name, ()):
        emit("manifest eligible for deletion: {}".format(digest))


async def collect_offline(driver, delete_untagged=False, dry_run=False, emit=None, forget=None):
    """
    Distribution's mark and sweep on a registry nobody writes to meanwhile
    (stopped, or in read-only mode). C{emit(line)} receives Distribution's
    output lines; C{forget(digest)} is told of each blob deleted.

    @return: L{Outcome}.
    """
    emit = emit or (lambda line: None)
    repositories = await gcscan.repositories(driver)
    marking = gc.mark(repositories, delete_untagged)
    for repository in repositories:
        _emit_marking(emit, repository, marking)
    blobs = await gcscan.blobs(driver)
    outcome = Outcome()
    outcome.marked = len(marking.marked)
    outcome.eligible = gc.eligible_blobs(marking, blobs)
    by_name = {repository.name: repository for repository in repositories}
    if not dry_run:
        for name, digests in sorted(marking.untagged.items()):
            for digest in digests:
                await remove_revision(driver, by_name[name], digest)
                outcome.manifests_deleted.append((name, digest))
    emit("")
    emit("{} blobs marked, {} blobs and {} manifests eligible for deletion".format(
        len(marking.marked), len(outcome.eligible), marking.untagged_count))
    for digest in outcome.eligible:
        emit("blob eligible for deletion: {}".format(digest))
        if dry_run:
            continue
        if await _delete(driver, paths.blob_dir(digest)):
            outcome.blobs_deleted.append(digest)
            outcome.bytes_freed += blobs[digest].size
        if forget is not None:
            forget(digest)
    if not dry_run:
        for name, digest in gc.stale_links(marking, repositories):
            if await _delete(driver, paths.layer_dir(name, digest)):
                outcome.links_deleted += 1
    return outcome


class OnlineCollector:
    """
    Collects garbage while the registry serves (``storage.maintenance.gc``).

    @param registry: the L{spectroreg.registry.Registry} (its driver, and its
        caches to tell of what is deleted).
    @param guard: the L{spectroreg.registry.gcguard.StorageGuard} the
        registry's requests claim through.
    @param settings: L{spectroreg.config.settings.GarbageCollectSettings}.
    @param reactor: IReactorTime.
    @param metrics: None, or what counts collections: its
        C{gc_run(blobs_deleted=, bytes_freed=)} is called after each one
        (a dry run frees nothing).
    """

    def __init__(self, registry, guard, settings, reactor, metrics=None):
        self.registry = registry
        self.driver = registry.driver
        self.guard = guard
        self.settings = settings
        self._reactor = reactor
        self.runs = 0
        # What each manifest read so far references (content-addressed, so
        # never stale): later collections read only new manifests.
        self._references = {}
        self._stopping = False
        self.metrics = metrics

    def stop(self):
        """The daemon stops: a collection under way deletes nothing more."""
        self._stopping = True

    def now(self):
        return self._reactor.seconds()

    def _in_time(self, started):
        # A claim protects for the grace period and a request writes its
        # references within a part of it; a collection that deletes only
        # within the same part after it started marking sees every claim
        # it must see (spectroreg.registry.gcguard.WINDOW).
        return not self._stopping and self.guard.in_window(started)

    async def collect(self):
        """One collection. @return: L{Outcome}."""
        started = self.now()
        outcome = Outcome()
        if len(self._references) > REFERENCES_KEPT:
            self._references.clear()
        repositories = await gcscan.repositories(self.driver, self._references)
        marking = gc.mark(repositories, self.settings.deleteuntagged)
        blobs = await gcscan.blobs(self.driver)
        outcome.marked = len(marking.marked)
        spared = await self._sweep_revisions(repositories, marking, started, outcome)
        if outcome.stopped_early:
            return await self._finish(outcome)
        if spared:
            # What a revision left in place references stays marked.
            marking = gc.mark(repositories, True, spared)
        await self._sweep_blobs(repositories, marking, blobs, started, outcome)
        return await self._finish(outcome)

    async def _sweep_revisions(self, repositories, marking, started, outcome):
        """
        Delete the untagged revisions C{marking} found (deleteuntagged) that
        are past the grace period; stops early when out of time.

        @return: the revisions spared, name -> set of digests.
        """
        by_name = {repository.name: repository for repository in repositories}
        spared = {}
        for name, digests in sorted(marking.untagged.items()):
            repository = by_name[name]
            for digest in digests:
                if not self._in_time(started):
                    outcome.stopped_early = True
                    return spared
                written = repository.revision_times.get(digest)
                if self.settings.dryrun:
                    log.info("garbage collection (dry run): would delete manifest {name}@{digest}",
                             name=name, digest=str(digest))
                    removed = True
                elif not gc.is_old_enough(written, self.now(), self.guard.grace_period):
                    removed = False
                else:
                    action = lambda r=repository, d=digest: self._remove_revision(r, d)  # noqa: E731
                    removed = await self._guarded(digest, started, action)
                if removed:
                    outcome.manifests_deleted.append((name, digest))
                else:
                    outcome.skipped += 1
                    spared.setdefault(name, set()).add(digest)
        return spared

    async def _sweep_blobs(self, repositories, marking, blobs, started, outcome):
        """Delete the unmarked blobs past the grace period, and the links to them."""
        links = {}
        for name, digest in gc.stale_links(marking, repositories):
            links.setdefault(digest, []).append(name)
        eligible = gc.eligible_blobs(marking, blobs)
        outcome.eligible = eligible
        # A link whose blob is gone is removed the same careful way.
        doomed = sorted(set(eligible) | set(links), key=str)
        for digest in doomed:
            info = blobs.get(digest)
            if info is not None and not gc.is_old_enough(info.modified, self.now(), self.guard.grace_period):
                outcome.skipped += 1
                continue
            if not self._in_time(started):
                outcome.stopped_early = True
                break
            if self.settings.dryrun:
                log.info("garbage collection (dry run): blob eligible for deletion: {digest}", digest=str(digest))
                continue
            action = lambda d=digest, i=info, n=links.get(digest, ()): self._remove_blob(d, i, n)  # noqa: E731
            if await self._guarded(digest, started, action):
                if info is not None:
                    outcome.blobs_deleted.append(digest)
                    outcome.bytes_freed += info.size
                outcome.links_deleted += len(links.get(digest, ()))
            else:
                outcome.skipped += 1

    async def _finish(self, outcome):
        # Also in a dry run: requests keep writing markers.
        await self.guard.expire()
        self.runs += 1
        if self.metrics is not None:
            self.metrics.gc_run(blobs_deleted=len(outcome.blobs_deleted), bytes_freed=outcome.bytes_freed)
        return outcome

    async def _guarded(self, digest, started, action):
        """
        Delete under a tombstone: announce, look for a claim, re-check, act.
        @return: whether C{action} ran and did its work.
        """
        tombstone = await self.guard.doom(digest)
        doomed_at = self.now()
        try:
            if await self.guard.in_use(digest):
                return False
            if not self._in_time(started) or self.now() - doomed_at > self.guard.tombstone_lifetime / 4.0:
                return False
            return await action()
        finally:
            await self.guard.lift(tombstone)

    async def _remove_revision(self, repository, digest):
        name = repository.name
        # Re-checks: a tag moved onto it, or the revision was written again.
        if digest in (await gcscan.current_tags(self.driver, name)).values():
            return False
        try:
            info = await self.driver.stat(paths.revision_link(name, digest))
        except PathNotFound:
            return False
        if not gc.is_old_enough(info.modified, self.now(), self.guard.grace_period):
            return False
        await remove_revision(self.driver, repository, digest)
        await self.registry.blobs.forget_revision(name, digest)
        return True

    async def _remove_blob(self, digest, info, names):
        # Re-check: published (again) since it was listed.
        try:
            current = await self.driver.stat(paths.blob_data(digest))
        except PathNotFound:
            current = None
        if current is not None and (info is None or not gc.is_old_enough(
                current.modified, self.now(), self.guard.grace_period)):
            return False
        for name in names:
            await self.registry.blobs.unlinking(name, digest, lambda n=name: _delete(self.driver, paths.layer_dir(n, digest)))
        if current is not None:
            await _delete(self.driver, paths.blob_dir(digest))
        await self.registry.blobs.forget(digest)
        return True


class CollectionTimer(TimerService):
    """Runs C{collector} every C{interval} seconds on C{clock}; stopping it ends a collection early."""

    def __init__(self, collector, interval, clock):
        TimerService.__init__(self, interval, collect_step(collector))
        self.collector = collector
        self.clock = clock

    def startService(self):
        self.collector._stopping = False
        TimerService.startService(self)

    def stopService(self):
        self.collector.stop()
        return TimerService.stopService(self)


def collect_step(collector):
    """The timer's step: one collection, logged; never fails, so the timer keeps running."""

    async def run():
        try:
            outcome = await collector.collect()
        except Exception:
            log.failure("garbage collection failed")
            return None
        log.info(
            "garbage collection: {blobs} blob(s) ({size} bytes) and {manifests} manifest(s) {verb}, "
            "{skipped} left for later{stopped}",
            blobs=len(outcome.blobs_deleted) if not collector.settings.dryrun else len(outcome.eligible),
            size=outcome.bytes_freed,
            manifests=len(outcome.manifests_deleted),
            verb="eligible (dry run)" if collector.settings.dryrun else "deleted",
            skipped=outcome.skipped,
            stopped=" (out of time: the rest next time)" if outcome.stopped_early else "",
        )
        return outcome

    return lambda: defer.ensureDeferred(run())
