"""
Prometheus metrics of one daemon, in a registry of its own (several daemons
may share a process in tests), served as text on the debug listener.

Per-request cost is kept small: labelled children are looked up once per
label combination and kept; cache and queue figures are read only when
scraped (custom collectors over plain counters kept by their owners).
"""

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from zope.interface import implementer

from spectroreg.ops.interfaces import IRequestObserver, IStorageObserver
from spectroreg.web.interfaces import IRequestContext

NAMESPACE = "spectroreg"

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
STORAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# Label values are bounded: anything else is counted as "other".
_METHODS = frozenset(["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"])


def _content_length(request):
    value = request.getHeader(b"content-length")
    if not value:
        return 0
    try:
        return max(0, int(value))
    except ValueError:
        return 0


@implementer(IRequestObserver, IStorageObserver)
class Metrics:
    """
    Every metric of the daemon (names in docs/running.md, "Operations").

    @param reactor: IReactorTime; request latency is measured from the
        time the Site noted when the request head arrived.
    @param now: monotonic clock for storage latency (C{time.perf_counter}).
    """

    def __init__(self, reactor, now=time.perf_counter):
        self._reactor = reactor
        self.now = now
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "spectroreg_http_requests_total", "API requests answered, by route, method and status",
            ["route", "method", "status"], registry=r)
        self.request_seconds = Histogram(
            "spectroreg_http_request_duration_seconds", "API request latency, head received to answer sent",
            ["route", "method"], buckets=LATENCY_BUCKETS, registry=r)
        self.bytes_in = Counter(
            "spectroreg_http_request_bytes_total", "API request body bytes received",
            ["route", "method"], registry=r)
        self.bytes_out = Counter(
            "spectroreg_http_response_bytes_total", "API response body bytes sent",
            ["route", "method"], registry=r)
        self.uploads = Gauge(
            "spectroreg_uploads_in_progress", "Upload request bodies being streamed into storage now",
            registry=r)
        self.auth_failures = Counter(
            "spectroreg_auth_failures_total", "Requests with credentials that were refused (401)",
            registry=r)
        self.auth_throttled = Counter(
            "spectroreg_auth_throttled_total", "Requests refused because the client failed too often (429)",
            registry=r)
        self.storage_seconds = Histogram(
            "spectroreg_storage_operation_duration_seconds", "Storage driver operation latency",
            ["driver", "operation"], buckets=STORAGE_BUCKETS, registry=r)
        self.storage_errors = Counter(
            "spectroreg_storage_errors_total", "Storage driver operations that failed (not-found excluded)",
            ["driver", "operation"], registry=r)
        # Fed by garbage collection (offline and online) through gc_run().
        self.gc_runs = Counter("spectroreg_gc_runs_total", "Garbage collection runs", registry=r)
        self.gc_blobs = Counter("spectroreg_gc_blobs_deleted_total", "Blobs deleted by garbage collection",
                                registry=r)
        self.gc_bytes = Counter("spectroreg_gc_bytes_freed_total", "Bytes freed by garbage collection",
                                registry=r)
        self._request_children = {}
        self._storage_children = {}
        self._sources = _Sources()
        r.register(self._sources)

    # -- requests (IRequestObserver) -----------------------------------------

    def _children(self, route, method, status):
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.requests.labels(route, method, status),
                self.request_seconds.labels(route, method),
                self.bytes_in.labels(route, method),
                self.bytes_out.labels(route, method),
            )
            self._request_children[key] = children
        return children

    def request_done(self, request, route, method):
        if method not in _METHODS:
            method = "other"
        count, seconds, bytes_in, bytes_out = self._children(route or "unknown", method, request.code)
        count.inc()
        context = IRequestContext(request)
        started = context.started
        if started is not None:
            seconds.observe(max(0.0, self._reactor.seconds() - started))
        stream = context.body.stream
        received = stream.received if stream is not None else _content_length(request)
        if received:
            bytes_in.inc(received)
        if request.sentLength:
            bytes_out.inc(request.sentLength)
        outcome = context.auth
        if outcome is not None and outcome[0] is False:
            self._auth_refused(request, outcome[1])

    def _auth_refused(self, request, error):
        from spectroreg.auth.interfaces import TooManyRequests

        if isinstance(error, TooManyRequests):
            self.auth_throttled.inc()
        elif request.getHeader(b"authorization") is not None:
            self.auth_failures.inc()

    def upload_started(self, request):
        self.uploads.inc()
        done = self.uploads.dec
        request.notifyFinish().addBoth(lambda _: done())

    # -- storage (IStorageObserver) ------------------------------------------

    def observe(self, driver, operation, seconds, failed):
        key = (driver, operation)
        children = self._storage_children.get(key)
        if children is None:
            children = (self.storage_seconds.labels(driver, operation), self.storage_errors.labels(driver, operation))
            self._storage_children[key] = children
        children[0].observe(seconds)
        if failed:
            children[1].inc()

    # -- garbage collection ------------------------------------------------------

    def gc_run(self, blobs_deleted=0, bytes_freed=0):
        """One garbage collection run finished, having freed what it says."""
        self.gc_runs.inc()
        if blobs_deleted:
            self.gc_blobs.inc(blobs_deleted)
        if bytes_freed:
            self.gc_bytes.inc(bytes_freed)

    # -- read at scrape time ------------------------------------------------------

    def watch_cache(self, name, cache):
        """Report C{cache}'s C{hits} and C{misses} counters as the cache named C{name}."""
        self._sources.caches[name] = cache

    def watch_redis(self, cache):
        """Count the fallbacks and outages of the shared (Redis) cache."""
        self._sources.redis = cache

    def watch_endpoint(self, name, endpoint):
        """Report a notification endpoint's C{pending}, C{sent}, C{failed} and C{dropped}."""
        self._sources.endpoints[name] = endpoint

    def text(self):
        """The exposition text (bytes)."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class _Sources:
    """A collector over counters others keep (caches, notification queues)."""

    def __init__(self):
        self.caches = {}
        self.endpoints = {}
        self.redis = None

    def describe(self):
        return []

    def collect(self):
        hits = CounterMetricFamily("spectroreg_cache_hits", "Cache lookups answered from memory", labels=["cache"])
        misses = CounterMetricFamily("spectroreg_cache_misses", "Cache lookups that went to storage",
                                     labels=["cache"])
        for name, cache in sorted(self.caches.items()):
            hits.add_metric([name], cache.hits)
            misses.add_metric([name], cache.misses)
        yield hits
        yield misses
        if self.redis is not None:
            fallbacks = CounterMetricFamily(
                "spectroreg_redis_fallbacks", "Cache lookups and writes that Redis failed (storage answered)")
            fallbacks.add_metric([], self.redis.fallbacks)
            outages = CounterMetricFamily("spectroreg_redis_outages", "Times Redis became unavailable")
            outages.add_metric([], self.redis.outages)
            yield fallbacks
            yield outages
        pending = GaugeMetricFamily("spectroreg_notifications_pending", "Events queued for an endpoint",
                                    labels=["endpoint"])
        sent = CounterMetricFamily("spectroreg_notifications_sent", "Events delivered to an endpoint",
                                   labels=["endpoint"])
        failed = CounterMetricFamily("spectroreg_notifications_failed",
                                     "Deliveries to an endpoint that failed (each attempt)", labels=["endpoint"])
        dropped = CounterMetricFamily("spectroreg_notifications_dropped",
                                      "Events dropped because an endpoint's queue was full", labels=["endpoint"])
        for name, endpoint in sorted(self.endpoints.items()):
            pending.add_metric([name], endpoint.pending)
            sent.add_metric([name], endpoint.sent)
            failed.add_metric([name], endpoint.failed)
            dropped.add_metric([name], endpoint.dropped)
        yield pending
        yield sent
        yield failed
        yield dropped


@implementer(IRequestObserver, IStorageObserver)
class NullMetrics:
    """No metrics: every hook returns at once."""

    now = staticmethod(time.perf_counter)

    def request_done(self, request, route, method):
        pass

    def upload_started(self, request):
        pass

    def observe(self, driver, operation, seconds, failed):
        pass

    def gc_run(self, blobs_deleted=0, bytes_freed=0):
        pass

    def watch_cache(self, name, cache):
        pass

    def watch_redis(self, cache):
        pass

    def watch_endpoint(self, name, endpoint):
        pass


NULL_METRICS = NullMetrics()
