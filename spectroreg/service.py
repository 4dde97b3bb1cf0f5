"""
Assembly of the daemon: settings in, one ``MultiService`` out.

``makeService(settings)`` wires the storage driver, the registry, the
authenticator, the API resource under the root, the Site, one listener per
address (plain or TLS), the plain-HTTP listener for ACME HTTP-01, the
upload purger, SIGHUP reloading, draining on shutdown and, with
``http.workers``, the other worker processes (L{spectroreg.prefork}). Both the twistd
plugin and ``spectroreg serve`` run what it returns.

Addresses, listening sockets and draining live in L{spectroreg.listeners};
the settings come validated from L{spectroreg.config.load}, so nothing here
checks a setting again.
"""

import dataclasses
import signal
import threading

from twisted.application.internet import TimerService
from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.logger import ILogObserver, Logger
from twisted.python.components import Componentized

from spectroreg.config.errors import ConfigError
from spectroreg.interfaces import IReloadable
from spectroreg.listeners import (
    CannotListen,
    DrainService,
    ListenerService,
    endpoints_for,
    parse_addr,
)
from spectroreg.logging import bridge_stdlib_logging, observer_from_settings
from spectroreg.web.limits import DEFAULT_LIMITS

log = Logger(namespace="spectroreg.service")


# -- the daemon's service -----------------------------------------------------


class RegistryService(MultiService):
    """
    The whole daemon. Besides its children it carries:

    @ivar settings: the L{Settings} it was made from.
    @ivar log_observer: the observer that writes the log as configured; the
        caller installs it (see L{install_log_observer}).
    @ivar site: the registry's Site.
    @ivar listeners: the L{ListenerService}s of the registry port(s).
    @ivar handle_sighup: install a SIGHUP handler while running, and let
        only the first SIGTERM or SIGINT stop the reactor (L{stop_once}).
    @ivar worker: this process's worker index (0: the daemon started by the user).
    @ivar workers: the L{spectroreg.prefork.WorkerPool} of the other
        workers (worker 0 with C{http.workers} > 1), or None.
    """

    handle_sighup = True
    offer_log_observer = True

    def __init__(self, settings, reactor, worker=0):
        super().__init__()
        self.settings = settings
        self._reactor = reactor
        self.worker = worker
        self.workers = None
        self.log_observer = self.make_log_observer()
        self.site = None
        self.listeners = []
        self.registry = None
        self.authenticator = None
        self.server_tls = None
        self.operations = None  # spectroreg.ops.wiring.Operations
        self._previous_sighup = None

    def setServiceParent(self, parent):
        # Under twistd the parent is the Application: offering our observer as
        # its ILogObserver makes twistd log through it instead of its own
        # text observer (one output, formatted as configured).
        if (
            self.offer_log_observer
            and isinstance(parent, Componentized)
            and parent.getComponent(ILogObserver, None) is None
        ):
            parent.setComponent(ILogObserver, self.log_observer)
        return super().setServiceParent(parent)

    def make_log_observer(self, stream=None):
        """
        An observer writing the log as configured to C{stream} (default:
        stdout); with several workers, each line names the worker it comes
        from (C{worker=N}).
        """
        observer = observer_from_settings(self.settings.log, stream=stream)
        if self.settings.http.workers > 1:
            observer.fields.setdefault("worker", self.worker)
        return observer

    def relay_log(self, data):
        """A worker's log lines (bytes, whole lines, formatted by the worker): written with ours."""
        text = data.decode("utf-8", "replace")
        if self.offer_log_observer:
            self.log_observer.write_text(text)
            return
        for line in text.splitlines():
            log.info("{line}", line=line)

    def privilegedStartService(self):
        if self.worker:
            # Worker 0 has said it already.
            self.settings = dataclasses.replace(self.settings, warnings=())
        for warning in self.settings.warnings:
            log.warn("config: {warning}", warning=warning)
        super().privilegedStartService()

    def startService(self):
        super().startService()
        if self.handle_sighup:
            self._install_sighup()
            if threading.current_thread() is threading.main_thread():
                self._reactor.callWhenRunning(stop_once)
        where = ", ".join(listener.where() for listener in self.listeners)
        log.info("spectroreg {version} ready on {where}", version=_version(), where=where)
        # One write per reactor turn for the access log (see RegistryLogObserver).
        self.log_observer.write_per_turn(self._reactor.callLater)

    def stopService(self):
        self._remove_sighup()
        self.log_observer.write_at_once()
        log.info("stopping")
        return super().stopService()

    def _install_sighup(self):
        if threading.current_thread() is not threading.main_thread():
            return
        if not hasattr(signal, "SIGHUP"):
            return

        def on_sighup(signum, frame):
            self._reactor.callFromThread(self.reload)

        self._previous_sighup = signal.signal(signal.SIGHUP, on_sighup)

    def _remove_sighup(self):
        if self._previous_sighup is not None:
            signal.signal(signal.SIGHUP, self._previous_sighup)
            self._previous_sighup = None

    def reload(self):
        """
        SIGHUP: re-read TLS certificates and keys and the htpasswd file.
        A failure is logged; the running material stays in use.

        @return: a Deferred that fires when every reload has finished.
        """
        log.info("reloading TLS material and credentials")
        if self.workers is not None:
            self.workers.signal("HUP")
        steps = []
        for name, target in (("tls", self.server_tls), ("htpasswd", self.authenticator)):
            if not IReloadable.providedBy(target):
                continue
            d = defer.maybeDeferred(target.reload)
            d.addErrback(
                lambda failure, name=name: log.failure(
                    "reloading {name} failed; keeping the current one", failure, name=name
                )
            )
            steps.append(d)
        return defer.DeferredList(steps)


def stop_once(signals=("SIGTERM", "SIGINT")):
    """
    Wrap the reactor's handlers of C{signals} so that only the first one
    received stops it. The reactor's own handler stops it again on every
    signal, and each one after the first raises C{ReactorNotRunning},
    logged as an error: under systemd, whose stop sends SIGTERM to every
    process of the service while worker 0 sends the workers its own, and
    for a second Ctrl-C. Call it once the reactor runs (its handlers are
    installed then); a signal that is ignored or handled by default is left
    alone.
    """
    stopping = []
    for name in signals:
        number = getattr(signal, name, None)
        if number is None:
            continue
        previous = signal.getsignal(number)
        if not callable(previous) or getattr(previous, "spectroreg_stop_once", False):
            continue

        def handler(signum, frame, previous=previous, name=name):
            if stopping:
                log.info("{name} received while stopping; already stopping", name=name)
                return
            stopping.append(signum)
            previous(signum, frame)

        handler.spectroreg_stop_once = True
        signal.signal(number, handler)


def _version():
    from spectroreg import __version__

    return __version__


def install_log_observer(observer, begin=True):
    """
    Make C{observer} the daemon's log output: start the global log with it
    (``spectroreg serve``), and forward warnings of stdlib-logging libraries.
    """
    from twisted.logger import globalLogBeginner

    bridge_stdlib_logging()
    if begin:
        globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


class _PurgeUploads:
    """The upload purger's step: never raises, so the timer keeps running."""

    def __init__(self, registry, settings):
        self.registry = registry
        self.settings = settings

    def __call__(self):
        return defer.ensureDeferred(self._run())

    async def _run(self):
        try:
            count = await self.registry.uploads.purge(self.settings.age, dry_run=self.settings.dryrun)
        except Exception:
            log.failure("purging old uploads failed")
            return
        if count:
            log.info(
                "{verb} {count} upload(s) older than {age}s",
                verb="would purge" if self.settings.dryrun else "purged",
                count=count,
                age=int(self.settings.age),
            )


def makeService(settings, reactor=None, limits=None, api_resource=None, worker=None):
    """
    The daemon for C{settings} (a L{spectroreg.config.settings.Settings}).

    @param reactor: the reactor everything runs on (default: the global one).
    @param limits: a L{spectroreg.web.limits.Limits} (defaults otherwise).
    @param api_resource: the resource served at ``<prefix>/v2``; None builds
        the registry API from the settings (the normal case).
    @param worker: None for the daemon the user starts (worker 0), or the
        L{spectroreg.prefork.WorkerRole} of a worker process it started.
    @return: a L{RegistryService} (a C{MultiService}), not started.
    @raise ConfigError: settings that cannot be put to work (one line).
    """
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    from spectroreg.ops.wiring import Operations

    limits = limits or DEFAULT_LIMITS
    index = 0 if worker is None else worker.index
    top = RegistryService(settings, reactor, worker=index)
    top.operations = Operations(settings, reactor)
    request_factory = None
    if api_resource is None:
        api_resource, request_factory = _build_api(settings, top, reactor)
    top.site = _registry_site(settings, top, api_resource, request_factory, limits, reactor)
    sites = [top.site]
    DrainService(sites, settings.http.draintimeout).setServiceParent(top)
    factory, scheme = top.site, "http"
    if settings.http.tls is not None:
        factory, scheme = _add_tls(settings, top, sites, limits, reactor)
    # Before the listeners: the checks' first run decides the first answers,
    # and events of requests drained at shutdown are still queued.
    for child in top.operations.services():
        child.setServiceParent(top)
    if worker is None:
        top.listeners = _add_listeners(top, settings.http.addr, settings.http.net, factory, scheme, reactor,
                                       workers=settings.http.workers)
        if settings.http.workers > 1:
            top.workers = _worker_pool(settings, top, reactor)
    else:
        top.listeners = []
        for endpoint in worker.endpoints(reactor):
            listener = ListenerService(endpoint, factory, "descriptor {}".format(endpoint.fd), scheme)
            listener.setServiceParent(top)
            top.listeners.append(listener)
    debug_root = top.operations.debug_root(index)
    if debug_root is not None:
        from spectroreg.prefork import debug_addr_for

        debug_site = _site(debug_root, settings, limits, reactor, debug=True)
        _add_listeners(top, debug_addr_for(settings.http.debug.addr, index), "tcp", debug_site, "http", reactor)
    _add_maintenance(top, settings.storage, reactor, collect=index == 0)
    return top


def _worker_pool(settings, top, reactor):
    """Workers 1 … n-1 over the sockets of C{top}'s listeners, started after them."""
    import os

    from spectroreg.prefork import WorkerPool

    if not settings.source:
        raise ConfigError("http.workers: the workers read the configuration file again; none was given")
    pool = WorkerPool(
        reactor,
        settings.http.workers,
        [listener.endpoint for listener in top.listeners],
        os.path.abspath(settings.source),
        top.relay_log,
        stop_timeout=settings.http.draintimeout + 10.0,
        config_data=settings.source_data,
    )
    pool.setServiceParent(top)
    return pool


def _site(resource, settings, limits, reactor, request_factory=None, debug=False):
    """
    A L{RegistrySite} serving C{resource}: with the configured headers and
    access log, or neither for the C{debug} listener.
    """
    from spectroreg.web.site import RegistrySite

    return RegistrySite(
        resource,
        request_factory=request_factory,
        headers=None if debug else settings.http.headers,
        access_log=False if debug else not settings.log.accesslog_disabled,
        limits=limits,
        reactor=reactor,
    )


def _registry_site(settings, top, api_resource, request_factory, limits, reactor):
    """The registry's Site: the API and the web pages under the root, behind the operations gate."""
    from spectroreg.web.root import RootResource

    ui = None
    if top.registry is not None:
        from spectroreg.ui import make_ui

        ui = make_ui(top.registry, settings, top.authenticator, reactor, events=top.operations.events)
    root = top.operations.gate(RootResource(api_resource, settings.http.prefix, ui=ui))
    return _site(root, settings, limits, reactor, request_factory=request_factory)


def _add_tls(settings, top, sites, limits, reactor):
    """
    The TLS layer over the registry's Site, its services (ACME issuing) and
    the plain HTTP listener for HTTP-01; returns the factory to listen with
    and its scheme.
    """
    from spectroreg.tls.server import make_server_tls

    http_settings = settings.http
    server_tls = make_server_tls(http_settings.tls, reactor=reactor)
    top.server_tls = server_tls
    factory = server_tls.wrap_factory(top.site)
    for child in server_tls.services:
        child.setServiceParent(top)
    http01 = server_tls.http01_resource
    letsencrypt = http_settings.tls.letsencrypt
    if http01 is not None and letsencrypt is not None and letsencrypt.httpaddr:
        from spectroreg.web.root import http01_root

        plain = _site(http01_root(http01, _public_https_port(http_settings)), settings, limits, reactor)
        sites.append(plain)
        _add_listeners(top, letsencrypt.httpaddr, "tcp", plain, "http", reactor)
    return factory, "https"


def _add_listeners(top, addr, net, factory, scheme, reactor, workers=1):
    """
    One L{ListenerService} per socket C{addr} needs (with C{workers}
    sockets each), children of C{top}; returns them.
    """
    listeners = []
    for endpoint, description in endpoints_for(addr, net, reactor, workers=workers):
        listener = ListenerService(endpoint, factory, description, scheme)
        listener.setServiceParent(top)
        listeners.append(listener)
    return listeners


def _add_maintenance(top, storage_settings, reactor, collect=True):
    """
    The upload purger and online garbage collection, when configured and
    writable; without C{collect} (a worker other than 0) only the
    collection's handshake on the registry's requests.
    """
    if top.registry is None:
        return
    if not collect:
        garbage_collection_service(top.registry, storage_settings, reactor, collect=False)
        return
    purging = storage_settings.uploadpurging
    # As in Distribution, a read-only registry leaves uploads alone.
    if purging.enabled and purging.interval > 0 and not storage_settings.readonly:
        timer = TimerService(purging.interval, _PurgeUploads(top.registry, purging))
        timer.clock = reactor
        timer.setServiceParent(top)
    collection = garbage_collection_service(top.registry, storage_settings, reactor, top.operations.metrics)
    if collection is not None:
        collection.setServiceParent(top)


def garbage_collection_service(registry, storage_settings, reactor, metrics=None, collect=True):
    """
    The timer running online garbage collection (``storage.maintenance.gc``),
    or None when it is off or the registry is read-only. It also puts the
    registry's requests under the collection's handshake.

    @param metrics: None, or what counts collections (see
        L{spectroreg.registry.collector.OnlineCollector}).
    @param collect: False: only the handshake (returns None); another
        process collects.
    """
    from spectroreg.registry.collector import CollectionTimer, OnlineCollector
    from spectroreg.registry.gcguard import StorageGuard

    gc = storage_settings.gc
    if not gc.enabled or storage_settings.readonly:
        return None
    guard = StorageGuard(registry.driver, gc.graceperiod, reactor)
    registry.guard = guard
    if not collect:
        return None
    # LoopingCall waits for a collection to end before counting the interval.
    return CollectionTimer(OnlineCollector(registry, guard, gc, reactor, metrics), gc.interval, reactor)


def _public_https_port(http_settings):
    """
    The port clients reach the TLS listener on from outside, for the
    HTTP-01 listener's redirects. Let's Encrypt validates on the standard
    ports, so a registry behind ``-p 443:5000 -p 80:80`` is reached on 443
    whatever port it binds; an ``https://`` URL in ``http.host`` names
    another one.
    """
    if http_settings.host:
        from urllib.parse import urlsplit

        parts = urlsplit(http_settings.host)
        if parts.scheme == "https" and parts.port:
            return parts.port
    return 443


class _CloseStorage(Service):
    """Closes the storage driver (thread pools, S3 connections) at shutdown."""

    name = "storage"

    def __init__(self, driver):
        self.driver = driver

    def stopService(self):
        super().stopService()
        return self.driver.close()


def _htpasswd(auth, reactor):
    from spectroreg.auth.htpasswd import HtpasswdAuthenticator

    if auth.htpasswd is None:
        return None
    return HtpasswdAuthenticator(auth.htpasswd.path, auth.htpasswd.realm, reactor=reactor)


# Auth provider -> builder(auth settings, reactor) of its authenticator. The
# configuration accepts Distribution's other providers (with a warning); the
# daemon refuses to start with them.
AUTHENTICATORS = {"htpasswd": _htpasswd}


def _authenticator(auth, reactor):
    """The authenticator C{auth} (L{AuthSettings} or None) describes, or None."""
    if auth is None:
        return None
    build = AUTHENTICATORS.get(auth.provider)
    authenticator = build(auth, reactor) if build is not None else None
    if authenticator is None:
        raise ConfigError("auth.{}: this authentication provider is not supported".format(auth.provider))
    return authenticator


def _build_registry(settings, top, reactor):
    """The storage driver (closed at shutdown) and the registry over it."""
    from spectroreg.registry import Registry
    from spectroreg.storage.factory import driver_from_settings

    driver = driver_from_settings(settings.storage, reactor=reactor, observer=top.operations.storage_observer)
    # Added before the listeners, so it stops after them: the driver's pools
    # are released once no request can reach it any more.
    _CloseStorage(driver).setServiceParent(top)
    descriptors = None
    if settings.storage.blobdescriptor_cache == "redis":
        from spectroreg.registry.rediscache import RedisDescriptors
        from spectroreg.registry.redisclient import RedisClient

        descriptors = RedisDescriptors(RedisClient(settings.redis, reactor))
    return Registry(driver, settings.storage, reactor=reactor, descriptors=descriptors)


def _build_api(settings, top, reactor):
    """The registry API resource and its request factory; sets C{top.registry} and C{top.authenticator}."""
    from spectroreg.api import make_api_resource
    from spectroreg.api.request import RegistryRequest

    operations = top.operations
    top.registry = _build_registry(settings, top, reactor)
    operations.attach(top.registry)
    top.authenticator = _authenticator(settings.auth, reactor)
    api = make_api_resource(top.registry, settings, authenticator=top.authenticator, reactor=reactor,
                            metrics=operations.metrics, events=operations.events)
    return api, RegistryRequest


def service_for_plugin(options):
    """
    What the twistd plugin's C{makeService} returns: the daemon for the
    config named by C{options["config"]} or C{REGISTRY_CONFIGURATION_PATH}.

    A broken configuration ends the process with one line on stderr.
    """
    from spectroreg.config.load import load_settings

    path = options.get("config") or None
    try:
        settings = load_settings(path)
        service = makeService(settings)
    except ConfigError as error:
        raise SystemExit("spectroreg: {}".format(error)) from None
    _adopt_runner_logging(options, service)
    bridge_stdlib_logging()
    return service


def _adopt_runner_logging(options, service):
    """
    Route the log of the runner that loaded the plugin through an observer
    formatted as configured.

    twistd uses the application's ILogObserver component (set in
    L{RegistryService.setServiceParent}); when ``--logfile`` names a file,
    the service's observer is one built over that file. ``twist``
    (``python -m twisted``) takes a factory of file observers from its
    options instead: ours builds one over the file it is given.
    """
    parent = getattr(options, "parent", None)
    if parent is None:
        return
    try:
        keys = set(parent.keys())
    except Exception:
        return
    if "fileLogObserverFactory" in keys:
        # twist: its filter would drop what our level allows.
        from twisted.logger import LogLevel

        def factory(log_file):
            # The one that writes: workers' lines are relayed through it.
            service.log_observer = service.make_log_observer(stream=log_file)
            return service.log_observer

        parent["fileLogObserverFactory"] = factory
        parent["logLevel"] = LogLevel.debug
    elif "logfile" in keys:
        if parent.get("syslog"):
            service.offer_log_observer = False
            return
        logfile = parent.get("logfile")
        if logfile and logfile != "-":
            from twisted.python.logfile import LogFile

            service.log_observer = service.make_log_observer(stream=LogFile.fromFullPath(logfile))


__all__ = [
    "makeService",
    "RegistryService",
    "ListenerService",
    "DrainService",
    "CannotListen",
    "endpoints_for",
    "parse_addr",
    "install_log_observer",
    "service_for_plugin",
]
