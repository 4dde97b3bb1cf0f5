"""
Assembly of the daemon: settings in, one ``MultiService`` out.

``makeService(settings)`` wires the storage driver, the registry, the
authenticator, the API resource under the root, the Site, one listener per
address (plain or TLS), the plain-HTTP listener for ACME HTTP-01, the
upload purger, SIGHUP reloading and draining on shutdown. Both the twistd
plugin and ``spectroreg serve`` run what it returns.
"""

import errno
import os
import signal
import socket
import stat
import threading

from twisted.application.internet import TimerService
from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.logger import ILogObserver, Logger
from twisted.python.components import Componentized
from twisted.python.failure import Failure

from spectroreg.config.addresses import split_host_port
from spectroreg.config.errors import ConfigError
from spectroreg.interfaces import IReloadable
from spectroreg.logging import bridge_stdlib_logging, observer_from_settings
from spectroreg.web.limits import DEFAULT_LIMITS

log = Logger(namespace="spectroreg.service")


# -- addresses ----------------------------------------------------------------


def parse_addr(addr, net="tcp"):
    """
    ``http.addr`` as a list of listen targets, each ``("tcp", host, port)``
    (host "" for every interface) or ``("unix", path, None)``.

    @raise ConfigError: for an address that cannot be parsed.
    """
    if net == "unix":
        if not addr:
            raise ConfigError("http.addr: a socket path is needed with http.net unix")
        return [("unix", addr, None)]
    if net != "tcp":
        raise ConfigError("http.net: unsupported network {!r} (tcp or unix)".format(net))
    try:
        host, port = split_host_port(addr)
    except ValueError as error:
        raise ConfigError("http.addr: {}".format(error)) from None
    return [("tcp", host, port)]


def _ipv6_available():
    if not socket.has_ipv6:
        return False
    try:
        probe = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        return False
    try:
        probe.bind(("::1", 0))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _v6_only_by_default():
    probe = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        return bool(probe.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY))
    finally:
        probe.close()


SOMAXCONN_PATH = "/proc/sys/net/core/somaxconn"

# What listen(2) takes on every kernel (Linux before 4.1 kept the backlog in
# 16 bits); Go caps the same way.
_MAX_BACKLOG = 65535


def listen_backlog(path=SOMAXCONN_PATH):
    """
    The listen queue to ask for: the kernel's maximum, as Go's listeners do.
    Twisted's default (50) drops connections in a burst (each dropped SYN
    costs the client a one-second retransmit).
    """
    try:
        with open(path, "rb") as f:
            value = int(f.read().strip())
    except (OSError, ValueError):
        return socket.SOMAXCONN
    if value <= 0:
        return socket.SOMAXCONN
    return min(value, _MAX_BACKLOG)


def endpoints_for(addr, net, reactor, backlog=None):
    """
    Server endpoints for ``http.addr``/``http.net``, with a description each,
    each with the listen queue of L{listen_backlog} (or C{backlog}).

    ``:port`` means every interface: one IPv6 socket that also takes IPv4
    (v4-mapped) where the host has IPv6, a second IPv4 socket when the
    kernel makes IPv6 sockets v6-only, plain IPv4 otherwise.
    """
    from twisted.internet.endpoints import (
        TCP4ServerEndpoint,
        TCP6ServerEndpoint,
        UNIXServerEndpoint,
    )

    if backlog is None:
        backlog = listen_backlog()
    result = []
    for kind, host, port in parse_addr(addr, net):
        if kind == "unix":
            _remove_stale_socket(host)
            result.append((UNIXServerEndpoint(reactor, host, backlog=backlog, mode=0o666), "unix:" + host))
        elif host == "" and _ipv6_available():
            result.append((TCP6ServerEndpoint(reactor, port, backlog=backlog, interface="::"), "[::]:%d" % port))
            if _v6_only_by_default():
                result.append((TCP4ServerEndpoint(reactor, port, backlog=backlog, interface="0.0.0.0"), "0.0.0.0:%d" % port))
        elif host in ("", "0.0.0.0"):
            result.append((TCP4ServerEndpoint(reactor, port, backlog=backlog, interface="0.0.0.0"), "0.0.0.0:%d" % port))
        elif ":" in host:
            result.append((TCP6ServerEndpoint(reactor, port, backlog=backlog, interface=host), "[%s]:%d" % (host, port)))
        else:
            interface = _resolve_v4(host)
            result.append((TCP4ServerEndpoint(reactor, port, backlog=backlog, interface=interface), "%s:%d" % (host, port)))
    return result


def _resolve_v4(host):
    try:
        socket.inet_aton(host)
        return host
    except OSError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)
    except OSError as error:
        raise ConfigError("http.addr: cannot resolve {!r}: {}".format(host, error)) from None
    return infos[0][4][0]


def _remove_stale_socket(path):
    """A socket file left by a crashed daemon blocks binding; a live one is kept."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return
    if not stat.S_ISSOCK(mode):
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError as error:
        if error.errno in (errno.ECONNREFUSED, errno.ENOENT):
            try:
                os.unlink(path)
            except OSError:
                pass
    finally:
        probe.close()


class ListenerService(Service):
    """
    Listens on one endpoint while running. Starting fails synchronously
    (the exception propagates) when the port cannot be bound, so the daemon
    exits before doing anything else.
    """

    def __init__(self, endpoint, factory, description, scheme="http"):
        self.endpoint = endpoint
        self.factory = factory
        self.description = description
        self.scheme = scheme
        self.port = None

    def privilegedStartService(self):
        Service.privilegedStartService(self)
        if self.port is None:
            self._listen()

    def startService(self):
        Service.startService(self)
        if self.port is None:
            self._listen()

    def _listen(self):
        outcome = []
        self.endpoint.listen(self.factory).addBoth(outcome.append)
        if not outcome:
            raise RuntimeError("listener {} did not start".format(self.description))
        if isinstance(outcome[0], Failure):
            error = outcome[0].value
            raise CannotListen("cannot listen on {}: {}".format(self.description, _reason(error)))
        self.port = outcome[0]
        log.info("listening on {scheme}://{where}", scheme=self.scheme, where=self.where())

    def where(self):
        """The bound address, e.g. ``127.0.0.1:5000`` or ``[::]:5000``."""
        if self.port is None:
            return self.description
        host = self.port.getHost()
        if getattr(host, "port", None) is None:
            return "unix:" + str(getattr(host, "name", self.description))
        if ":" in host.host:
            return "[{}]:{}".format(host.host, host.port)
        return "{}:{}".format(host.host, host.port)

    def stopService(self):
        Service.stopService(self)
        port, self.port = self.port, None
        if port is None:
            return None
        return defer.maybeDeferred(port.stopListening)


class CannotListen(Exception):
    """A listener could not be bound; the message is one line."""


def _reason(error):
    socket_error = getattr(error, "socketError", None)
    if socket_error is not None:
        return getattr(socket_error, "strerror", None) or str(socket_error)
    return str(error) or error.__class__.__name__


# -- draining -----------------------------------------------------------------


class DrainService(Service):
    """
    On stop: the listeners close (they stop before this, being added after
    it), open connections get at most C{timeout} seconds to finish the
    request in flight, then whatever is left is closed.
    """

    def __init__(self, sites, timeout):
        self.sites = sites
        self.timeout = timeout

    def stopService(self):
        Service.stopService(self)
        busy = sum(1 for site in self.sites for channel in site.channels if channel.requests)
        if busy:
            log.info(
                "draining {busy} request(s) in flight, at most {timeout}s",
                busy=busy,
                timeout=self.timeout,
            )
        return defer.DeferredList([site.drain(self.timeout) for site in self.sites])


# -- the daemon's service -----------------------------------------------------


class RegistryService(MultiService):
    """
    The whole daemon. Besides its children it carries:

    @ivar settings: the L{Settings} it was made from.
    @ivar log_observer: the observer that writes the log as configured; the
        caller installs it (see L{install_log_observer}).
    @ivar site: the registry's Site.
    @ivar listeners: the L{ListenerService}s of the registry port(s).
    @ivar handle_sighup: install a SIGHUP handler while running.
    """

    handle_sighup = True
    offer_log_observer = True

    def __init__(self, settings, reactor):
        super().__init__()
        self.settings = settings
        self._reactor = reactor
        self.log_observer = observer_from_settings(settings.log)
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

    def privilegedStartService(self):
        for warning in self.settings.warnings:
            log.warn("config: {warning}", warning=warning)
        super().privilegedStartService()

    def startService(self):
        super().startService()
        if self.handle_sighup:
            self._install_sighup()
        where = ", ".join(listener.where() for listener in self.listeners)
        log.info("spectroreg {version} ready on {where}", version=_version(), where=where)

    def stopService(self):
        self._remove_sighup()
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


def makeService(settings, reactor=None, limits=None, api_resource=None):
    """
    The daemon for C{settings} (a L{spectroreg.config.settings.Settings}).

    @param reactor: the reactor everything runs on (default: the global one).
    @param limits: a L{spectroreg.web.limits.Limits} (defaults otherwise).
    @param api_resource: the resource served at ``<prefix>/v2``; None builds
        the registry API from the settings (the normal case).
    @return: a L{RegistryService} (a C{MultiService}), not started.
    @raise ConfigError: settings that cannot be put to work (one line).
    """
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    limits = limits or DEFAULT_LIMITS
    top = RegistryService(settings, reactor)
    from spectroreg.ops.wiring import Operations

    top.operations = Operations(settings, reactor)

    if api_resource is None:
        api_resource, request_factory = _build_api(settings, top, reactor)
    else:
        request_factory = None

    from spectroreg.web.root import RootResource
    from spectroreg.web.site import RegistrySite

    http_settings = settings.http
    ui = None
    if top.registry is not None:
        from spectroreg.ui import make_ui

        ui = make_ui(top.registry, settings, top.authenticator, reactor, events=top.operations.events)
    site = RegistrySite(
        top.operations.gate(RootResource(api_resource, http_settings.prefix, ui=ui)),
        request_factory=request_factory,
        headers=http_settings.headers,
        access_log=not settings.log.accesslog_disabled,
        limits=limits,
        reactor=reactor,
    )
    top.site = site
    sites = [site]

    DrainService(sites, http_settings.draintimeout).setServiceParent(top)

    factory = site
    scheme = "http"
    if http_settings.tls is not None:
        from spectroreg.tls.server import make_server_tls

        server_tls = make_server_tls(http_settings.tls, reactor=reactor)
        top.server_tls = server_tls
        factory = server_tls.wrap_factory(site)
        scheme = "https"
        for child in server_tls.services:
            child.setServiceParent(top)
        http01 = server_tls.http01_resource
        letsencrypt = http_settings.tls.letsencrypt
        if http01 is not None and letsencrypt is not None and letsencrypt.httpaddr:
            from spectroreg.web.root import http01_root

            plain = RegistrySite(
                http01_root(http01, _public_https_port(http_settings)),
                headers=http_settings.headers,
                access_log=not settings.log.accesslog_disabled,
                limits=limits,
                reactor=reactor,
            )
            sites.append(plain)
            for endpoint, description in endpoints_for(letsencrypt.httpaddr, "tcp", reactor):
                ListenerService(endpoint, plain, description, "http").setServiceParent(top)

    # Before the listeners: the checks' first run decides the first answers,
    # and events of requests drained at shutdown are still queued.
    for child in top.operations.services():
        child.setServiceParent(top)
    for endpoint, description in endpoints_for(http_settings.addr, http_settings.net, reactor):
        listener = ListenerService(endpoint, factory, description, scheme)
        listener.setServiceParent(top)
        top.listeners.append(listener)

    debug_root = top.operations.debug_root()
    if debug_root is not None:
        debug_site = RegistrySite(debug_root, access_log=False, limits=limits, reactor=reactor)
        for endpoint, description in endpoints_for(http_settings.debug.addr, "tcp", reactor):
            ListenerService(endpoint, debug_site, description, "http").setServiceParent(top)

    purging = settings.storage.uploadpurging
    # As in Distribution, a read-only registry leaves uploads alone.
    if (
        top.registry is not None
        and purging.enabled
        and purging.interval > 0
        and not settings.storage.readonly
    ):
        timer = TimerService(purging.interval, _PurgeUploads(top.registry, purging))
        timer.clock = reactor
        timer.setServiceParent(top)
    if top.registry is not None:
        collection = garbage_collection_service(top.registry, settings.storage, reactor, top.operations.metrics)
        if collection is not None:
            collection.setServiceParent(top)
    return top


def garbage_collection_service(registry, storage_settings, reactor, metrics=None):
    """
    The timer running online garbage collection (``storage.maintenance.gc``),
    or None when it is off or the registry is read-only. It also puts the
    registry's requests under the collection's handshake.

    @param metrics: None, or what counts collections (see
        L{spectroreg.registry.collector.OnlineCollector}).
    """
    from spectroreg.registry.collector import CollectionTimer, OnlineCollector
    from spectroreg.registry.gcguard import StorageGuard

    gc = storage_settings.gc
    if not gc.enabled or storage_settings.readonly:
        return None
    guard = StorageGuard(registry.driver, gc.graceperiod, reactor)
    registry.guard = guard
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


def _build_api(settings, top, reactor):
    from spectroreg.api import make_api_resource
    from spectroreg.api.request import RegistryRequest
    from spectroreg.registry import Registry
    from spectroreg.storage.factory import driver_from_settings

    operations = top.operations
    driver = driver_from_settings(settings.storage, reactor=reactor, observer=operations.storage_observer)
    # Added before the listeners, so it stops after them: the driver's pools
    # are released once no request can reach it any more.
    _CloseStorage(driver).setServiceParent(top)
    descriptors = None
    if settings.storage.blobdescriptor_cache == "redis":
        from spectroreg.registry.rediscache import RedisDescriptors
        from spectroreg.registry.redisclient import RedisClient

        descriptors = RedisDescriptors(RedisClient(settings.redis, reactor))
    registry = Registry(driver, settings.storage, reactor=reactor, descriptors=descriptors)
    top.registry = registry
    operations.attach(registry)
    authenticator = None
    auth = settings.auth
    if auth is not None:
        if auth.provider == "htpasswd" and auth.htpasswd is not None:
            from spectroreg.auth.htpasswd import HtpasswdAuthenticator

            authenticator = HtpasswdAuthenticator(
                auth.htpasswd.path, auth.htpasswd.realm, reactor=reactor
            )
        else:
            raise ConfigError(
                "auth.{}: this authentication provider is not supported".format(auth.provider)
            )
    top.authenticator = authenticator
    api = make_api_resource(registry, settings, authenticator=authenticator, reactor=reactor,
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
    Route the log of the runner that loaded the plugin through our observer.

    twistd uses the application's ILogObserver component (set in
    L{RegistryService.setServiceParent}); we point it at the file named by
    ``--logfile`` when that is not stdout. ``twist`` (``python -m twisted``)
    takes a factory of file observers from its options instead.
    """
    parent = getattr(options, "parent", None)
    if parent is None:
        return
    observer = service.log_observer
    try:
        keys = set(parent.keys())
    except Exception:
        return
    if "fileLogObserverFactory" in keys:
        # twist: its filter would drop what our level allows.
        from twisted.logger import LogLevel

        def factory(log_file):
            observer._stream = log_file
            return observer

        parent["fileLogObserverFactory"] = factory
        parent["logLevel"] = LogLevel.debug
    elif "logfile" in keys:
        if parent.get("syslog"):
            service.offer_log_observer = False
            return
        logfile = parent.get("logfile")
        if logfile and logfile != "-":
            from twisted.python.logfile import LogFile

            observer._stream = LogFile.fromFullPath(logfile)


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
