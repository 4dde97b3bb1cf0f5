"""
The metrics of every worker process in one scrape (``http.workers`` > 1).

Each worker keeps its own metrics and serves them on its own debug listener
(worker N on the configured port + N). Worker 0's metrics path serves all of
them: its own, and what it reads from the others' listeners for each scrape,
every sample labelled with the worker it comes from (``worker="N"``), so
``sum without (worker) (...)`` is the daemon's figure. A worker that does not
answer within L{WorkerMetricsResource.timeout} seconds (being started again,
say) is left out of that scrape, and ``spectroreg_worker_up`` says so.

L{merge_expositions} is the pure part: exposition texts in, one exposition
out, each metric family once.
"""

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import resource, server

log = Logger(namespace="spectroreg.metrics")

__all__ = ["WorkerMetricsResource", "merge_expositions", "worker_metrics_urls"]


class _Families:
    """A collector over families already made."""

    def __init__(self, families):
        self._families = families

    def collect(self):
        return iter(self._families)


def merge_expositions(expositions):
    """
    One exposition (bytes, Prometheus text format) of C{expositions}, a list
    of C{(worker, text)}: each text's samples labelled C{worker}, the
    families in the order first seen; a C{text} of None is a worker that
    did not answer (C{spectroreg_worker_up} 0).
    """
    families = {}
    up = GaugeMetricFamily("spectroreg_worker_up",
                           "Whether the worker's metrics are in this scrape (1) or it did not answer (0)",
                           labels=["worker"])
    for worker, text in expositions:
        worker = str(worker)
        if text is None:
            up.add_metric([worker], 0)
            continue
        try:
            parsed = list(text_string_to_metric_families(text))
        except ValueError as error:
            log.warn("worker {worker}'s metrics are not in the text format: {error}", worker=worker, error=error)
            parsed = None
        up.add_metric([worker], 0 if parsed is None else 1)
        for family in parsed or ():
            merged = families.get((family.name, family.type))
            if merged is None:
                merged = families[(family.name, family.type)] = Metric(
                    family.name, family.documentation, family.type, family.unit)
            for sample in family.samples:
                merged.samples.append(sample._replace(labels=dict(sample.labels, worker=worker)))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(list(families.values()) + [up]))
    return generate_latest(registry)


def worker_metrics_urls(debug_addr, path, workers):
    """
    C{[(index, url)]} of workers 1 … C{workers}-1's metrics, read from
    worker 0 (its own listener's host: loopback for all interfaces), or
    None when C{debug_addr}'s port is 0 (each worker's is then its own).
    """
    from spectroreg.config.addresses import join_host_port, split_host_port

    host, port = split_host_port(debug_addr)
    if not port:
        return None
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return [(index, "http://{}{}".format(join_host_port(host, port + index), path)) for index in range(1, workers)]


class WorkerMetricsResource(resource.Resource):
    """
    Worker 0's metrics path: its own C{registry} and every other worker's
    (C{urls}, from L{worker_metrics_urls}), merged (L{merge_expositions}).

    @param agent: an C{IAgent} the workers' metrics are read with.
    """

    isLeaf = True
    timeout = 2.0

    def __init__(self, registry, urls, agent, reactor):
        super().__init__()
        self._registry = registry
        self._urls = urls
        self._agent = agent
        self._reactor = reactor

    def render_GET(self, request):
        d = defer.ensureDeferred(self._scrape())
        gone = []

        def write(body):
            if not gone:
                request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode("ascii"))
                request.write(body)
                request.finish()

        def failed(failure):
            if failure.check(defer.CancelledError) and gone:
                return
            log.failure("merging the workers' metrics failed", failure)
            if not gone:
                request.setResponseCode(500)
                request.finish()

        def lost(_):
            gone.append(True)
            d.cancel()

        d.addCallbacks(write, failed)
        request.notifyFinish().addErrback(lost)
        return server.NOT_DONE_YET

    async def _scrape(self):
        texts = await defer.gatherResults([defer.ensureDeferred(self._read(url)) for _, url in self._urls])
        own = generate_latest(self._registry).decode("utf-8")
        return merge_expositions([(0, own)] + [(index, text) for (index, _), text in zip(self._urls, texts)])

    async def _read(self, url):
        """The text at C{url}, or None when it cannot be read within L{timeout} seconds."""
        from twisted.web.client import readBody

        try:
            d = self._agent.request(b"GET", url.encode("ascii"))
            d.addTimeout(self.timeout, self._reactor)
            response = await d
            body = readBody(response)
            body.addTimeout(self.timeout, self._reactor)
            body = await body
            if response.code != 200:
                return None
            return body.decode("utf-8")
        except defer.CancelledError:
            raise
        except Exception as error:
            log.debug("worker metrics at {url} not read: {error}", url=url, error=error)
            return None
