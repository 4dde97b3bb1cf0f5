"""
Putting the operations parts together from the settings: what the API,
the storage driver and the daemon's service get. Nothing configured means
null implementations (one method call per hook) and no extra listener.
"""

import socket

from twisted.logger import Logger

from spectroreg.ops.events import NULL_EVENTS, RegistryEvents
from spectroreg.ops.metrics import NULL_METRICS

log = Logger(namespace="spectroreg.ops")


class Operations:
    """
    @ivar metrics: L{spectroreg.ops.metrics.Metrics} or the null one.
    @ivar storage_observer: what the storage driver reports to (None: nothing).
    @ivar events: L{spectroreg.ops.interfaces.IRegistryEvents} for the API.
    @ivar endpoints: the notification endpoints.
    @ivar health: L{spectroreg.ops.health.Health} or None (no checks).
    """

    def __init__(self, settings, reactor):
        self.settings = settings
        self._reactor = reactor
        debug = settings.http.debug
        # Collected only where they can be scraped.
        self.metrics_enabled = bool(debug is not None and debug.addr and debug.prometheus_enabled)
        if self.metrics_enabled:
            from spectroreg.ops.metrics import Metrics

            self.metrics = Metrics(reactor)
            self.storage_observer = self.metrics
        else:
            self.metrics = NULL_METRICS
            self.storage_observer = None
        self.endpoints = ()
        self.events = NULL_EVENTS
        active = settings.notifications.active
        if active:
            from spectroreg.ops.notifications import Broadcaster, Endpoint

            self.endpoints = tuple(Endpoint(endpoint, reactor) for endpoint in active)
            for endpoint in self.endpoints:
                self.metrics.watch_endpoint(endpoint.name, endpoint)
            self.events = RegistryEvents(
                Broadcaster(self.endpoints),
                settings.http,
                reactor,
                source_addr=_source_addr(settings.http),
                include_references=settings.notifications.includereferences,
            )
        self.health = None

    def attach(self, registry):
        """The registry is built: health checks on its driver, cache metrics."""
        from spectroreg.ops.health import health_from_settings

        self.health = health_from_settings(self.settings.health, registry.driver, self._reactor)
        if registry.cache is not None:
            self.metrics.watch_cache("blobdescriptor", registry.cache)
        elif registry.shared_cache is not None:
            self.metrics.watch_cache("blobdescriptor", registry.shared_cache)
            self.metrics.watch_redis(registry.shared_cache)
        self.metrics.watch_cache("manifest", registry.manifests.cache)

    def gate(self, root):
        """C{root} answering 503 while a health check fails (C{root} itself without checks)."""
        if self.health is None:
            return root
        from spectroreg.ops.debug import HealthGate

        return HealthGate(root, self.health, self.metrics)

    def services(self):
        """Services to run beside the listeners (health checks, notification senders)."""
        found = []
        if self.health is not None:
            found.append(self.health)
        if self.endpoints:
            from spectroreg.ops.notifications import NotificationService

            found.append(NotificationService(self.endpoints))
        return found

    def debug_root(self, worker=0):
        """
        The debug listener's root resource, or None when ``http.debug.addr``
        is unset. Worker 0 of several (C{http.workers}) serves every
        worker's metrics (L{spectroreg.ops.workermetrics}).
        """
        debug = self.settings.http.debug
        if debug is None or not debug.addr:
            return None
        from spectroreg.ops.debug import DebugRoot
        from spectroreg.ops.health import AlwaysHealthy

        metrics_resource = None
        if self.metrics_enabled:
            from spectroreg.ops import workermetrics

            urls = None
            if worker == 0 and self.settings.http.workers > 1:
                urls = workermetrics.worker_metrics_urls(debug.addr, debug.prometheus_path, self.settings.http.workers)
            if urls:
                from twisted.web.client import Agent

                metrics_resource = workermetrics.WorkerMetricsResource(
                    self.metrics.registry, urls, Agent(self._reactor), self._reactor)
            else:
                from prometheus_client.twisted import MetricsResource

                metrics_resource = MetricsResource(registry=self.metrics.registry)
        return DebugRoot(self.health or AlwaysHealthy(), debug.prometheus_path, metrics_resource)


def _source_addr(http_settings):
    from spectroreg.config.addresses import split_host_port

    host = socket.gethostname()
    if http_settings.net != "tcp":
        return host
    try:
        return "{}:{}".format(host, split_host_port(http_settings.addr)[1])
    except ValueError:
        return host
