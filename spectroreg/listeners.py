"""
Listening: addresses as Distribution writes them (``:5000``, ``[::1]:5000``,
a unix socket path) turned into server endpoints, a service per listening
socket that fails the start when it cannot bind, and draining on shutdown.
"""

import errno
import os
import socket
import stat

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from spectroreg.config.addresses import split_host_port
from spectroreg.config.errors import ConfigError

log = Logger(namespace="spectroreg.service")

__all__ = [
    "CannotListen",
    "DrainService",
    "ListenerService",
    "SOMAXCONN_PATH",
    "endpoints_for",
    "listen_backlog",
    "listen_targets",
    "parse_addr",
]


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
    # http.net was checked with the configuration: tcp.
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


def listen_targets(addr, net):
    """
    The sockets ``http.addr``/``http.net`` needs, each C{(family, address,
    description)}: C{address} a unix path or C{(host, port)}.

    ``:port`` means every interface: one IPv6 socket that also takes IPv4
    (v4-mapped) where the host has IPv6, a second IPv4 socket when the
    kernel makes IPv6 sockets v6-only, plain IPv4 otherwise.
    """
    result = []
    for kind, host, port in parse_addr(addr, net):
        if kind == "unix":
            result.append((socket.AF_UNIX, host, "unix:" + host))
        elif host == "" and _ipv6_available():
            result.append((socket.AF_INET6, ("::", port), "[::]:%d" % port))
            if _v6_only_by_default():
                result.append((socket.AF_INET, ("0.0.0.0", port), "0.0.0.0:%d" % port))
        elif host in ("", "0.0.0.0"):
            result.append((socket.AF_INET, ("0.0.0.0", port), "0.0.0.0:%d" % port))
        elif ":" in host:
            result.append((socket.AF_INET6, (host, port), "[%s]:%d" % (host, port)))
        else:
            result.append((socket.AF_INET, (_resolve_v4(host), port), "%s:%d" % (host, port)))
    return result


def endpoints_for(addr, net, reactor, backlog=None, workers=1):
    """
    Server endpoints for ``http.addr``/``http.net`` (L{listen_targets}),
    with a description each, each with the listen queue of
    L{listen_backlog} (or C{backlog}). With several C{workers}, each is a
    L{spectroreg.prefork.SharedEndpoint} that also binds the workers'
    sockets.
    """
    from twisted.internet.endpoints import (
        TCP4ServerEndpoint,
        TCP6ServerEndpoint,
        UNIXServerEndpoint,
    )

    if backlog is None:
        backlog = listen_backlog()
    result = []
    for family, address, description in listen_targets(addr, net):
        if family == socket.AF_UNIX:
            _remove_stale_socket(address)
        if workers > 1:
            from spectroreg.prefork import SharedEndpoint

            endpoint = SharedEndpoint(reactor, family, address, workers, backlog)
        elif family == socket.AF_UNIX:
            endpoint = UNIXServerEndpoint(reactor, address, backlog=backlog, mode=0o666)
        elif family == socket.AF_INET6:
            endpoint = TCP6ServerEndpoint(reactor, address[1], backlog=backlog, interface=address[0])
        else:
            endpoint = TCP4ServerEndpoint(reactor, address[1], backlog=backlog, interface=address[0])
        result.append((endpoint, description))
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
