"""spectroreg.ops.workermetrics: every worker's metrics in worker 0's scrape."""

import socket

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.twisted import MetricsResource
from twisted.internet import reactor
from twisted.trial import unittest
from twisted.web.client import Agent
from twisted.web.server import Site

from spectroreg.ops.workermetrics import WorkerMetricsResource, merge_expositions, worker_metrics_urls
from tests.support.asynctest import async_test
from tests.support.web import get


def exposition(requests, seconds, queued):
    registry = CollectorRegistry()
    counter = Counter("spectroreg_http_requests_total", "API requests", ["route"], registry=registry)
    counter.labels("blob").inc(requests)
    histogram = Histogram("spectroreg_http_request_duration_seconds", "latency", ["route"],
                          buckets=(0.1, 1.0), registry=registry)
    histogram.labels("blob").observe(seconds)
    Gauge("spectroreg_queue", "queued", registry=registry).set(queued)
    return registry, generate_latest(registry).decode("utf-8")


def samples(text):
    """{(sample name, frozenset(labels)): value} and the family names, in order."""
    found, names = {}, []
    for family in text_string_to_metric_families(text):
        names.append(family.name)
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found, names


class MergeTests(unittest.SynchronousTestCase):
    def test_each_sample_labelled_with_its_worker(self):
        _, first = exposition(3, 0.05, 1)
        _, second = exposition(5, 0.5, 7)
        merged = merge_expositions([(0, first), (1, second)]).decode("utf-8")
        found, names = samples(merged)
        # Each family once (the text format needs a family's samples together).
        self.assertEqual(len(names), len(set(names)))
        self.assertEqual(merged.count("# TYPE spectroreg_http_requests_total counter"), 1)
        blob = ("route", "blob")
        self.assertEqual(found[("spectroreg_http_requests_total", frozenset([blob, ("worker", "0")]))], 3)
        self.assertEqual(found[("spectroreg_http_requests_total", frozenset([blob, ("worker", "1")]))], 5)
        self.assertEqual(found[("spectroreg_queue", frozenset([("worker", "1")]))], 7)
        self.assertEqual(found[("spectroreg_http_request_duration_seconds_bucket",
                                frozenset([blob, ("le", "0.1"), ("worker", "0")]))], 1)
        self.assertEqual(found[("spectroreg_http_request_duration_seconds_bucket",
                                frozenset([blob, ("le", "0.1"), ("worker", "1")]))], 0)
        self.assertEqual(found[("spectroreg_worker_up", frozenset([("worker", "0")]))], 1)
        self.assertEqual(found[("spectroreg_worker_up", frozenset([("worker", "1")]))], 1)
        for (_, labels) in found:
            self.assertIn("worker", dict(labels))

    def test_workers_that_did_not_answer(self):
        _, first = exposition(1, 0.05, 0)
        merged = merge_expositions([(0, first), (1, None), (2, "not { the text format")]).decode("utf-8")
        found, _ = samples(merged)
        self.assertEqual(found[("spectroreg_worker_up", frozenset([("worker", "1")]))], 0)
        self.assertEqual(found[("spectroreg_worker_up", frozenset([("worker", "2")]))], 0)
        self.assertEqual({dict(labels)["worker"] for (name, labels) in found if name != "spectroreg_worker_up"},
                         {"0"})


class URLTests(unittest.SynchronousTestCase):
    def test_urls(self):
        self.assertEqual(worker_metrics_urls(":5001", "/metrics", 3),
                         [(1, "http://127.0.0.1:5002/metrics"), (2, "http://127.0.0.1:5003/metrics")])
        self.assertEqual(worker_metrics_urls("0.0.0.0:5001", "/m", 2), [(1, "http://127.0.0.1:5002/m")])
        self.assertEqual(worker_metrics_urls("[::]:5001", "/m", 2), [(1, "http://[::1]:5002/m")])
        self.assertEqual(worker_metrics_urls("10.1.2.3:5001", "/m", 2), [(1, "http://10.1.2.3:5002/m")])
        self.assertIsNone(worker_metrics_urls("127.0.0.1:0", "/m", 3))


def closed_port():
    """A local port nothing listens on."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


class ResourceTests(unittest.TestCase):
    """The resource on real listeners: a worker that answers, one that does not."""

    def listen(self, resource):
        port = reactor.listenTCP(0, Site(resource), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return port.getHost().port

    @async_test
    async def test_scrape(self):
        own, _ = exposition(2, 0.05, 0)
        other, _ = exposition(9, 0.5, 4)
        other_port = self.listen(MetricsResource(registry=other))
        urls = [(1, "http://127.0.0.1:{}/metrics".format(other_port)),
                (2, "http://127.0.0.1:{}/metrics".format(closed_port()))]
        port = self.listen(WorkerMetricsResource(own, urls, Agent(reactor), reactor))
        response, body = await get("http://127.0.0.1:{}/metrics".format(port))
        self.assertEqual(response.code, 200)
        self.assertTrue(response.headers.getRawHeaders(b"content-type")[0].startswith(b"text/plain"))
        found, _ = samples(body.decode("utf-8"))
        blob = ("route", "blob")
        self.assertEqual(found[("spectroreg_http_requests_total", frozenset([blob, ("worker", "0")]))], 2)
        self.assertEqual(found[("spectroreg_http_requests_total", frozenset([blob, ("worker", "1")]))], 9)
        self.assertEqual(found[("spectroreg_worker_up", frozenset([("worker", "1")]))], 1)
        self.assertEqual(found[("spectroreg_worker_up", frozenset([("worker", "2")]))], 0)

    @async_test
    async def test_worker_that_does_not_answer_in_time(self):
        """A worker whose listener takes the connection but never answers is left out after the timeout."""
        own, _ = exposition(1, 0.05, 0)
        silent = socket.socket()
        self.addCleanup(silent.close)
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        urls = [(1, "http://127.0.0.1:{}/metrics".format(silent.getsockname()[1]))]
        metrics = WorkerMetricsResource(own, urls, Agent(reactor), reactor)
        metrics.timeout = 0.3
        port = self.listen(metrics)
        started = reactor.seconds()
        response, body = await get("http://127.0.0.1:{}/metrics".format(port))
        self.assertEqual(response.code, 200)
        self.assertLess(reactor.seconds() - started, 5)
        found, _ = samples(body.decode("utf-8"))
        self.assertEqual(found[("spectroreg_worker_up", frozenset([("worker", "1")]))], 0)
        self.assertEqual(found[("spectroreg_http_requests_total", frozenset([("route", "blob"), ("worker", "0")]))], 1)
