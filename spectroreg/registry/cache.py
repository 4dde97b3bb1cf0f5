"""
``storage.cache.blobdescriptor: inmemory``: a bounded LRU of what blobs are.

Two maps, both bounded: digest -> (size, media type) for the global blob
store, and (repository, digest) for "this repository links this blob".
Every delete through the registry evicts the entry first, so the cache
never answers for a blob deleted here; ``forget`` lets offline or online
garbage collection evict blobs it removed.
"""

from collections import OrderedDict


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
        return self._global.get(digest)

    def put(self, digest, size, media_type):
        self._global.put(digest, (size, media_type))

    def is_linked(self, name, digest):
        return self._linked.get((name, digest)) is not None

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
