"""
Building the configured storage driver from ``StorageSettings``.

The one place that knows which class serves which ``storage:`` driver name;
everything above it sees an ``IStorageDriver`` wrapped in
``ValidatingDriver``.
"""

from twisted.logger import Logger

from spectroreg.config.errors import ConfigError
from spectroreg.config.settings import FilesystemSettings
from spectroreg.storage.base import ValidatingDriver

log = Logger()

# As in Distribution's filesystem driver: fewer threads are raised to this.
MIN_FILESYSTEM_THREADS = 25


def driver_from_settings(storage_settings, reactor=None, observer=None):
    """
    The driver C{storage_settings} (a L{StorageSettings}) describes.

    @param reactor: the reactor the driver schedules on (default: the
        global one, imported lazily by each driver).
    @param observer: an L{spectroreg.ops.interfaces.IStorageObserver} told
        every operation's latency and outcome (the storage metrics), or None.
    @return: an L{IStorageDriver} (a L{ValidatingDriver}).
    @raise ConfigError: for an unknown driver name.
    """
    kind = storage_settings.driver
    if kind == "inmemory":
        from spectroreg.storage.inmemory import InMemoryDriver

        driver = InMemoryDriver(reactor=reactor)
    elif kind == "filesystem":
        from spectroreg.storage.filesystem import FilesystemDriver

        fs = storage_settings.filesystem or FilesystemSettings()
        maxthreads = fs.maxthreads
        if maxthreads < MIN_FILESYSTEM_THREADS:
            log.warn(
                "storage.filesystem.maxthreads {given} is below the minimum; using {minimum}",
                given=maxthreads,
                minimum=MIN_FILESYSTEM_THREADS,
            )
            maxthreads = MIN_FILESYSTEM_THREADS
        driver = FilesystemDriver(fs.rootdirectory, maxthreads=maxthreads, reactor=reactor)
    elif kind == "s3":
        from spectroreg.storage.s3 import S3Driver

        if storage_settings.s3 is None:
            raise ConfigError("storage.s3: the s3 driver needs its parameters (bucket, region, ...)")
        driver = S3Driver.from_settings(
            storage_settings.s3,
            reactor=reactor,
            redirect=not storage_settings.redirect_disable,
        )
    else:
        raise ConfigError("storage: unknown driver {!r} (inmemory, filesystem or s3)".format(kind))
    return ValidatingDriver(driver, observer=observer)
