"""
The blob descriptor caches as the registry sees them: what a blob is (size,
media type) and whether a repository links it, looked up through tickets
(see L{spectroreg.registry.cache}), asynchronously so that a cache shared
between daemons (Redis, L{spectroreg.registry.rediscache}) fits the same
seam as the in-process one.

Which answer may be kept where is decided here, for a registry that other
daemons may share storage with (docs/scaling.md):

 - what a digest's data is never changes while the data exists (a digest
   names its content), so it may be kept in process; only garbage
   collection removes it, and a read that finds the data gone forgets it;
 - whether a repository links a blob changes with any daemon's delete, so
   it is kept only where every daemon invalidates it: in Redis, never in
   one process's memory.
"""

from twisted.internet import defer
from zope.interface import Interface, implementer

from spectroreg.registry.cache import Ticket


class IDescriptorCache(Interface):
    """The registry's blob descriptor cache."""

    def descriptor(digest):
        """
        A Deferred (or coroutine) firing with a L{Ticket} whose value is the
        blob's (size, media_type), or None on a miss; fill it with what
        storage said.
        """

    def link(name, digest):
        """
        A Deferred (or coroutine) firing with a L{Ticket} whose value is
        True when repository C{name} is known to link C{digest}, or None.
        """

    def unlink(name, digest):
        """
        C{name} no longer links C{digest} (or may not: a delete is under
        way). @return: a Deferred fired once every daemon sharing the cache
        will miss it (the in-process part is done before this returns, so
        a caller that cannot wait loses nothing in process).
        """

    def forget(digest):
        """
        The blob's data is gone: forget it for every repository.
        @return: a Deferred, as L{unlink}'s.
        """


class _Miss(Ticket):
    def __init__(self):
        Ticket.__init__(self, None, None, None, None)

    def fill(self, value):
        return False


MISS = _Miss()


@implementer(IDescriptorCache)
class NoDescriptors:
    """``storage.cache.blobdescriptor`` unset: never holds anything."""

    async def descriptor(self, digest):
        return MISS

    async def link(self, name, digest):
        return MISS

    def unlink(self, name, digest):
        return defer.succeed(None)

    def forget(self, digest):
        return defer.succeed(None)


@implementer(IDescriptorCache)
class LocalDescriptors:
    """
    ``storage.cache.blobdescriptor: inmemory``: descriptors in this
    process (L{spectroreg.registry.cache.BlobDescriptorCache}); repository
    membership is not kept, since another daemon's delete could not reach
    it.
    """

    def __init__(self, cache):
        self.cache = cache

    async def descriptor(self, digest):
        return self.cache.descriptor(digest)

    async def link(self, name, digest):
        return MISS

    def unlink(self, name, digest):
        self.cache.unlink(name, digest)
        return defer.succeed(None)

    def forget(self, digest):
        self.cache.forget(digest)
        return defer.succeed(None)
