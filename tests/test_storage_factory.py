"""driver_from_settings: which driver each storage setting builds."""

import sys
import types

from twisted.internet.task import Clock
from twisted.trial import unittest

from spectroreg.config.errors import ConfigError
from spectroreg.config.settings import FilesystemSettings, S3Settings, StorageSettings
from spectroreg.storage.base import ValidatingDriver
from spectroreg.storage.factory import driver_from_settings
from spectroreg.storage.filesystem import FilesystemDriver
from spectroreg.storage.inmemory import InMemoryDriver


class FactoryTests(unittest.SynchronousTestCase):
    def test_inmemory(self):
        clock = Clock()
        clock.advance(1234)
        driver = driver_from_settings(StorageSettings(driver="inmemory"), reactor=clock)
        self.assertIsInstance(driver, ValidatingDriver)
        self.assertIsInstance(driver.driver, InMemoryDriver)
        # The injected reactor is the driver's clock.
        driver.put_content("/a", b"x")
        self.assertEqual(self.successResultOf(driver.stat("/a")).modified, 1234)

    def test_filesystem(self):
        root = self.mktemp()
        driver = driver_from_settings(StorageSettings(
            driver="filesystem",
            filesystem=FilesystemSettings(rootdirectory=root, maxthreads=40)))
        self.addCleanup(driver.driver.close)
        self.assertIsInstance(driver.driver, FilesystemDriver)
        self.assertEqual(driver.name, "filesystem")
        self.assertEqual(driver.driver.rootdirectory, __import__("os").path.abspath(root))
        self.assertEqual(driver.driver.maxthreads, 40)

    def test_filesystem_defaults(self):
        driver = driver_from_settings(StorageSettings(driver="filesystem"))
        self.assertEqual(driver.driver.rootdirectory, "/var/lib/registry")
        self.assertEqual(driver.driver.maxthreads, 100)

    def test_filesystem_minimum_threads(self):
        """As in Distribution, fewer than 25 threads are raised to 25."""
        driver = driver_from_settings(StorageSettings(
            driver="filesystem",
            filesystem=FilesystemSettings(rootdirectory=self.mktemp(), maxthreads=2)))
        self.assertEqual(driver.driver.maxthreads, 25)

    def test_s3(self):
        """The s3 driver is imported only when configured and built from its settings."""
        calls = []

        class S3Driver:
            name = "s3"

            @classmethod
            def from_settings(cls, settings, reactor=None, redirect=True):
                calls.append((settings, reactor, redirect))
                return cls()

        module = types.ModuleType("spectroreg.storage.s3")
        module.S3Driver = S3Driver
        # In place: the import system reads the interpreter's own module table,
        # which replacing the sys.modules attribute would not change once the
        # real driver has been imported by another test.
        real = sys.modules.get("spectroreg.storage.s3")
        sys.modules["spectroreg.storage.s3"] = module

        def restore():
            if real is None:
                del sys.modules["spectroreg.storage.s3"]
            else:
                sys.modules["spectroreg.storage.s3"] = real

        self.addCleanup(restore)
        s3 = S3Settings(bucket="b")
        clock = Clock()
        driver = driver_from_settings(
            StorageSettings(driver="s3", s3=s3, redirect_disable=True), reactor=clock)
        self.assertIsInstance(driver.driver, S3Driver)
        self.assertEqual(calls, [(s3, clock, False)])
        driver_from_settings(StorageSettings(driver="s3", s3=s3), reactor=clock)
        self.assertEqual(calls[-1], (s3, clock, True))

    def test_unknown(self):
        error = self.assertRaises(ConfigError, driver_from_settings, StorageSettings(driver="azure"))
        self.assertEqual(str(error), "storage: unknown driver 'azure' (inmemory, filesystem or s3)")
        self.assertRaises(ConfigError, driver_from_settings, StorageSettings(driver="s3"))


class DriverNamesTests(unittest.SynchronousTestCase):
    def test_one_builder_per_supported_driver(self):
        """The configuration accepts exactly the driver names the factory builds."""
        from spectroreg.config.sections.storage import SUPPORTED_DRIVERS
        from spectroreg.storage.factory import DRIVERS

        self.assertEqual(sorted(DRIVERS), sorted(SUPPORTED_DRIVERS))
