"""
The cost of the Prometheus metrics: manifest GETs by digest against a
daemon with and without ``http.debug.prometheus.enabled`` (alternating runs,
the best round of each), and the hooks alone (per call).

    python3 bench/metrics.py [--requests 3000] [--runs 3]
"""

import argparse
import http.client
import os
import sys
import timeit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.support.daemon import RegistryDaemon, free_port, minimal_config  # noqa: E402
from tests.support.images import Image  # noqa: E402
from tests.support.pushing import push_image  # noqa: E402


def manifest_gets(metrics, requests):
    import time

    config = minimal_config(log={"accesslog": {"disabled": True}})
    if metrics:
        config["http"] = {"debug": {"addr": "127.0.0.1:{}".format(free_port()), "prometheus": {"enabled": True}}}
    daemon = RegistryDaemon(config)
    daemon.start()
    try:
        image = Image("bench", layer_sizes=(100,))
        push_image(daemon, "app", "v1", image)
        conn = http.client.HTTPConnection("127.0.0.1", daemon.port)
        best = None
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(requests // 5):
                conn.request("GET", "/v2/app/manifests/" + image.digest, headers={"Accept": image.media_type})
                response = conn.getresponse()
                response.read()
                assert response.status == 200
            each = (time.perf_counter() - started) / (requests // 5) * 1e6
            best = each if best is None else min(best, each)
        return best
    finally:
        daemon.stop()


def hooks():
    from twisted.internet import task

    from spectroreg.ops.metrics import NULL_METRICS, Metrics

    class Request:
        code = 200
        sentLength = 700
        _spectroreg_started = 0.0
        spectroreg_stream = None
        _spectroreg_auth = None

        def getHeader(self, name):
            return None

    request = Request()
    number = 100000
    for label, metrics in (("off", NULL_METRICS), ("on", Metrics(task.Clock()))):
        per_request = timeit.timeit(lambda: metrics.request_done(request, "manifest", "GET"), number=number)
        per_storage = timeit.timeit(lambda: metrics.observe("filesystem", "get_content", 0.0001, False),
                                    number=number)
        print("hooks, metrics {}: request {:.2f} us, storage operation {:.2f} us".format(
            label, per_request / number * 1e6, per_storage / number * 1e6))


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    hooks()
    results = {False: [], True: []}
    for _ in range(options.runs):
        for metrics in (False, True):
            results[metrics].append(manifest_gets(metrics, options.requests))
    for metrics in (False, True):
        print("manifest GET, metrics {}: best {:.0f} us per request (runs: {})".format(
            "on" if metrics else "off", min(results[metrics]),
            ", ".join("{:.0f}".format(value) for value in results[metrics])))


if __name__ == "__main__":
    main()
