"""The filesystem driver: the shared driver test suite, then what only a real disk has."""

import os

from twisted.trial import unittest

from spectroreg.storage.filesystem import FilesystemDriver
from spectroreg.storage.testing import StorageDriverTestsMixin


class FilesystemDriverTests(StorageDriverTestsMixin, unittest.TestCase):
    def make_driver(self):
        self.rootdirectory = self.mktemp()
        driver = FilesystemDriver(self.rootdirectory, maxthreads=8)
        self.addCleanup(driver.stop)
        return driver

    async def assert_nothing_left(self, driver):
        await super().assert_nothing_left(driver)
        # Below the driver too: no file (temporary or not) may remain.
        left = []
        for directory, _, files in os.walk(self.rootdirectory):
            left.extend(os.path.join(directory, name) for name in files)
        self.assertEqual(left, [])
