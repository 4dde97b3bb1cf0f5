"""
Helpers for testing code built on spectroreg, shipped with it (the shared
storage driver suite in ``spectroreg.storage.testing`` uses them).
"""

import functools

from twisted.internet import defer


def async_test(function):
    """
    Wrap an ``async def`` test method so trial gets a Deferred.

    Twisted 22.4's trial does not await a coroutine returned by a test: the
    test would pass without running. Use it inside a
    ``twisted.trial.unittest.TestCase`` (a ``SynchronousTestCase`` does not
    wait for Deferreds either).
    """

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        return defer.ensureDeferred(function(*args, **kwargs))

    wrapper.__async_test__ = True
    return wrapper
