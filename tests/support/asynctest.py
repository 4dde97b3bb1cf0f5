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

from spectroreg.testing import async_test

__all__ = ["async_test"]
