"""
Small shared structures with bounded memory, used across the daemon.

L{LRU}: a map of at most C{capacity} entries that forgets the least
recently used first. L{Waiters}: Deferreds handed out to callers waiting
for one event, all fired together when it happens.
"""

from collections import OrderedDict

from twisted.internet import defer


class LRU:
    """
    At most C{capacity} entries; reading (L{get}) or writing (L{put}) an
    entry makes it the most recently used, and L{put} beyond the capacity
    drops the least recently used ones.
    """

    def __init__(self, capacity):
        self._capacity = capacity
        self._items = OrderedDict()

    @property
    def capacity(self):
        return self._capacity

    def get(self, key, default=None):
        try:
            value = self._items.pop(key)
        except KeyError:
            return default
        self._items[key] = value
        return value

    def peek(self, key, default=None):
        """The value of C{key} without making it recently used."""
        return self._items.get(key, default)

    def put(self, key, value):
        self._items.pop(key, None)
        self._items[key] = value
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)

    def pop(self, key, default=None):
        return self._items.pop(key, default)

    def pop_oldest(self):
        """
        Remove the least recently used entry (for callers bounding by more
        than the count, such as bytes held).
        @return: its (key, value). @raise KeyError: when there is none.
        """
        return self._items.popitem(last=False)

    def clear(self):
        self._items.clear()

    def keys(self):
        return list(self._items)

    def items(self):
        return list(self._items.items())

    def __contains__(self, key):
        return key in self._items

    def __len__(self):
        return len(self._items)


class Waiters:
    """
    Callers waiting for one event: L{wait} hands each a Deferred, L{fire}
    or L{fail} fires all of them (in the order they were handed out) and
    starts afresh. A waiter added while they fire waits for the next event.
    A waiter cancelled by its caller is forgotten; L{cancel_all} cancels
    every one (a service stopping).
    """

    def __init__(self):
        self._waiting = []

    def wait(self):
        d = defer.Deferred(self._forget)
        self._waiting.append(d)
        return d

    def _forget(self, d):
        if d in self._waiting:
            self._waiting.remove(d)

    def cancel_all(self):
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.cancel()

    def fire(self, result=None):
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(result)

    def fail(self, failure):
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.errback(failure)

    def __len__(self):
        return len(self._waiting)

    def __bool__(self):
        return bool(self._waiting)
