"""
``storage.cache.blobdescriptor: redis``: the blob descriptor cache shared by
every daemon of a fleet, in Distribution's keys and layout, so spectroreg
and Distribution daemons share one cache during a migration:

 - ``blobs::<digest>``: hash ``digest``, ``size``, ``mediatype``;
 - ``repository::<name>::blobs``: set of the digests the repository links;
 - ``repository::<name>::blobs::<digest>``: hash ``mediatype`` (per
   repository).

A repository links a blob, for the cache, when the digest is in its set
B{and} the global hash has a size: Distribution clears the global hash when
it deletes a blob from a repository, and leaves the set.

Fills go through tickets like the in-process cache: a lookup reads
``spectroreg::generation::<digest>`` with the entry, and its fill is a script
that writes only while that counter is unchanged; every invalidation bumps it
(first, in the same pipeline) and lets it expire a day after its last bump,
so deleted digests leave nothing behind for good. A lookup that read storage before another
daemon's delete cannot put back what the delete removed.

Redis is a cache, not a dependency: when it fails or is slow, lookups miss
(storage answers), one warning is logged per outage, and invalidations that
could not be sent are sent first once Redis answers again.
"""

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from spectroreg.registry.descriptors import MISS, IDescriptorCache
from spectroreg.registry.redisclient import RedisBusy, RedisError, RedisUnavailable

log = Logger()

BLOB_MEDIA_TYPE = "application/octet-stream"

# Invalidations kept for replay while Redis is unreachable; beyond this
# the oldest are dropped, with an error (docs/scaling.md: flush the cache).
MAX_PENDING = 10000

# How long a generation counter outlives its last bump. A ticket is good for
# one storage read; a read that took this long would be the only way for a
# fill to slip past a counter that expired and started again.
GENERATION_TTL = 24 * 3600

_FILL_DESCRIPTOR = """
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], 'digest', ARGV[2], 'size', ARGV[3])
redis.call('HSETNX', KEYS[2], 'mediatype', ARGV[4])
return 1
"""

_FILL_LINK = """
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('HSETNX', KEYS[3], 'mediatype', ARGV[3])
return 1
"""


def blob_key(digest):
    return "blobs::{}".format(digest)


def members_key(name):
    return "repository::{}::blobs".format(name)


def repository_blob_key(name, digest):
    return "repository::{}::blobs::{}".format(name, digest)


def generation_key(digest):
    return "spectroreg::generation::{}".format(digest)


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else (value or "")


class _RedisTicket:
    __slots__ = ("value", "_fill")

    def __init__(self, value, fill):
        self.value = value
        self._fill = fill

    def fill(self, value):
        """Sent, not awaited: a fill that fails costs nothing but a later miss."""
        self._fill(value)
        return True


@implementer(IDescriptorCache)
class RedisDescriptors:
    """
    @param client: L{spectroreg.registry.redisclient.RedisClient}.
    """

    def __init__(self, client):
        self._client = client
        self._pending = []
        self._fills = set()
        self.down = False
        self.hits = 0
        self.misses = 0
        # Lookups and writes that fell back to storage because Redis failed, and outages.
        self.fallbacks = 0
        self.outages = 0

    async def _run(self, commands, limited=True):
        """
        Replies to C{commands}, after any invalidation still owed.
        @param limited: see L{RedisClient.pipeline}.
        @raise RedisUnavailable: Redis failed, or is busy (L{RedisBusy}).
        """
        owed = list(self._pending)
        try:
            replies = await self._client.pipeline(owed + list(commands), limited=limited)
        except RedisBusy:
            self.fallbacks += 1
            raise
        except RedisUnavailable as failure:
            self.fallbacks += 1
            if not self.down:
                self.down = True
                self.outages += 1
                log.warn("redis at {addr} is unavailable ({error}): answering from storage until it is back",
                         addr=self._client.settings.addr, error=str(failure))
            raise
        del self._pending[:len(owed)]
        if self.down:
            self.down = False
            log.info("redis at {addr} answers again", addr=self._client.settings.addr)
        replies = replies[len(owed):]
        for reply in replies:
            if isinstance(reply, RedisError):
                log.warn("redis refused a command: {error}", error=str(reply))
                raise RedisUnavailable(str(reply))
        return replies

    def _counted(self, value):
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def _send_fill(self, commands):
        d = defer.ensureDeferred(self._run(commands))
        d.addErrback(lambda failure: failure.trap(RedisUnavailable))
        self._fills.add(d)
        d.addBoth(lambda _: self._fills.discard(d))

    def settled(self):
        """A Deferred fired once every fill sent so far has been answered (tests)."""
        return defer.DeferredList(list(self._fills))

    async def descriptor(self, digest):
        try:
            token, (found, size, media_type) = await self._run([
                ("GET", generation_key(digest)),
                ("HMGET", blob_key(digest), "digest", "size", "mediatype"),
            ])
        except RedisUnavailable:
            return MISS
        value = None
        if found is not None and size is not None:
            try:
                value = (int(size), _text(media_type) or BLOB_MEDIA_TYPE)
            except ValueError:
                value = None

        def fill(value):
            self._send_fill([("EVAL", _FILL_DESCRIPTOR, 2, generation_key(digest), blob_key(digest),
                              _text(token), str(digest), value[0], value[1])])

        return _RedisTicket(self._counted(value), fill)

    async def link(self, name, digest):
        try:
            token, member, found = await self._run([
                ("GET", generation_key(digest)),
                ("SISMEMBER", members_key(name), str(digest)),
                ("HEXISTS", blob_key(digest), "size"),
            ])
        except RedisUnavailable:
            return MISS

        def fill(value):
            self._send_fill([("EVAL", _FILL_LINK, 3, generation_key(digest), members_key(name),
                              repository_blob_key(name, digest), _text(token), str(digest), BLOB_MEDIA_TYPE)])

        return _RedisTicket(self._counted(True if member == 1 and found == 1 else None), fill)

    async def _invalidate(self, commands):
        try:
            await self._run(commands, limited=False)
        except RedisUnavailable:
            self._pending.extend(commands)
            if len(self._pending) > MAX_PENDING:
                del self._pending[:len(self._pending) - MAX_PENDING]
                log.error("redis: too many invalidations owed while it is unavailable; "
                          "flush the cache's keys once it is back (docs/scaling.md)")

    def unlink(self, name, digest):
        return defer.ensureDeferred(self._invalidate([
            ("INCR", generation_key(digest)),
            ("EXPIRE", generation_key(digest), GENERATION_TTL),
            ("SREM", members_key(name), str(digest)),
            ("DEL", repository_blob_key(name, digest)),
        ]))

    def forget(self, digest):
        return defer.ensureDeferred(self._invalidate([
            ("INCR", generation_key(digest)),
            ("EXPIRE", generation_key(digest), GENERATION_TTL),
            ("DEL", blob_key(digest)),
        ]))

    def __len__(self):
        return 0
