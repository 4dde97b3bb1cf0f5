"""
Health checks as Distribution has them (``health`` in the config): each
check runs every ``interval``; with a ``threshold`` it counts as failing
only after that many failures in a row. While any check fails,
``/debug/health`` answers 503 with the failing checks and the registry's
own listener answers every request 503 ``UNAVAILABLE``.

- ``storagedriver``: stat ``/`` of the storage driver; "not found" is
  healthy (the backend answered), as in Distribution.
- ``file``: fails while the file exists (a maintenance switch).
- ``http``: a HEAD request must answer ``statuscode`` within ``timeout``.
- ``tcp``: a TCP connection must open within ``timeout``.

Unlike Distribution, each check also runs once at start (Distribution's
first run is one interval later), so a registry started in maintenance
mode is unavailable from its first request.
"""

import os

from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from zope.interface import implementer

from spectroreg.ops.interfaces import IHealth
from spectroreg.storage.errors import PathNotFound

log = Logger(namespace="spectroreg.health")


class CheckFailed(Exception):
    """A check's failure; the message is what /debug/health shows."""


# -- the checks: coroutine functions returning None or raising -----------------


class StorageCheck:
    def __init__(self, driver):
        self._driver = driver

    async def __call__(self):
        try:
            await self._driver.stat("/")
        except PathNotFound:
            return


class FileCheck:
    def __init__(self, path, exists=os.path.exists):
        self._path = path
        self._exists = exists

    async def __call__(self):
        # One stat; a local file system answers at once (as Distribution's os.Stat).
        if self._exists(os.path.abspath(self._path)):
            raise CheckFailed("file exists")


class HTTPCheck:
    def __init__(self, settings, reactor, agent=None):
        from twisted.web.client import Agent, HTTPConnectionPool
        from twisted.web.http_headers import Headers

        self._reactor = reactor
        self._uri = settings.uri
        self._status = settings.statuscode
        self._timeout = settings.timeout
        if agent is None:
            agent = Agent(reactor, connectTimeout=settings.timeout, pool=HTTPConnectionPool(reactor, persistent=False))
        self._agent = agent
        headers = Headers()
        for name, values in settings.headers.items():
            headers.setRawHeaders(name.encode("latin-1"), [value.encode("latin-1") for value in values])
        self._headers = headers

    async def __call__(self):
        d = self._agent.request(b"HEAD", self._uri.encode("utf-8"), self._headers.copy())
        d.addTimeout(self._timeout, self._reactor)
        try:
            response = await d
        except Exception as error:
            raise CheckFailed("{}: error while checking: {}".format(self._uri, _reason(error)))
        if response.code != self._status:
            raise CheckFailed("{}: downstream service returned unexpected status: {}".format(self._uri, response.code))


class TCPCheck:
    def __init__(self, settings, reactor):
        self._reactor = reactor
        self._addr = settings.addr
        self._timeout = settings.timeout

    async def __call__(self):
        from twisted.internet.endpoints import HostnameEndpoint
        from twisted.internet.protocol import Factory

        from spectroreg.config.addresses import split_host_port

        host, port = split_host_port(self._addr)
        endpoint = HostnameEndpoint(self._reactor, host, port, timeout=self._timeout)
        d = endpoint.connect(Factory.forProtocol(Protocol))
        d.addTimeout(self._timeout, self._reactor)
        try:
            connected = await d
        except Exception as error:
            raise CheckFailed("{}: connection failed: {}".format(self._addr, _reason(error)))
        connected.transport.loseConnection()


def _reason(error):
    if isinstance(error, (defer.TimeoutError, defer.CancelledError)):
        return "timed out"
    text = getattr(error, "osError", None) or str(error) or error.__class__.__name__
    return str(text).splitlines()[0][:200]


# -- running them ------------------------------------------------------------------


class Status:
    """
    One check's state, with Distribution's threshold rule: with a
    threshold, the error shows only after C{threshold} failures in a row;
    a success clears it.
    """

    def __init__(self, threshold=0):
        self.threshold = threshold
        self.count = 0
        self.error = None

    def update(self, error):
        if error is None:
            self.count = 0
        elif self.count < max(self.threshold, 1):
            self.count += 1
        self.error = error

    @property
    def failing(self):
        if self.error is None:
            return None
        if self.threshold and self.count < self.threshold:
            return None
        return self.error


class PeriodicCheck(Service):
    """Runs one check every C{interval} seconds (never two at once)."""

    def __init__(self, name, check, interval, threshold, reactor, on_change):
        self.name = name
        self.check = check
        self.interval = interval
        self.status = Status(threshold)
        self._reactor = reactor
        self._on_change = on_change
        self._call = None
        self._running_check = None

    def startService(self):
        Service.startService(self)
        self._run()

    def stopService(self):
        Service.stopService(self)
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        if self._running_check is not None:
            self._running_check.cancel()

    def _run(self):
        self._call = None
        self._running_check = defer.ensureDeferred(self._once())
        self._running_check.addErrback(lambda f: None)

    async def run_once(self):
        """Run the check now and record its outcome (for tests and the first run)."""
        await self._once()

    async def _once(self):
        try:
            await self.check()
            error = None
        except defer.CancelledError:
            if not self.running:
                return
            error = "cancelled"
        except CheckFailed as failure:
            error = str(failure)
        except Exception as failure:
            error = _reason(failure)
        before = self.status.failing
        self.status.update(error)
        after = self.status.failing
        self._running_check = None
        if before != after:
            self._on_change(self.name, before, after)
        if self.running:
            self._call = self._reactor.callLater(self.interval, self._run)


@implementer(IHealth)
class Health(MultiService):
    """All configured checks; L{healthy} is what every request asks."""

    def __init__(self):
        MultiService.__init__(self)
        self.checks = []
        self._failing_count = 0

    def add(self, name, check, interval, threshold, reactor):
        periodic = PeriodicCheck(name, check, interval, threshold, reactor, self._changed)
        periodic.setServiceParent(self)
        self.checks.append(periodic)
        return periodic

    def _changed(self, name, before, after):
        if after is not None:
            log.warn("health check {name} failing: {error}", name=name, error=after)
        else:
            log.info("health check {name} passes again", name=name)
        self._failing_count = sum(1 for check in self.checks if check.status.failing is not None)

    def healthy(self):
        return self._failing_count == 0

    @property
    def failing(self):
        return {
            check.name: check.status.failing
            for check in self.checks
            if check.status.failing is not None
        }


@implementer(IHealth)
class AlwaysHealthy:
    failing = {}

    def healthy(self):
        return True


def health_from_settings(settings, driver, reactor):
    """L{Health} for C{settings} (L{spectroreg.config.operations.HealthSettings}), or None when no check is set."""
    if not settings.any:
        return None
    health = Health()
    storage = settings.storagedriver
    if storage.enabled and driver is not None:
        name = "storagedriver_" + getattr(driver, "name", "storage")
        health.add(name, StorageCheck(driver), storage.interval, storage.threshold, reactor)
    for item in settings.file:
        health.add(item.file, FileCheck(item.file), item.interval, 0, reactor)
    for item in settings.http:
        health.add(item.uri, HTTPCheck(item, reactor), item.interval, item.threshold, reactor)
    for item in settings.tcp:
        health.add(item.addr, TCPCheck(item, reactor), item.interval, item.threshold, reactor)
    return health
