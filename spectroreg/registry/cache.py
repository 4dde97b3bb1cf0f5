"""
In-memory caches of the registry layer, all bounded.

``storage.cache.blobdescriptor: inmemory``: a bounded LRU of what blobs are.

Two maps, both bounded: digest -> (size, media type) for the global blob
store, and (repository, digest) for "this repository links this blob".
Every delete through the registry evicts the entry first, so the cache
never answers for a blob deleted here; ``forget`` lets offline or online
garbage collection evict blobs it removed.

``ManifestCache``: the bytes of recently served manifests by digest. A
digest names its content, so an entry can never be wrong; whether a
repository still has the manifest, or a tag still points at it, is read
from storage on every request (the links), so deletes, re-tags and other
daemons sharing the storage are seen at once.
"""

from collections import OrderedDict

from twisted.logger import Logger

from spectroreg.logging import debug_enabled

log = Logger()


def _debug_lookup(cache, key, hit):
    log.debug("cache {cache} {key}: {outcome}", cache=cache, key=key, outcome="hit" if hit else "miss")


class LRU:
    def __init__(self, capacity):
        self._capacity = capacity
        self._items = OrderedDict()

    def get(self, key):
        try:
            value = self._items.pop(key)
        except KeyError:
            return None
        self._items[key] = value
        return value

    def put(self, key, value):
        self._items.pop(key, None)
        self._items[key] = value
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)

    def pop(self, key):
        self._items.pop(key, None)

    def keys(self):
        return list(self._items)

    def __len__(self):
        return len(self._items)


class BlobDescriptorCache:
    """digest -> (size, media_type), and repository membership."""

    def __init__(self, capacity=10000):
        self._global = LRU(capacity)
        self._linked = LRU(capacity)

    def get(self, digest):
        found = self._global.get(digest)
        if debug_enabled():
            _debug_lookup("blobdescriptor", digest, found is not None)
        return found

    def put(self, digest, size, media_type):
        self._global.put(digest, (size, media_type))

    def is_linked(self, name, digest):
        linked = self._linked.get((name, digest)) is not None
        if debug_enabled():
            _debug_lookup("blobdescriptor", "{}@{}".format(name, digest), linked)
        return linked

    def link(self, name, digest):
        self._linked.put((name, digest), True)

    def unlink(self, name, digest):
        self._linked.pop((name, digest))

    def forget(self, digest):
        """The blob's data is gone: forget it everywhere."""
        self._global.pop(digest)
        for key in self._linked.keys():
            if key[1] == digest:
                self._linked.pop(key)

    def __len__(self):
        return len(self._global)


class ManifestCache:
    """digest -> L{spectroreg.registry.registry.ManifestRecord}, bounded in bytes."""

    def __init__(self, max_bytes=16 * 1024 * 1024, max_entry_bytes=1024 * 1024):
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        self._items = OrderedDict()
        self._bytes = 0

    def get(self, digest):
        record = self._items.pop(digest, None)
        if record is not None:
            self._items[digest] = record
        if debug_enabled():
            _debug_lookup("manifest", digest, record is not None)
        return record

    def put(self, record):
        size = len(record.body)
        if size > self.max_entry_bytes:
            return
        self.forget(record.digest)
        self._items[record.digest] = record
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, evicted = self._items.popitem(last=False)
            self._bytes -= len(evicted.body)

    def forget(self, digest):
        record = self._items.pop(digest, None)
        if record is not None:
            self._bytes -= len(record.body)

    def __len__(self):
        return len(self._items)

    @property
    def size(self):
        """Bytes held."""
        return self._bytes
