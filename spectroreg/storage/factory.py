"""
Building the configured storage driver from ``StorageSettings``.

The one place that knows which class serves which ``storage:`` driver name
(L{DRIVERS}: one builder per name of
L{spectroreg.config.sections.storage.SUPPORTED_DRIVERS}); everything above it
sees an ``IStorageDriver`` wrapped in ``ValidatingDriver``.
"""

from twisted.logger import Logger

from spectroreg.config.errors import ConfigError
from spectroreg.config.settings import FilesystemSettings
from spectroreg.storage.base import ValidatingDriver

log = Logger()

# As in Distribution's filesystem driver: fewer threads are raised to this.
MIN_FILESYSTEM_THREADS = 25


def _inmemory(storage_settings, reactor):
    from spectroreg.storage.inmemory import InMemoryDriver

    return InMemoryDriver(reactor=reactor)


def _filesystem(storage_settings, reactor):
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
    return FilesystemDriver(fs.rootdirectory, maxthreads=maxthreads, reactor=reactor)


def _s3(storage_settings, reactor):
    from spectroreg.storage.s3 import S3Driver

    if storage_settings.s3 is None:
        raise ConfigError("storage.s3: the s3 driver needs its parameters (bucket, region, ...)")
    return S3Driver.from_settings(
        storage_settings.s3,
        reactor=reactor,
        redirect=not storage_settings.redirect_disable,
    )


# Driver name (as in the configuration) -> builder(storage settings, reactor).
DRIVERS = {"inmemory": _inmemory, "filesystem": _filesystem, "s3": _s3}


def driver_from_settings(storage_settings, reactor=None, observer=None):
    """
    The driver C{storage_settings} (a L{StorageSettings}) describes.

    @param reactor: the reactor the driver schedules on (default: the
        global one, imported lazily by each driver).
    @param observer: an L{spectroreg.ops.interfaces.IStorageObserver} told
        every operation's latency and outcome (the storage metrics), or None.
    @return: an L{IStorageDriver} (a L{ValidatingDriver}).
    @raise ConfigError: for a driver name without a builder.
    """
    build = DRIVERS.get(storage_settings.driver)
    if build is None:
        names = list(DRIVERS)
        raise ConfigError("storage: unknown driver {!r} ({} or {})".format(
            storage_settings.driver, ", ".join(names[:-1]), names[-1]))
    return ValidatingDriver(build(storage_settings, reactor), observer=observer)
