"""
Online garbage collection in a running daemon under load: workers push
images sharing layers (skipping blobs a HEAD finds, mounting from each
other's repositories), re-tag, untag and delete, while the daemon collects
every second with a short grace period and ``deleteuntagged``.

Afterwards every manifest that was accepted and not deleted (nor left
without a tag) pulls back in full, and once the last operation is older
than the grace period, two more collections leave no blob that no live
manifest references. The test prints the rounds and operations it ran.

The races it may hit are each played out deterministically in
tests.test_gc_races; under load here the windows are too narrow to be hit
on every run.
"""

import hashlib
import json
import os
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from twisted.trial import unittest

from tests.support.daemon import start_daemon
from tests.support.images import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, canonical_json, seeded_bytes

WORKERS = 4
ROUNDS = int(os.environ.get("SPECTROREG_GC_STRESS_ROUNDS", "12"))
GRACE = 2.0
INTERVAL = 1.0
# A collection deletes during the first two fifths of the grace period after
# it starts marking: on S3 (moto, a loaded machine) the mark alone takes seconds.
S3_GRACE = 8.0
SHARED = [seeded_bytes("shared-{}".format(n), 2048 + n) for n in range(10)]
COLLECTED = re.compile(r"garbage collection: (\d+) blob\(s\) \((\d+) bytes\) and (\d+) manifest\(s\) deleted")


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}

    def add(self, what, n=1):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + n


class Worker:
    """One client working on its own repository; its model of what is live there."""

    def __init__(self, test, number):
        self.test = test
        self.daemon = test.daemons[number % len(test.daemons)]
        self.number = number
        self.repo = "stress/w{}".format(number)
        self.random = random.Random(number)
        # manifest digest -> {"body", "blobs": {digest: bytes}, "tags": set}
        self.live = {}
        self.dead = set()

    def request(self, method, path, headers=None, body=None):
        response = self.daemon.request(method, path, headers, body, timeout=30.0)
        self.test.stats.add("requests")
        if response.status >= 500 and response.status != 503:
            raise AssertionError("{} {}: {} {}".format(method, path, response.status, response.body[:300]))
        return response

    def push_blob(self, data, skip_existing=True):
        d = digest(data)
        if skip_existing:
            if self.request("HEAD", "/v2/{}/blobs/{}".format(self.repo, d)).status == 200:
                self.test.stats.add("blobs skipped")
                return
            other = "stress/w{}".format((self.number + 1) % WORKERS)
            response = self.request("POST", "/v2/{}/blobs/uploads/?mount={}&from={}".format(self.repo, d, other))
            if response.status == 201:
                self.test.stats.add("mounts")
                return
            location = urlsplit(response.header("Location"))
            path = location.path + "?" + (location.query + "&" if location.query else "") + "digest=" + d
            response = self.request("PUT", path, {"Content-Type": "application/octet-stream"}, data)
        else:
            response = self.request("POST", "/v2/{}/blobs/uploads/?digest={}".format(self.repo, d),
                                    {"Content-Type": "application/octet-stream"}, data)
        self.test.assertEqual(response.status, 201, response.body)
        self.test.stats.add("blobs pushed")

    def put_manifest(self, reference, body):
        return self.request("PUT", "/v2/{}/manifests/{}".format(self.repo, reference),
                            {"Content-Type": OCI_MANIFEST}, body)

    def push_image(self, round_number):
        own = seeded_bytes("own-{}-{}".format(self.number, round_number), 1500)
        layers = self.random.sample(SHARED, 2) + [own]
        config = canonical_json({"architecture": "amd64", "os": "linux", "worker": self.number,
                                 "round": round_number})
        body = canonical_json({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": digest(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": digest(layer), "size": len(layer)} for layer in layers],
        })
        tag = "r{}".format(round_number)
        for attempt in range(5):
            for blob in [config] + layers:
                self.push_blob(blob, skip_existing=attempt == 0)
            response = self.put_manifest(tag, body)
            if response.status == 201:
                break
            # A blob a HEAD found was collected before the manifest came, or
            # storage was too slow for the grace period: push again, as a
            # client does.
            self.test.assertIn(response.status, (400, 503), response.body)
            if response.status == 400:
                self.test.assertEqual(json.loads(response.body)["errors"][0]["code"], "MANIFEST_BLOB_UNKNOWN")
            self.test.stats.add("manifest pushes retried")
        else:
            raise AssertionError("manifest push kept failing: {}".format(response.body))
        self.test.stats.add("images pushed")
        self.live[digest(body)] = {"body": body, "blobs": {digest(b): b for b in [config] + layers},
                                   "tags": {tag}}

    def retag(self, round_number):
        if not self.live:
            return
        d = self.random.choice(sorted(self.live))
        tag = "x{}".format(round_number)
        response = self.put_manifest(tag, self.live[d]["body"])
        # Everything a live manifest references is there: a re-tag never fails.
        self.test.assertEqual(response.status, 201, response.body)
        self.live[d]["tags"].add(tag)
        self.test.stats.add("re-tags")

    def delete(self):
        # Few live images: shared layers often lose their last reference,
        # grow old, and are wanted again by the next push.
        if len(self.live) < 3:
            return
        d = self.random.choice(sorted(self.live))
        entry = self.live[d]
        if self.random.random() < 0.5 and len(entry["tags"]) > 0:
            tag = sorted(entry["tags"])[0]
            response = self.request("DELETE", "/v2/{}/manifests/{}".format(self.repo, tag))
            self.test.assertEqual(response.status, 202, response.body)
            entry["tags"].discard(tag)
            self.test.stats.add("untags")
            if entry["tags"]:
                return
        else:
            response = self.request("DELETE", "/v2/{}/manifests/{}".format(self.repo, d))
            self.test.assertEqual(response.status, 202, response.body)
            self.test.stats.add("manifest deletes")
        # Deleted, or untagged (deleteuntagged collects it).
        del self.live[d]
        self.dead.add(d)

    def run(self, rounds):
        for round_number in range(rounds):
            self.push_image(round_number)
            self.retag(round_number)
            self.delete()
            self.delete()
            time.sleep(0.3 + self.random.random() * 0.7)


class OnlineCollectionStressTests(unittest.TestCase):
    # Daemons sharing the storage, each collecting; the workers are spread over them.
    daemons_count = 1
    rounds = ROUNDS
    grace = GRACE

    def storage(self):
        self.root = os.path.abspath(self.mktemp())
        return {"filesystem": {"rootdirectory": self.root}}

    def stored_blobs(self):
        """The digests of the blobs in storage."""
        base = os.path.join(self.root, "docker", "registry", "v2", "blobs", "sha256")
        found = set()
        for prefix in os.listdir(base) if os.path.isdir(base) else ():
            for hex_ in os.listdir(os.path.join(base, prefix)):
                if os.path.exists(os.path.join(base, prefix, hex_, "data")):
                    found.add("sha256:" + hex_)
        return found

    def collections(self, daemon=None):
        return [found for d in ([daemon] if daemon else self.daemons)
                for found in COLLECTED.findall(d.log_text())]

    def test_collect_while_pushing(self):
        storage = self.storage()
        storage["delete"] = {"enabled": True}
        storage["maintenance"] = {
            "uploadpurging": {"enabled": False},
            "gc": {"enabled": True, "interval": "{}s".format(INTERVAL), "graceperiod": "{}s".format(self.grace),
                   "deleteuntagged": True},
        }
        self.daemons = [
            start_daemon(self, {"version": 0.1, "log": {"level": "info"}, "storage": storage,
                                "http": {"addr": "127.0.0.1:0"}})
            for _ in range(self.daemons_count)]
        self.stats = Stats()
        started = time.monotonic()
        workers = [Worker(self, n) for n in range(WORKERS)]
        with ThreadPoolExecutor(WORKERS) as pool:
            for future in [pool.submit(worker.run, self.rounds) for worker in workers]:
                future.result()
        last_operation = time.monotonic()
        during = self.collections()

        # Every live manifest pulls back whole, by digest and by each tag,
        # from every daemon.
        for worker, daemon in [(w, d) for w in workers for d in self.daemons]:
            worker.daemon = daemon
            for d, entry in worker.live.items():
                for reference in [d] + sorted(entry["tags"]):
                    response = worker.request("GET", "/v2/{}/manifests/{}".format(worker.repo, reference),
                                              {"Accept": OCI_MANIFEST})
                    self.assertEqual((response.status, response.body), (200, entry["body"]), reference)
                for blob_digest, data in entry["blobs"].items():
                    response = worker.request("GET", "/v2/{}/blobs/{}".format(worker.repo, blob_digest))
                    self.assertEqual(response.status, 200, blob_digest)
                    self.assertEqual(digest(response.body), blob_digest)
                    self.assertEqual(response.body, data)

        # Two collections that start after everything is past the grace
        # period leave only what live manifests reference.
        time.sleep(max(0.0, last_operation + self.grace + 0.5 - time.monotonic()))
        seen = [len(self.collections(daemon)) for daemon in self.daemons]
        deadline = time.monotonic() + 30.0
        # The one running may have started earlier: two more start after.
        while time.monotonic() < deadline and any(
                len(self.collections(daemon)) < before + 3 for daemon, before in zip(self.daemons, seen)):
            time.sleep(0.1)
        for daemon, before in zip(self.daemons, seen):
            self.assertGreaterEqual(len(self.collections(daemon)), before + 3, "collections stopped running")
        referenced = set()
        for worker in workers:
            for d, entry in worker.live.items():
                referenced.add(d)
                referenced.update(entry["blobs"])
        self.assertEqual(self.stored_blobs() - referenced, set())
        self.assertEqual(referenced - self.stored_blobs(), set())

        for daemon in self.daemons:
            log = daemon.log_text()
            self.assertNotIn("Traceback", log)
            self.assertNotIn("garbage collection failed", log)
        deleted = sum(int(blobs) for blobs, _, _ in self.collections())
        self.assertGreater(len(during), 2)
        self.assertGreater(deleted, 0)
        counts = dict(self.stats.counts)
        operations = sum(v for k, v in counts.items() if k != "requests")
        print("\nonline GC stress, {} daemon(s): {} workers x {} rounds, {} operations ({}), {} requests, "
              "{} collections during the load, {} blobs and {} manifests collected in all, {:.1f}s".format(
                  len(self.daemons), WORKERS, self.rounds, operations,
                  ", ".join("{} {}".format(v, k) for k, v in sorted(counts.items()) if k != "requests"),
                  counts.get("requests", 0), len(during), deleted,
                  sum(int(m) for _, _, m in self.collections()), time.monotonic() - started))


class SharedStorageStressTests(OnlineCollectionStressTests):
    """Two daemons on one directory, both collecting, clients on both."""

    daemons_count = 2
    rounds = max(1, ROUNDS * 2 // 3)


class S3StressTests(OnlineCollectionStressTests):
    """One daemon on S3 (moto): fewer rounds, every S3 round trip being slower."""

    rounds = max(1, ROUNDS // 3)
    grace = S3_GRACE

    def storage(self):
        from tests.support.moto import fresh_bucket, registry_s3_config

        self.server, self.bucket = fresh_bucket(self)
        section = registry_s3_config("spectroreg", self.server, self.bucket, 0)["storage"]["s3"]
        self.prefix = section["rootdirectory"].strip("/") + "/docker/registry/v2/blobs/sha256/"
        return {"s3": section, "redirect": {"disable": True}}

    def stored_blobs(self):
        found = set()
        pages = self.server.s3().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        for page in pages:
            for item in page.get("Contents", []):
                parts = item["Key"][len(self.prefix):].split("/")
                if len(parts) == 3 and parts[2] == "data":
                    found.add("sha256:" + parts[1])
        return found
