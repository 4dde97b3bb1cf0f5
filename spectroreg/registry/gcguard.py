"""
The handshake between online garbage collection and the requests that
start to rely on a blob (a manifest PUT, a mount, publishing an upload).

Both sides leave their evidence in storage, so it holds between several
daemons sharing one bucket or directory:

- a request that is about to rely on digests first writes an *in-use
  marker* for each (``_spectroreg/gc/inuse/<alg>/<hex>/<token>``), then
  waits while a *tombstone* of a collection is there for any of them, and
  only then checks that what it needs exists;
- a collection that is about to delete a digest first writes a tombstone
  (``_spectroreg/gc/deleting/<alg>/<hex>/<token>``), then looks for a fresh
  in-use marker and gives up the delete if it finds one.

Whatever the interleaving, either the collection sees the marker, or the
request sees the tombstone and, once it is gone, sees what the collection
left. docs/storage.md has the argument in full. Each marker and tombstone
is a file of its own (a random token), so removing an old one never
removes a new one written beside it.

``_spectroreg`` sits beside ``blobs`` and ``repositories``, where
Distribution never looks.
"""

import uuid

from twisted.internet import defer, task
from zope.interface import Attribute, Interface, implementer

from spectroreg.registry import paths
from spectroreg.storage.errors import PathNotFound

GC_ROOT = paths.ROOT + "/_spectroreg/gc"
INUSE = GC_ROOT + "/inuse"
DELETING = GC_ROOT + "/deleting"

# A tombstone older than this belongs to a collection that died: requests
# stop waiting for it, and collections remove it. A collection never keeps
# one for more than a quarter of it (it gives the delete up instead).
TOMBSTONE_LIFETIME = 60.0
# How often a request looks again while a tombstone is there.
POLL_INTERVAL = 0.2
# A request writes its references within this fraction of the grace period
# after claiming, and a collection deletes within it after it started
# marking: together less than the grace period a marker counts for, the rest
# absorbing clocks that disagree a little and S3's whole-second timestamps.
WINDOW = 0.4


def inuse_dir(digest):
    return "{}/{}/{}".format(INUSE, digest.algorithm, digest.hex)


def tombstone_dir(digest):
    return "{}/{}/{}".format(DELETING, digest.algorithm, digest.hex)


def new_token():
    return uuid.uuid4().hex


class Claim:
    """
    What L{IBlobGuard.claim} recorded.

    @ivar at: when (POSIX seconds, the guard's clock), for L{IBlobGuard.still_fresh}.
    @ivar paths: the marker files written (none without online collection).
    """

    __slots__ = ("at", "paths")

    def __init__(self, at, paths=()):
        self.at = at
        self.paths = list(paths)


class IBlobGuard(Interface):
    """The request side of the handshake (see the module docstring)."""

    active = Attribute("Whether online collection may run against this storage (bool).")

    def claim(digests):
        """
        Record that the caller is about to rely on C{digests} (iterable of
        L{Digest}) and wait until no collection is deleting any of them.
        Afterwards the caller must look at storage itself (no cache) to see
        whether what it needs exists.

        @return: Deferred firing with a L{Claim}.
        """

    def still_fresh(claim):
        """
        Whether C{claim} (a L{Claim}) still protects: the caller writes what
        makes its blobs referenced (a revision, a link) only while it does,
        and claims again otherwise.
        """

    def release(claim):
        """
        Remove C{claim}'s markers, for a request that failed or did not use
        what it claimed (it needs no protection, and a refused request
        leaves nothing in storage). @return: Deferred firing with None.
        """


@implementer(IBlobGuard)
class NoGuard:
    """No online collection: nothing to record, nothing to wait for."""

    active = False

    def __init__(self, reactor=None):
        self._reactor = reactor

    def claim(self, digests):
        return defer.succeed(Claim(0.0))

    def still_fresh(self, claim):
        return True

    def release(self, claim):
        return defer.succeed(None)


async def _files(driver, directory):
    found = []

    def visit(info):
        if not info.is_dir:
            found.append(info)

    try:
        await driver.walk(directory, visit)
    except PathNotFound:
        return []
    return found


async def _delete(driver, path):
    try:
        await driver.delete(path)
    except PathNotFound:
        pass


@implementer(IBlobGuard)
class StorageGuard:
    """
    Both sides of the handshake on an C{IStorageDriver}.

    @param grace_period: seconds a blob is left alone after it was last
        written or claimed (``storage.maintenance.gc.graceperiod``).
    @param reactor: IReactorTime.
    """

    active = True

    def __init__(self, driver, grace_period, reactor, tombstone_lifetime=TOMBSTONE_LIFETIME,
                 poll_interval=POLL_INTERVAL):
        self.driver = driver
        self.grace_period = grace_period
        self._reactor = reactor
        self.tombstone_lifetime = tombstone_lifetime
        self.poll_interval = poll_interval

    def now(self):
        return self._reactor.seconds()

    # -- the request side -----------------------------------------------

    async def _mark(self, digests, claim):
        token = new_token()
        written = [inuse_dir(d) + "/" + token for d in digests]
        claim.paths.extend(written)
        await defer.gatherResults(
            [defer.ensureDeferred(self.driver.put_content(path, b"")) for path in written],
            consumeErrors=True,
        )

    async def _deleting(self, digests):
        """The digests among C{digests} a live collection is deleting."""
        found = []
        for digest in digests:
            now = self.now()
            for info in await _files(self.driver, tombstone_dir(digest)):
                if now - info.modified < self.tombstone_lifetime:
                    found.append(digest)
                    break
        return found

    async def _claim(self, digests):
        digests = sorted(set(digests), key=str)
        claim = Claim(self.now())
        started = claim.at
        await self._mark(digests, claim)
        while True:
            waiting = await self._deleting(digests)
            if not waiting or self.now() - started > self.tombstone_lifetime:
                return claim
            await task.deferLater(self._reactor, self.poll_interval, lambda: None)
            if not self.still_fresh(claim):
                # The markers written at first would not outlive the wait.
                claim.at = self.now()
                await self._mark(digests, claim)

    def claim(self, digests):
        return defer.ensureDeferred(self._claim(digests))

    def still_fresh(self, claim):
        return self.now() - claim.at < self.grace_period * WINDOW

    def in_window(self, started):
        """Whether a collection that started marking at C{started} may still delete."""
        return self.now() - started < self.grace_period * WINDOW

    async def _release(self, claim):
        for path in claim.paths:
            await _delete(self.driver, path)
        claim.paths = []

    def release(self, claim):
        return defer.ensureDeferred(self._release(claim))

    # -- the collection side ----------------------------------------------

    async def doom(self, digest):
        """Announce that C{digest} is about to be deleted. @return: the tombstone's path."""
        path = tombstone_dir(digest) + "/" + new_token()
        await self.driver.put_content(path, b"")
        return path

    async def in_use(self, digest):
        """Whether a request claimed C{digest} within the grace period."""
        now = self.now()
        for info in await _files(self.driver, inuse_dir(digest)):
            if now - info.modified < self.grace_period:
                return True
        return False

    async def lift(self, tombstone):
        """Remove a tombstone written by L{doom}."""
        await _delete(self.driver, tombstone)

    async def expire(self):
        """
        Remove in-use markers older than the grace period and tombstones
        older than their lifetime. @return: how many files were removed.
        """
        now = self.now()
        removed = 0
        for root, age in ((INUSE, self.grace_period), (DELETING, self.tombstone_lifetime)):
            for info in await _files(self.driver, root):
                if now - info.modified >= age:
                    await _delete(self.driver, info.path)
                    removed += 1
        return removed
