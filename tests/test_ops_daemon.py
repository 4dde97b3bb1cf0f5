"""
Health, metrics and webhook notifications against the running daemon
(``tests.support.daemon``): the debug listener, the 503 gate, a scrape after
a push and a pull, and real HTTP sinks (one that answers, one that hangs).
"""

import http.client
import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from twisted.trial import unittest

from tests.support.daemon import free_port, minimal_config, start_daemon
from tests.support.images import Image
from tests.support.pushing import push_blob, push_image

EVENTS_TYPE = "application/vnd.docker.distribution.events.v1+json"


def get(port, path, timeout=10.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.getheader("content-type"), response.read()
    finally:
        conn.close()


def wait_for(predicate, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


class Sink:
    """A real HTTP server in the test that records every envelope POSTed to it."""

    def __init__(self, testcase, port=0):
        self.envelopes = []
        self.content_types = []
        self.headers = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                sink.content_types.append(self.headers.get("content-type"))
                sink.headers.append(dict(self.headers))
                sink.envelopes.append(json.loads(body))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        testcase.addCleanup(self.server.server_close)
        testcase.addCleanup(self.server.shutdown)

    @property
    def events(self):
        return [event for envelope in list(self.envelopes) for event in envelope["events"]]


class HangingSink:
    """Takes connections (the kernel's backlog) and never answers."""

    def __init__(self, testcase):
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(1)
        self.port = self.socket.getsockname()[1]
        testcase.addCleanup(self.socket.close)


def scrape(port, path="/metrics"):
    status, _, body = get(port, path)
    assert status == 200, status
    samples = {}
    for line in body.decode("utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


class HealthTests(unittest.TestCase):
    def test_file_check_turns_registry_unavailable(self):
        """health.file: 200 while the file is absent; 503 on /debug/health and on the API while it exists."""
        debug_port = free_port()
        flag = os.path.abspath(self.mktemp())
        config = minimal_config(
            http={"debug": {"addr": "127.0.0.1:{}".format(debug_port)}},
            health={"file": [{"file": flag, "interval": "100ms"}], "storagedriver": {"enabled": True}},
        )
        daemon = start_daemon(self, config)
        self.assertEqual(get(debug_port, "/debug/health")[::2], (200, b"{}\n"))
        self.assertEqual(daemon.request("GET", "/v2/").status, 200)

        open(flag, "w").close()
        wait_for(lambda: get(debug_port, "/debug/health")[0] == 503, what="health 503")
        status, content_type, body = get(debug_port, "/debug/health")
        self.assertEqual(json.loads(body), {flag: "file exists"})
        self.assertTrue(content_type.startswith("application/json"))
        for method, path in (("GET", "/v2/"), ("GET", "/v2/x/manifests/latest"), ("GET", "/")):
            response = daemon.request(method, path)
            self.assertEqual(response.status, 503, path)
            self.assertEqual(json.loads(response.body)["errors"][0]["code"], "UNAVAILABLE")
        # An upload refused while unavailable leaves nothing behind.
        response = daemon.request("POST", "/v2/x/blobs/uploads/?digest=sha256:" + "0" * 64, {}, b"data")
        self.assertEqual(response.status, 503)

        os.unlink(flag)
        wait_for(lambda: get(debug_port, "/debug/health")[0] == 200, what="health 200 again")
        self.assertEqual(daemon.request("GET", "/v2/").status, 200)
        self.assertEqual(daemon.request("GET", "/v2/_catalog").body, b'{"repositories": []}')
        self.assertEqual(get(debug_port, "/nothing")[0], 404)
        # No metrics without http.debug.prometheus.enabled.
        self.assertEqual(get(debug_port, "/metrics")[0], 404)

    def test_tcp_check_with_threshold(self):
        """health.tcp: a closed port fails only after `threshold` failures in a row."""
        debug_port = free_port()
        config = minimal_config(
            http={"debug": {"addr": "127.0.0.1:{}".format(debug_port)}},
            health={"tcp": [{"addr": "127.0.0.1:{}".format(free_port()), "interval": "200ms",
                             "timeout": "1s", "threshold": 3}]},
        )
        daemon = start_daemon(self, config)
        wait_for(lambda: get(debug_port, "/debug/health")[0] == 503, what="tcp check failing")
        (name, error), = json.loads(get(debug_port, "/debug/health")[2]).items()
        self.assertIn("connection failed", error)
        self.assertEqual(daemon.request("GET", "/v2/").status, 503)


class Backend:
    """An HTTP server answering HEAD with C{status} (changeable), recording the request headers."""

    def __init__(self, testcase):
        self.status = 200
        self.headers = []
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self):
                backend.headers.append(dict(self.headers))
                self.send_response(backend.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        testcase.addCleanup(self.server.server_close)
        testcase.addCleanup(self.server.shutdown)


class HTTPCheckTests(unittest.TestCase):
    def test_http_check_follows_backend_status(self):
        backend = Backend(self)
        debug_port = free_port()
        uri = "http://127.0.0.1:{}/ping".format(backend.port)
        config = minimal_config(
            http={"debug": {"addr": "127.0.0.1:{}".format(debug_port)}},
            health={"http": [{"uri": uri, "statuscode": 204, "interval": "100ms", "timeout": "2s",
                              "headers": {"X-Check": ["spectroreg"]}}]},
        )
        backend.status = 204
        daemon = start_daemon(self, config)
        self.assertEqual(get(debug_port, "/debug/health")[0], 200)
        wait_for(lambda: backend.headers, what="the first check")
        self.assertEqual(backend.headers[0].get("X-Check"), "spectroreg")
        backend.status = 500
        wait_for(lambda: get(debug_port, "/debug/health")[0] == 503, what="http check failing")
        self.assertEqual(json.loads(get(debug_port, "/debug/health")[2]),
                         {uri: uri + ": downstream service returned unexpected status: 500"})
        self.assertEqual(daemon.request("GET", "/v2/").status, 503)
        backend.status = 204
        wait_for(lambda: get(debug_port, "/debug/health")[0] == 200, what="http check passing")
        self.assertEqual(daemon.request("GET", "/v2/").status, 200)


class MetricsTests(unittest.TestCase):
    def test_scrape_after_push_and_pull(self):
        debug_port = free_port()
        config = minimal_config(
            http={"debug": {"addr": "127.0.0.1:{}".format(debug_port),
                            "prometheus": {"enabled": True, "path": "/metrics"}}},
        )
        config["storage"]["cache"] = {"blobdescriptor": "inmemory"}
        daemon = start_daemon(self, config)
        image = Image("metrics", layer_sizes=(2048, 4096))
        push_image(daemon, "app", "v1", image)
        for _ in range(2):
            self.assertEqual(daemon.request("GET", "/v2/app/manifests/v1",
                                            {"Accept": image.media_type}).status, 200)
        for blob in image.blobs():
            self.assertEqual(daemon.request("GET", "/v2/app/blobs/" + blob.digest).body, blob.data)
        self.assertEqual(daemon.request("GET", "/v2/app/manifests/nope").status, 404)

        samples = scrape(debug_port)
        manifests_put = 'spectroreg_http_requests_total{method="PUT",route="manifest",status="201"}'
        self.assertEqual(samples[manifests_put], 1)
        self.assertEqual(samples['spectroreg_http_requests_total{method="GET",route="manifest",status="200"}'], 2)
        self.assertEqual(samples['spectroreg_http_requests_total{method="GET",route="manifest",status="404"}'], 1)
        self.assertEqual(samples['spectroreg_http_requests_total{method="POST",route="upload_start",status="201"}'],
                         len(image.blobs()))
        self.assertEqual(samples['spectroreg_http_request_duration_seconds_count{method="GET",route="blob"}'],
                         len(image.blobs()))
        self.assertEqual(samples['spectroreg_http_request_bytes_total{method="POST",route="upload_start"}'],
                         sum(len(b.data) for b in image.blobs()))
        self.assertEqual(samples['spectroreg_http_response_bytes_total{method="GET",route="blob"}'],
                         sum(len(b.data) for b in image.blobs()))
        self.assertEqual(samples['spectroreg_http_request_bytes_total{method="PUT",route="manifest"}'],
                         len(image.manifest.data))
        self.assertEqual(samples["spectroreg_uploads_in_progress"], 0)
        self.assertGreater(samples['spectroreg_storage_operation_duration_seconds_count'
                                   '{driver="inmemory",operation="get_content"}'], 0)
        self.assertGreater(samples['spectroreg_cache_hits_total{cache="manifest"}'], 0)
        self.assertIn('spectroreg_cache_misses_total{cache="blobdescriptor"}', samples)
        for name in ("spectroreg_gc_runs_total", "spectroreg_gc_blobs_deleted_total",
                     "spectroreg_gc_bytes_freed_total", "spectroreg_auth_failures_total",
                     "spectroreg_auth_throttled_total"):
            self.assertEqual(samples[name], 0, name)


def strip(event):
    """The parts of an event a test can predict."""
    target = dict(event["target"])
    target.pop("url", None)
    return event["action"], target


class NotificationTests(unittest.TestCase):
    def test_events_of_push_pull_mount_delete(self):
        sink = Sink(self)
        config = minimal_config(
            notifications={"endpoints": [{
                "name": "sink",
                "url": "http://127.0.0.1:{}/hook".format(sink.port),
                "headers": {"Authorization": ["Bearer sesame"]},
                "timeout": "5s",
                "ignore": {"actions": []},
            }]},
        )
        config["storage"]["delete"] = {"enabled": True}
        daemon = start_daemon(self, config)
        image = Image("events", layer_sizes=(1024,))
        config_blob, layer = image.blobs()
        agent = {"User-Agent": "events-test/1.0"}
        push_image(daemon, "app", "v1", image, headers=agent)
        self.assertEqual(daemon.request("PUT", "/v2/app/manifests/v2", {"Content-Type": image.media_type},
                                        image.manifest.data).status, 201)
        self.assertEqual(daemon.request("GET", "/v2/app/manifests/v1", agent).status, 200)
        self.assertEqual(daemon.request("HEAD", "/v2/app/manifests/v1").status, 200)
        self.assertEqual(daemon.request("GET", "/v2/app/blobs/" + layer.digest).status, 200)
        mount = "/v2/other/blobs/uploads/?mount={}&from=app".format(layer.digest)
        self.assertEqual(daemon.request("POST", mount).status, 201)
        self.assertEqual(daemon.request("DELETE", "/v2/app/manifests/v2").status, 202)
        self.assertEqual(daemon.request("DELETE", "/v2/app/manifests/" + image.digest).status, 202)
        self.assertEqual(daemon.request("DELETE", "/v2/other/blobs/" + layer.digest).status, 202)
        # Failures produce no event.
        self.assertEqual(daemon.request("GET", "/v2/app/manifests/v1").status, 404)

        def blob(b, repository="app"):
            return {"mediaType": "application/octet-stream", "digest": b.digest, "size": len(b.data),
                    "length": len(b.data), "repository": repository}

        def manifest(tag=None):
            target = {"mediaType": image.media_type, "digest": image.digest, "size": len(image.manifest.data),
                      "length": len(image.manifest.data), "repository": "app"}
            if tag:
                target["tag"] = tag
            return target

        mounted = blob(layer, "other")
        mounted["fromRepository"] = "app"
        expected = [
            ("push", blob(config_blob)),
            ("push", blob(layer)),
            ("push", manifest("v1")),
            ("push", manifest("v2")),
            ("pull", manifest("v1")),
            ("pull", blob(layer)),
            ("mount", mounted),
            ("delete", {"repository": "app", "tag": "v2"}),
            ("delete", {"repository": "app", "digest": image.digest}),
            ("delete", {"repository": "other", "digest": layer.digest}),
        ]
        wait_for(lambda: len(sink.events) >= len(expected), what="all events")
        time.sleep(0.5)  # nothing more arrives
        events = sink.events
        self.assertEqual([strip(event) for event in events], expected)
        self.assertEqual(set(sink.content_types), {EVENTS_TYPE})
        self.assertEqual({h.get("Authorization") for h in sink.headers}, {"Bearer sesame"})
        first = events[0]
        self.assertEqual(first["target"]["url"],
                         "{}/v2/app/blobs/{}".format(daemon.url, config_blob.digest))
        self.assertEqual(events[2]["target"]["url"],
                         "{}/v2/app/manifests/{}".format(daemon.url, image.digest))
        self.assertEqual(first["request"]["method"], "POST")
        self.assertEqual(first["request"]["useragent"], "events-test/1.0")
        self.assertEqual(first["request"]["host"], daemon.netloc)
        self.assertTrue(first["request"]["addr"].startswith("127.0.0.1:"))
        self.assertTrue(first["request"]["id"])
        self.assertEqual(first["actor"], {})
        self.assertTrue(first["source"]["instanceID"])
        self.assertEqual(len({event["id"] for event in events}), len(events))

    def test_ignored_media_types_and_actions(self):
        sink = Sink(self)
        config = minimal_config(
            notifications={"endpoints": [{
                "name": "sink",
                "url": "http://127.0.0.1:{}/".format(sink.port),
                "ignoredmediatypes": ["application/octet-stream"],
                "ignore": {"actions": ["pull"]},
            }, {"name": "off", "url": "http://127.0.0.1:{}/".format(free_port()), "disabled": True}]},
        )
        daemon = start_daemon(self, config)
        image = Image("ignored", layer_sizes=(512,))
        push_image(daemon, "app", "v1", image)
        self.assertEqual(daemon.request("GET", "/v2/app/manifests/v1").status, 200)
        wait_for(lambda: sink.events, what="an event")
        time.sleep(0.5)
        self.assertEqual([(e["action"], e["target"]["mediaType"]) for e in sink.events],
                         [("push", image.media_type)])

    def test_hanging_endpoint_does_not_slow_pushes(self):
        """A sink that never answers: pushes take no longer, the queue stays bounded, it is logged."""
        hanging = HangingSink(self)
        debug_port = free_port()
        config = minimal_config(
            http={"debug": {"addr": "127.0.0.1:{}".format(debug_port),
                            "prometheus": {"enabled": True}}},
            notifications={"endpoints": [{
                "name": "stuck",
                "url": "http://127.0.0.1:{}/".format(hanging.port),
                "timeout": "30s",
                "queuesize": 10,
            }]},
        )
        daemon = start_daemon(self, config)
        from tests.support.images import Blob

        durations = []
        for number in range(60):
            blob = Blob("blob {}".format(number).encode("ascii") * 100, "application/octet-stream")
            started = time.monotonic()
            push_blob(daemon, "app", blob)
            durations.append(time.monotonic() - started)
        # Each push answers long before the endpoint's 30 s timeout would.
        self.assertLess(max(durations), 5.0, durations)
        samples = scrape(debug_port)
        self.assertLessEqual(samples['spectroreg_notifications_pending{endpoint="stuck"}'], 10)
        self.assertEqual(samples['spectroreg_notifications_sent_total{endpoint="stuck"}'], 0)
        self.assertGreaterEqual(samples['spectroreg_notifications_dropped_total{endpoint="stuck"}'], 50)
        with open(daemon.log_path, encoding="utf-8") as log:
            text = log.read()
        self.assertIn("notification endpoint stuck: queue full", text)
        self.assertEqual(text.count("queue full"), 1)

    def test_dead_endpoint_retried_until_it_answers(self):
        """Connection refused: counted as failures, logged, retried with backoff; delivered once it is up."""
        port = free_port()
        debug_port = free_port()
        config = minimal_config(
            http={"debug": {"addr": "127.0.0.1:{}".format(debug_port), "prometheus": {"enabled": True}}},
            notifications={"endpoints": [{
                "name": "later",
                "url": "http://127.0.0.1:{}/hook?token=sesame".format(port),
                "threshold": 2,
                "backoff": "200ms",
            }]},
        )
        daemon = start_daemon(self, config)
        image = Image("dead", layer_sizes=(256,))
        push_image(daemon, "app", "v1", image)
        wait_for(lambda: scrape(debug_port)['spectroreg_notifications_failed_total{endpoint="later"}'] >= 3,
                 what="failed deliveries")
        samples = scrape(debug_port)
        self.assertEqual(samples['spectroreg_notifications_pending{endpoint="later"}'], 3)
        self.assertEqual(samples['spectroreg_notifications_sent_total{endpoint="later"}'], 0)
        sink = Sink(self, port)
        wait_for(lambda: len(sink.events) == 3, what="the events, once the endpoint is up")
        self.assertEqual([e["action"] for e in sink.events], ["push"] * 3)
        self.assertEqual(sink.events[-1]["target"]["tag"], "v1")
        wait_for(lambda: scrape(debug_port)['spectroreg_notifications_sent_total{endpoint="later"}'] == 3,
                 what="sent counted")
        self.assertEqual(scrape(debug_port)['spectroreg_notifications_pending{endpoint="later"}'], 0)
        with open(daemon.log_path, encoding="utf-8") as log:
            text = log.read()
        self.assertIn("notification endpoint later (http://127.0.0.1:{}/hook): delivery failed".format(port), text)
        self.assertIn("notification endpoint later: delivering again", text)
        self.assertNotIn("sesame", text)


class SkopeoNotificationTests(unittest.TestCase):
    """A real client's push and pull (HEAD probes, chunked uploads, concurrent blobs): exactly one event per blob and manifest."""

    def test_skopeo_push_and_pull(self):
        from tests.support import images
        from tests.support.skopeo import Skopeo

        skopeo = Skopeo(os.path.abspath(self.mktemp()))
        sink = Sink(self)
        daemon = start_daemon(self, minimal_config(notifications={"endpoints": [{
            "name": "sink", "url": "http://127.0.0.1:{}/".format(sink.port)}]}))
        image = images.Image("skopeo-events", layer_sizes=(4096, 300 * 1024))
        layout = os.path.abspath(self.mktemp())
        images.write_oci_layout(layout, image, "v1")
        skopeo.copy("oci:{}:v1".format(layout), "docker://{}/team/app:v1".format(daemon.netloc))
        out = os.path.abspath(self.mktemp())
        skopeo.copy("docker://{}/team/app:v1".format(daemon.netloc), "oci:{}:v1".format(out))

        def summary(action):
            return sorted((e["target"]["digest"], e["target"].get("tag"), e["target"]["mediaType"],
                           e["target"]["size"], e["target"]["repository"])
                          for e in sink.events if e["action"] == action)

        blobs = [(b.digest, None, "application/octet-stream", len(b.data), "team/app") for b in image.blobs()]
        manifest = (image.digest, "v1", image.media_type, len(image.manifest.data), "team/app")
        expected = sorted(blobs + [manifest])
        wait_for(lambda: len(sink.events) >= 2 * len(expected), what="push and pull events")
        time.sleep(0.5)
        self.assertEqual(summary("push"), expected)
        self.assertEqual(summary("pull"), expected)
        self.assertEqual(len(sink.events), 2 * len(expected))
        for event in sink.events:
            self.assertIn("skopeo", event["request"]["useragent"])
