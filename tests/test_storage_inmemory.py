"""The in-memory driver passes the shared driver test suite."""

from twisted.trial import unittest

from spectroreg.storage.inmemory import InMemoryDriver
from spectroreg.storage.testing import StorageDriverTestsMixin


class InMemoryDriverTests(StorageDriverTestsMixin, unittest.TestCase):
    def make_driver(self):
        return InMemoryDriver()
