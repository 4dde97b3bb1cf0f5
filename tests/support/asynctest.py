"""
Running ``async def`` tests on every Twisted we support.

Twisted 22.4's trial does not await a coroutine returned by a test method: the
test passes without running. Every asynchronous test is therefore written as

    @async_test
    async def test_something(self):
        ...

inside a ``twisted.trial.unittest.TestCase``; ``tests.test_guard`` fails when
an ``async def test_*`` anywhere in the suite lacks the decorator.
"""

import functools

from twisted.internet import defer


def async_test(function):
    """Wrap an ``async def`` test so trial gets a Deferred on every version."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        return defer.ensureDeferred(function(*args, **kwargs))

    wrapper.__async_test__ = True
    return wrapper
