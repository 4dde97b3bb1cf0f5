"""
In-memory caches of the registry layer, all bounded, none able to bring
back what storage no longer holds.

``storage.cache.blobdescriptor: inmemory``: L{BlobDescriptorCache}, a
bounded LRU of what blobs are: digest -> (size, media type) for the global
blob store, and (repository, digest) for "this repository links this blob".

L{ManifestCache}: the bytes of recently served manifests by digest. A digest
names its content, so an entry is never wrong about the bytes; whether a
repository still has the manifest, or a tag still points at it, is read from
storage on every request (the links), so deletes, re-tags and other daemons
sharing the storage are seen at once.

Every fill goes through a L{Ticket} taken B{before} the storage read (or
write) whose result it caches. An invalidation (a delete, garbage
collection, data found missing) bumps the key's generation, and a ticket
taken before the bump cannot fill any more: a lookup that started before a
delete, and finishes after it, cannot put back what the delete removed. The
registry invalidates after the storage change has completed (and before it,
so the cache stops answering at once); lookups that start in between read
storage in either state, and their tickets are void by the time they fill.
There is no other way to put anything into these caches.
"""


from twisted.logger import Logger

from spectroreg.bounded import LRU
from spectroreg.logging import debug_enabled

log = Logger()


def _debug_lookup(cache, key, hit):
    log.debug("cache {cache} {key}: {outcome}", cache=cache, key=key, outcome="hit" if hit else "miss")


class Generations:
    """
    Version counters for cache keys, in a fixed number of stripes (bounded
    memory, whatever the number of keys). Keys sharing a stripe invalidate
    each other's tickets: at worst a fill is skipped, never a stale one kept.
    """

    def __init__(self, stripes=4096):
        self._counts = [0] * stripes

    def _stripe(self, key):
        return hash(key) % len(self._counts)

    def token(self, key):
        """The generation of C{key} now: hand it back to L{valid}."""
        stripe = self._stripe(key)
        return stripe, self._counts[stripe]

    def valid(self, token):
        """Whether nothing sharing the token's stripe was invalidated since."""
        stripe, count = token
        return self._counts[stripe] == count

    def bump(self, key):
        self._counts[self._stripe(key)] += 1


class Ticket:
    """
    One lookup: C{value} is what the cache holds (None on a miss); L{fill}
    stores what storage said, unless the key was invalidated since the
    ticket was taken.
    """

    __slots__ = ("value", "_store", "_generations", "_token")

    def __init__(self, value, store, generations, token):
        self.value = value
        self._store = store
        self._generations = generations
        self._token = token

    def fill(self, value):
        """@return: whether C{value} was kept."""
        if not self._generations.valid(self._token):
            return False
        self._store(value)
        return True


class BlobDescriptorCache:
    """
    digest -> (size, media_type), and repository membership. One generation
    per digest covers both maps: unlinking a blob from one repository voids
    the pending fills of every lookup of that digest.
    """

    # Lookups through tickets, for the metrics (read when scraped).
    hits = 0
    misses = 0

    def __init__(self, capacity=10000, generations=None):
        self._global = LRU(capacity)
        self._linked = LRU(capacity)
        self._generations = generations or Generations()

    def _counted(self, key, value):
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        if debug_enabled():
            _debug_lookup("blobdescriptor", key, value is not None)
        return value

    def descriptor(self, digest):
        """A L{Ticket} for the blob's (size, media_type)."""
        token = self._generations.token(digest)
        return Ticket(self._counted(digest, self._global.get(digest)), lambda value: self._global.put(digest, value),
                      self._generations, token)

    def link(self, name, digest):
        """A L{Ticket} for "C{name} links C{digest}" (value True or None)."""
        key = (name, digest)
        token = self._generations.token(digest)
        return Ticket(self._counted("{}@{}".format(name, digest), self._linked.get(key)), lambda value: self._linked.put(key, True),
                      self._generations, token)

    def get(self, digest):
        """The cached (size, media_type) of C{digest}, or None (no ticket)."""
        found = self._global.get(digest)
        if debug_enabled():
            _debug_lookup("blobdescriptor", digest, found is not None)
        return found

    def is_linked(self, name, digest):
        linked = self._linked.get((name, digest)) is not None
        if debug_enabled():
            _debug_lookup("blobdescriptor", "{}@{}".format(name, digest), linked)
        return linked

    def unlink(self, name, digest):
        """C{name} no longer links C{digest} (or may not: a delete is under way)."""
        self._linked.pop((name, digest))
        self._generations.bump(digest)

    def forget(self, digest):
        """The blob's data is gone: forget it everywhere."""
        self._global.pop(digest)
        for key in self._linked.keys():
            if key[1] == digest:
                self._linked.pop(key)
        self._generations.bump(digest)

    def __len__(self):
        return len(self._global)


class ManifestCache:
    """digest -> L{spectroreg.registry.manifeststore.ManifestRecord}, bounded in bytes."""

    def __init__(self, max_bytes=16 * 1024 * 1024, max_entry_bytes=1024 * 1024, generations=None):
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        # Bounded by bytes below; never more entries than bytes either.
        self._items = LRU(max(1, max_bytes))
        self._bytes = 0
        self._generations = generations or Generations()

    hits = 0
    misses = 0

    def lookup(self, digest):
        """A L{Ticket} whose value is the cached record, or None."""
        token = self._generations.token(digest)
        record = self.get(digest)
        if record is None:
            self.misses += 1
        else:
            self.hits += 1
        return Ticket(record, self._put, self._generations, token)

    def get(self, digest):
        record = self._items.get(digest)
        if debug_enabled():
            _debug_lookup("manifest", digest, record is not None)
        return record

    def _put(self, record):
        size = len(record.body)
        if size > self.max_entry_bytes:
            return
        self._drop(record.digest)
        self._items.put(record.digest, record)
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, evicted = self._items.pop_oldest()
            self._bytes -= len(evicted.body)

    def _drop(self, digest):
        record = self._items.pop(digest)
        if record is not None:
            self._bytes -= len(record.body)

    def forget(self, digest):
        self._drop(digest)
        self._generations.bump(digest)

    def __len__(self):
        return len(self._items)

    @property
    def size(self):
        """Bytes held."""
        return self._bytes
