"""
htpasswd authentication end to end: the real daemon on 127.0.0.1, real HTTP.

Also the users' documentation example: ``REGISTRY_AUTH=htpasswd`` with
``REGISTRY_AUTH_HTPASSWD_REALM`` over the shipped config keeps the path and
changes only the realm.
"""

import base64
import hashlib
import http.client
import json
import os
import time

import bcrypt
import yaml
from twisted.internet import defer, endpoints, protocol, threads
from twisted.trial import unittest

from tests.support.asynctest import async_test
from tests.support.daemon import REPO_ROOT, minimal_config, start_daemon, start_daemon_async

REALM = "spectroreg tests"


def hashed(password, cost=5):
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost))


def write_htpasswd(path, users):
    with open(path, "wb") as handle:
        for user, password in users.items():
            handle.write(user.encode() + b":" + hashed(password) + b"\n")


def basic(user, password):
    return "Basic " + base64.b64encode("{}:{}".format(user, password).encode()).decode()


def push_small_image(daemon, authorization, repository="demo/app", tag="v1"):
    """Monolithic blob upload of a config, then the manifest (no layers)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    headers = {"Authorization": authorization, "Content-Type": "application/octet-stream"}
    response = daemon.request(
        "POST", "/v2/{}/blobs/uploads/?digest={}".format(repository, config_digest), headers, config
    )
    assert response.status == 201, (response.status, response.body)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [],
        }
    ).encode()
    response = daemon.request(
        "PUT",
        "/v2/{}/manifests/{}".format(repository, tag),
        {"Authorization": authorization, "Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        manifest,
    )
    assert response.status == 201, (response.status, response.body)
    return manifest


def error_codes(response):
    return [e["code"] for e in json.loads(response.body)["errors"]]


class HtpasswdDaemonTests(unittest.TestCase):
    def setUp(self):
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.htpasswd = os.path.join(self.directory, "htpasswd")
        write_htpasswd(self.htpasswd, {"alice": "wonderland"})
        config = minimal_config(auth={"htpasswd": {"realm": REALM, "path": self.htpasswd}})
        self.daemon = start_daemon(self, config)

    def get(self, path="/v2/", authorization=None):
        headers = {"Authorization": authorization} if authorization else {}
        return self.daemon.request("GET", path, headers)

    def test_challenge_success_and_failures(self):
        response = self.get()
        self.assertEqual(response.status, 401)
        self.assertEqual(response.header("WWW-Authenticate"), 'Basic realm="{}"'.format(REALM))
        self.assertEqual(error_codes(response), ["UNAUTHORIZED"])
        response = self.get(authorization=basic("alice", "wonderland"))
        self.assertEqual(response.status, 200, response.body)
        self.assertEqual(response.header("Docker-Distribution-API-Version"), "registry/2.0")
        for authorization in (basic("alice", "wrong"), basic("mallory", "wonderland"), "Basic !!"):
            response = self.get(authorization=authorization)
            self.assertEqual(response.status, 401, authorization)
            self.assertEqual(response.header("WWW-Authenticate"), 'Basic realm="{}"'.format(REALM))
            self.assertEqual(error_codes(response), ["UNAUTHORIZED"])
        # Every API route is guarded, not only /v2/.
        self.assertEqual(self.get("/v2/demo/app/tags/list").status, 401)

    def test_user_added_while_running(self):
        self.assertEqual(self.get(authorization=basic("bob", "builder")).status, 401)
        write_htpasswd(self.htpasswd, {"alice": "wonderland", "bob": "builder"})
        self.assertEqual(self.get(authorization=basic("bob", "builder")).status, 200)

    def test_password_change_while_running(self):
        self.assertEqual(self.get(authorization=basic("alice", "wonderland")).status, 200)
        write_htpasswd(self.htpasswd, {"alice": "looking-glass"})
        self.assertEqual(self.get(authorization=basic("alice", "looking-glass")).status, 200)
        # The old password, verified and cached before, no longer works.
        self.assertEqual(self.get(authorization=basic("alice", "wonderland")).status, 401)

    def test_repeated_failures_answered_429(self):
        statuses = [self.get(authorization=basic("alice", "guess{}".format(n))).status for n in range(10)]
        self.assertEqual(statuses, [401] * 10)
        response = self.get(authorization=basic("alice", "wonderland"))
        self.assertEqual(response.status, 429)
        self.assertEqual(error_codes(response), ["TOOMANYREQUESTS"])
        self.assertGreaterEqual(int(response.header("Retry-After")), 1)
        self.daemon.wait_for_log(r"client 127\.0\.0\.1 blocked")

    def test_push_and_pull_authenticated(self):
        authorization = basic("alice", "wonderland")
        manifest = push_small_image(self.daemon, authorization)
        response = self.daemon.request(
            "GET",
            "/v2/demo/app/manifests/v1",
            {"Authorization": authorization, "Accept": "application/vnd.oci.image.manifest.v1+json"},
        )
        self.assertEqual((response.status, response.body), (200, manifest))
        self.assertEqual(self.get("/v2/demo/app/manifests/v1").status, 401)


class _OneExchange(protocol.Protocol):
    """Sends one request (with Connection: close) and keeps the whole answer."""

    def __init__(self, request):
        self.request = request
        self.received = []
        self.done = defer.Deferred()

    def connectionMade(self):
        self.transport.write(self.request)

    def dataReceived(self, data):
        self.received.append(data)

    def connectionLost(self, reason):
        self.done.callback(b"".join(self.received))


async def exchange_from(reactor, source, port, request):
    """One raw exchange from the local address C{source}; the status, or the error's name."""
    endpoint = endpoints.TCP4ClientEndpoint(
        reactor, "127.0.0.1", port, timeout=60, bindAddress=(source, 0)
    )
    exchange = _OneExchange(request)
    try:
        await endpoints.connectProtocol(endpoint, exchange)
    except Exception as error:
        return type(error).__name__
    answer = await exchange.done
    parts = answer.split(b"\r\n", 1)[0].split()
    return int(parts[1]) if len(parts) > 1 else "no answer"


def get_from(port, source, authorization, timeout=60.0):
    """Blocking GET /v2/ from the local address C{source}: (status, seconds taken)."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
    try:
        connection.request("GET", "/v2/", headers={"Authorization": authorization})
        response = connection.getresponse()
        response.read()
        return response.status, time.monotonic() - started
    finally:
        connection.close()


def block_allowance(threshold, elapsed, penalty=10.0, max_penalty=300.0):
    """
    How many checks the throttle lets one address start within C{elapsed}
    seconds: C{threshold}, then one more each time a block ends (10 s,
    doubling).
    """
    allowed, ends, block = threshold, penalty, penalty
    while ends < elapsed:
        allowed += 1
        block = min(max_penalty, block * 2)
        ends += block
    return allowed


class LoginFloodDaemonTests(unittest.TestCase):
    """
    One address sends hundreds of wrong passwords at once (bcrypt at cost
    10, Distribution's default), while another address logs in for the
    first time and a user whose credentials were verified keeps pulling.
    """

    FLOOD = 500
    FLOODER = "127.0.6.6"
    NEWCOMER = "127.0.0.2"
    VERIFIED = "127.0.0.3"
    THRESHOLD = 10  # the throttle's failures per window

    @async_test
    async def test_flood_from_one_address(self):
        from twisted.internet import reactor

        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        path = os.path.join(directory, "htpasswd")
        with open(path, "wb") as handle:
            for user, password in (("alice", b"wonderland"), ("bob", b"builder"), ("carol", b"singer")):
                handle.write(user.encode() + b":" + bcrypt.hashpw(password, bcrypt.gensalt(10)) + b"\n")
        config = minimal_config(auth={"htpasswd": {"realm": REALM, "path": path}})
        daemon = await start_daemon_async(self, config)
        port = daemon.port
        verified = basic("bob", "builder")
        status, _ = await threads.deferToThread(get_from, port, self.VERIFIED, verified)
        self.assertEqual(status, 200)

        pulls = []
        flooding = [True]

        def keep_pulling():
            while flooding[0] or len(pulls) < 5:
                pulls.append(get_from(port, self.VERIFIED, verified))
                time.sleep(0.05)

        puller = threads.deferToThread(keep_pulling)
        started = time.monotonic()
        flood = [
            defer.ensureDeferred(
                exchange_from(
                    reactor,
                    self.FLOODER,
                    port,
                    b"GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: "
                    + basic("alice", "guess-{}".format(n)).encode()
                    + b"\r\n\r\n",
                )
            )
            for n in range(self.FLOOD)
        ]
        # Let the flood reach the daemon, then log in for the first time
        # from another address.
        await threads.deferToThread(time.sleep, 0.3)
        newcomer = await threads.deferToThread(get_from, port, self.NEWCOMER, basic("carol", "singer"))
        statuses = await defer.gatherResults(flood)
        elapsed = time.monotonic() - started
        flooding[0] = False
        await puller

        counts = {status: statuses.count(status) for status in set(statuses)}
        # Every guess was answered, and bcrypt ran for no more of them than
        # the throttle allows (a 401 is a bcrypt check that failed).
        self.assertEqual(set(counts) - {401, 429}, set(), counts)
        self.assertLessEqual(counts.get(401, 0), block_allowance(self.THRESHOLD, elapsed), counts)
        self.assertGreaterEqual(counts.get(401, 0), 1, counts)
        # The other address got in, promptly.
        self.assertEqual(newcomer[0], 200, newcomer)
        self.assertLess(newcomer[1], 5.0, newcomer)
        # The verified user was never refused nor held up.
        self.assertEqual({status for status, seconds in pulls}, {200}, pulls)
        slowest = max(seconds for status, seconds in pulls)
        self.assertLess(slowest, 3.0, pulls)
        # A burst that arrives all at once gets most of its guesses refused
        # unchecked (at most a few pending per address); an address that
        # keeps guessing one after another is blocked after the threshold.
        guesses = counts.get(401, 0)
        for n in range(self.THRESHOLD + 1):
            status, _ = get_from(port, self.FLOODER, basic("alice", "again-{}".format(n)))
            self.assertIn(status, (401, 429))
            if status == 429:
                break
            guesses += 1
        self.assertEqual(status, 429)
        self.assertLessEqual(guesses, self.THRESHOLD)
        daemon.wait_for_log(r"client 127\.0\.6\.6 blocked")


class UsersDocsExampleTests(unittest.TestCase):
    """The documented override, over a copy of the shipped etc/spectro/config.yml."""

    def test_realm_override_keeps_path(self):
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        with open(os.path.join(REPO_ROOT, "etc", "spectro", "config.yml")) as handle:
            config = yaml.safe_load(handle)
        htpasswd = os.path.join(directory, "htpasswd-basic")
        write_htpasswd(htpasswd, {"spectro": "s3cret"})
        with open(htpasswd, "rb") as handle:
            before = handle.read()
        config["auth"]["htpasswd"]["path"] = htpasswd
        config["storage"]["filesystem"]["rootdirectory"] = os.path.join(directory, "data")
        daemon = start_daemon(
            self,
            config,
            env={"REGISTRY_AUTH": "htpasswd", "REGISTRY_AUTH_HTPASSWD_REALM": "My Enterprise Realm"},
        )
        response = daemon.request("GET", "/v2/")
        self.assertEqual(response.status, 401)
        self.assertEqual(response.header("WWW-Authenticate"), 'Basic realm="My Enterprise Realm"')
        # The path from the file was kept: its user logs in, and no new file was made.
        response = daemon.request("GET", "/v2/", {"Authorization": basic("spectro", "s3cret")})
        self.assertEqual(response.status, 200)
        self.assertNotIn("was missing", daemon.log_text())
        with open(htpasswd, "rb") as handle:
            self.assertEqual(handle.read(), before)
