"""Unit tests of the htpasswd parser, throttle, cache and authenticator (no network)."""

import base64
import os
import stat

import bcrypt
from twisted.internet import defer, task
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from spectroreg.auth import htpasswd as htpasswd_module
from spectroreg.auth.basic import MalformedCredentials, parse_basic
from spectroreg.auth.cache import VerifiedCredentials
from spectroreg.auth.fairqueue import FairScheduler
from spectroreg.auth.htpasswd import HtpasswdAuthenticator, ensure_htpasswd_file
from spectroreg.auth.htpasswd_file import parse_htpasswd
from spectroreg.auth.interfaces import IAuthenticator, TooManyRequests, Unauthorized
from spectroreg.auth.throttle import FailureThrottle
from spectroreg.config.errors import ConfigError
from spectroreg.interfaces import IReloadable
from tests.support.asynctest import async_test

COST = 4  # the cheapest bcrypt: tests check behaviour, not strength


def hash_password(password, prefix=b"$2b$"):
    hashed = bcrypt.hashpw(password, bcrypt.gensalt(COST))
    return prefix + hashed[4:]


def basic(user, password):
    if isinstance(password, str):
        password = password.encode("utf-8")
    return b"Basic " + base64.b64encode(user.encode("utf-8") + b":" + password)


class CountingRunner:
    """Runs blocking work inline and counts the bcrypt checks."""

    def __init__(self):
        self.checks = 0

    def __call__(self, function, *args):
        if function is htpasswd_module._check_password:
            self.checks += 1
        return defer.maybeDeferred(function, *args)


class ParserTests(unittest.SynchronousTestCase):
    def test_bcrypt_variants_comments_and_blanks(self):
        a, b, y = (hash_password(b"pw", p) for p in (b"$2a$", b"$2b$", b"$2y$"))
        data = b"# comment\n\n  alice:" + a + b"\nbob:" + b + b"  \n  # indented comment\ncarol:" + y + b"\n"
        entries = parse_htpasswd(data, "/etc/h")
        self.assertEqual(entries.users, {"alice": a, "bob": b, "carol": y})
        self.assertEqual(entries.warnings, ())

    def test_other_formats_refused_with_line(self):
        good = hash_password(b"pw")
        data = (
            b"md5:$apr1$abc$0123456789012345678901\n"
            b"sha:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n"
            b"plain:secret\n"
            b"ok:" + good + b"\n"
            b"garbage line\n"
        )
        entries = parse_htpasswd(data, "/etc/h")
        self.assertEqual(list(entries.users), ["ok"])
        self.assertEqual(len(entries.warnings), 4)
        self.assertIn("/etc/h:1", entries.warnings[0])
        self.assertIn("$apr1$", entries.warnings[0])
        self.assertIn("/etc/h:2", entries.warnings[1])
        self.assertIn("{SHA}", entries.warnings[1])
        self.assertIn("/etc/h:3", entries.warnings[2])
        self.assertIn("/etc/h:5", entries.warnings[3])
        # A warning never repeats the hash or the plain-text password.
        self.assertNotIn("secret", " ".join(entries.warnings))

    def test_later_line_wins_and_refused_line_cancels(self):
        first, second = hash_password(b"1"), hash_password(b"2")
        entries = parse_htpasswd(b"u:" + first + b"\nu:" + second + b"\nv:" + first + b"\nv:{SHA}x\n")
        self.assertEqual(entries.users, {"u": second})
        self.assertIn("line 1", entries.warnings[0])


class BasicHeaderTests(unittest.SynchronousTestCase):
    def test_parse(self):
        self.assertEqual(parse_basic(basic("me", "a:b")), ("me", b"a:b"))
        self.assertEqual(parse_basic(b"basic " + base64.b64encode(b"u:")), ("u", b""))

    def test_malformed(self):
        for value in (b"Bearer x", b"Basic !!!", b"Basic " + base64.b64encode(b"nocolon"),
                      b"Basic " + base64.b64encode(b":pw"), b"Basic " + base64.b64encode(b"\xff:pw")):
            self.assertRaises(MalformedCredentials, parse_basic, value)


class ThrottleTests(unittest.SynchronousTestCase):
    def test_blocks_after_threshold_then_expires(self):
        clock = task.Clock()
        throttle = FailureThrottle(clock, threshold=3, window=60, penalty=10, max_penalty=40)
        for _ in range(2):
            throttle.failure("1.2.3.4")
            throttle.check("1.2.3.4")
        throttle.failure("1.2.3.4")
        error = self.assertRaises(TooManyRequests, throttle.check, "1.2.3.4")
        self.assertEqual(error.retry_after, 10)
        throttle.check("5.6.7.8")  # another client is not affected
        clock.advance(10)
        throttle.check("1.2.3.4")
        throttle.failure("1.2.3.4")  # one more failure right after a block: longer block
        self.assertEqual(self.assertRaises(TooManyRequests, throttle.check, "1.2.3.4").retry_after, 20)
        clock.advance(20)
        throttle.failure("1.2.3.4")
        throttle.failure("1.2.3.4")
        self.assertEqual(self.assertRaises(TooManyRequests, throttle.check, "1.2.3.4").retry_after, 40)

    def test_quiet_window_forgives_and_success_clears(self):
        clock = task.Clock()
        throttle = FailureThrottle(clock, threshold=3, window=60)
        throttle.failure("c")
        throttle.failure("c")
        clock.advance(61)
        throttle.failure("c")
        throttle.check("c")
        throttle.failure("c")
        throttle.success("c")
        throttle.failure("c")
        throttle.check("c")

    def test_memory_is_bounded(self):
        throttle = FailureThrottle(task.Clock(), threshold=1, max_clients=100)
        for number in range(1000):
            throttle.failure("10.0.{}.{}".format(number // 256, number % 256))
        self.assertEqual(len(throttle), 100)
        throttle.check("10.0.0.0")  # the oldest were forgotten


class CacheTests(unittest.SynchronousTestCase):
    def test_fingerprint_reveals_nothing_and_is_bounded(self):
        cache = VerifiedCredentials(max_entries=2)
        fingerprint = cache.fingerprint("u", b"hunter2")
        self.assertNotIn(b"hunter2", fingerprint)
        self.assertNotEqual(fingerprint, VerifiedCredentials().fingerprint("u", b"hunter2"))
        cache.remember(fingerprint, "u", b"h1")
        self.assertTrue(cache.lookup(fingerprint, "u", b"h1"))
        self.assertFalse(cache.lookup(fingerprint, "u", b"h2"))  # hash changed
        self.assertFalse(cache.lookup(fingerprint, "u", b"h1"))  # and dropped
        for n in range(5):
            cache.remember(cache.fingerprint("u", str(n).encode()), "u", b"h")
        self.assertEqual(len(cache), 2)
        stored = repr(cache._entries.items())
        self.assertNotIn("hunter2", stored)


class AuthenticatorTests(unittest.TestCase):
    def setUp(self):
        self.directory = self.mktemp()
        os.makedirs(self.directory)
        self.path = os.path.join(self.directory, "htpasswd")
        self.write({"alice": b"wonderland", "bob": b"builder"})
        self.clock = task.Clock()
        self.runner = CountingRunner()

    def write(self, users, extra=b""):
        lines = [u.encode() + b":" + hash_password(p) for u, p in users.items()]
        with open(self.path, "wb") as handle:
            handle.write(b"\n".join(lines) + b"\n" + extra)
        # Make sure the change is seen even within one mtime tick.
        info = os.stat(self.path)
        os.utime(self.path, ns=(info.st_atime_ns, info.st_mtime_ns + 1000000))

    def make(self, **kwargs):
        kwargs.setdefault("throttle", FailureThrottle(self.clock, threshold=3, penalty=30))
        return HtpasswdAuthenticator(
            self.path, "test realm", reactor=self.clock, run_blocking=self.runner, **kwargs
        )

    def test_interface_and_challenge(self):
        auth = self.make()
        verifyObject(IAuthenticator, auth)
        verifyObject(IReloadable, auth)
        self.assertEqual(auth.realm, "test realm")
        self.assertEqual(auth.challenge(), [("WWW-Authenticate", 'Basic realm="test realm"')])

    @async_test
    async def test_good_wrong_unknown_missing(self):
        auth = self.make()
        self.assertEqual(await auth.authenticate(basic("alice", "wonderland"), "c"), "alice")
        for header in (None, basic("alice", "wrong"), basic("nobody", "wonderland"), b"Bearer x"):
            with self.assertRaises(Unauthorized):
                await auth.authenticate(header, "client-{}".format(id(header)))

    @async_test
    async def test_every_bcrypt_prefix_logs_in(self):
        with open(self.path, "wb") as handle:
            for prefix in (b"$2a$", b"$2b$", b"$2y$"):
                user = prefix.strip(b"$")
                handle.write(user + b":" + hash_password(b"pw-" + user, prefix) + b"\n")
        auth = self.make()
        for user in ("2a", "2b", "2y"):
            self.assertEqual(await auth.authenticate(basic(user, "pw-" + user), "c"), user)

    @async_test
    async def test_unknown_user_costs_a_bcrypt_check(self):
        auth = self.make()
        with self.assertRaises(Unauthorized):
            await auth.authenticate(basic("nobody", "x"), "c")
        self.assertEqual(self.runner.checks, 1)

    @async_test
    async def test_bcrypt_runs_once_per_credential(self):
        auth = self.make()
        for _ in range(20):
            self.assertEqual(await auth.authenticate(basic("bob", "builder"), "c"), "bob")
            self.clock.advance(0.1)
        self.assertEqual(self.runner.checks, 1)

    @async_test
    async def test_file_change_invalidates_and_adds(self):
        auth = self.make()
        self.assertEqual(await auth.authenticate(basic("alice", "wonderland"), "c"), "alice")
        self.write({"alice": b"new password", "carol": b"singer"})
        # A new user is seen at once (a cache miss re-checks the file).
        self.assertEqual(await auth.authenticate(basic("carol", "singer"), "c"), "carol")
        with self.assertRaises(Unauthorized):
            await auth.authenticate(basic("alice", "wonderland"), "c")
        self.assertEqual(await auth.authenticate(basic("alice", "new password"), "c"), "alice")
        with self.assertRaises(Unauthorized):
            await auth.authenticate(basic("bob", "builder"), "c")

    @async_test
    async def test_cached_password_dropped_after_interval(self):
        auth = self.make(check_interval=1.0)
        self.assertEqual(await auth.authenticate(basic("alice", "wonderland"), "c"), "alice")
        self.write({"alice": b"changed"})
        self.clock.advance(1.0)
        with self.assertRaises(Unauthorized):
            await auth.authenticate(basic("alice", "wonderland"), "c")

    @async_test
    async def test_reload_keeps_users_when_file_unreadable(self):
        from twisted.logger import globalLogPublisher

        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        auth = self.make()
        os.unlink(self.path)
        self.assertFalse(await auth.reload())
        for _ in range(2):
            with self.assertRaises(Unauthorized):
                await auth.authenticate(basic("alice", "guess"), "guesser")
        errors = [e for e in events if "cannot re-read" in e.get("log_format", "")]
        self.assertEqual(len(errors), 1)
        self.assertEqual(await auth.authenticate(basic("alice", "wonderland"), "c"), "alice")
        self.write({"alice": b"x"})
        self.assertTrue(await auth.reload())

    @async_test
    async def test_long_passwords_refused(self):
        long_password = b"p" * 80
        # htpasswd -B (and bcrypt 3.2) would hash only the first 72 bytes.
        line = b"long:" + bcrypt.hashpw(long_password[:72], bcrypt.gensalt(COST)) + b"\n"
        with open(self.path, "ab") as handle:
            handle.write(line)
        auth = self.make()
        for candidate in (long_password, long_password[:72] + b"other"):
            with self.assertRaises(Unauthorized):
                await auth.authenticate(basic("long", candidate), "c")
        self.assertEqual(self.runner.checks, 0)
        self.assertEqual(await auth.authenticate(basic("long", long_password[:72]), "c"), "long")

    @async_test
    async def test_throttle_then_recovery(self):
        auth = self.make()
        for _ in range(3):
            with self.assertRaises(Unauthorized):
                await auth.authenticate(basic("alice", "guess"), "10.0.0.1")
        with self.assertRaises(TooManyRequests) as caught:
            await auth.authenticate(basic("alice", "wonderland"), "10.0.0.1")
        self.assertEqual(caught.exception.retry_after, 30)
        checks = self.runner.checks
        # Another client is not locked out.
        self.assertEqual(await auth.authenticate(basic("alice", "wonderland"), "10.0.0.2"), "alice")
        self.assertEqual(self.runner.checks, checks + 1)
        self.clock.advance(30)
        self.assertEqual(await auth.authenticate(basic("alice", "wonderland"), "10.0.0.1"), "alice")

    def test_unreadable_file_is_config_error(self):
        os.unlink(self.path)
        os.makedirs(self.path)
        error = self.assertRaises(ConfigError, self.make)
        self.assertIn(self.path, str(error))


class MissingFileTests(unittest.SynchronousTestCase):
    def test_created_with_docker_user_and_modes(self):
        from twisted.logger import globalLogPublisher

        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        base = self.mktemp()
        path = os.path.join(base, "auth", "htpasswd")
        self.assertTrue(ensure_htpasswd_file(path))
        self.assertFalse(ensure_htpasswd_file(path))
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode), 0o700)
        warnings = [e for e in events if e.get("password")]
        self.assertEqual(len(warnings), 1)
        self.assertEqual(warnings[0]["log_level"].name, "warn")
        password = warnings[0]["password"].encode()
        self.assertGreaterEqual(len(password), 40)
        with open(path, "rb") as handle:
            content = handle.read()
        self.assertNotIn(password, content)
        entries = parse_htpasswd(content)
        self.assertTrue(bcrypt.checkpw(password, entries.users["docker"]))


class HeldRunner:
    """Runs each blocking call only when the test releases it."""

    def __init__(self):
        self.jobs = []  # [function, args, Deferred]
        self.started = 0

    def __call__(self, function, *args):
        d = defer.Deferred()
        self.jobs.append((function, args, d))
        self.started += 1
        return d

    def passwords(self):
        return [args[0] for function, args, d in self.jobs]

    def release(self, index=0):
        function, args, d = self.jobs.pop(index)
        defer.maybeDeferred(function, *args).chainDeferred(d)

    def release_all(self):
        while self.jobs:
            self.release()


class FairSchedulerTests(unittest.TestCase):
    def make(self, limit=1, max_waiting=100):
        self.runner = HeldRunner()
        return FairScheduler(self.runner, limit, max_waiting)

    def test_keys_served_in_turn(self):
        scheduler = self.make(limit=1)
        results = [scheduler.submit("flood", str, n) for n in range(5)]
        results.append(scheduler.submit("other", str, "x"))
        results.append(scheduler.submit("third", str, "y"))
        self.assertEqual([args for f, args, d in self.runner.jobs], [(0,)])
        order = []
        while self.runner.jobs:
            order.append(self.runner.jobs[0][1][0])
            self.runner.release()
        # One job of each key in turn, not all five of the first key first.
        self.assertEqual(order, [0, "x", "y", 1, 2, 3, 4])
        self.assertEqual([self.successResultOf(d) for d in results], ["0", "1", "2", "3", "4", "x", "y"])

    def test_limit_and_waiting_bound(self):
        scheduler = self.make(limit=2, max_waiting=3)
        accepted = [scheduler.submit("k{}".format(n % 2), str, n) for n in range(5)]
        self.assertEqual((scheduler.running, scheduler.waiting), (2, 3))
        self.assertTrue(scheduler.full())
        refused = scheduler.submit("new", str, 9)
        self.assertEqual(self.failureResultOf(refused, TooManyRequests).value.retry_after, 1)
        self.runner.release_all()
        self.assertEqual([self.successResultOf(d) for d in accepted], ["0", "1", "2", "3", "4"])
        self.assertEqual((scheduler.running, scheduler.waiting), (0, 0))

    def test_cancelled_job_leaves_the_queue(self):
        scheduler = self.make(limit=1)
        first = scheduler.submit("a", str, 1)
        second = scheduler.submit("a", str, 2)
        third = scheduler.submit("b", str, 3)
        second.cancel()
        self.failureResultOf(second, defer.CancelledError)
        self.assertEqual(scheduler.waiting, 1)
        self.runner.release_all()
        self.assertEqual((self.successResultOf(first), self.successResultOf(third)), ("1", "3"))
        self.assertEqual(self.runner.started, 2)

    def test_failures_reach_the_caller(self):
        scheduler = self.make(limit=1)
        d = scheduler.submit("a", int, "not a number")
        self.runner.release()
        self.failureResultOf(d, ValueError)
        self.assertEqual(scheduler.running, 0)


class FloodTests(unittest.TestCase):
    """One address sending many passwords at once, with bcrypt held back by the test."""

    def setUp(self):
        self.directory = self.mktemp()
        os.makedirs(self.directory)
        self.path = os.path.join(self.directory, "htpasswd")
        lines = [u.encode() + b":" + hash_password(p) for u, p in
                 (("alice", b"wonderland"), ("bob", b"builder"))]
        with open(self.path, "wb") as handle:
            handle.write(b"\n".join(lines) + b"\n")
        self.clock = task.Clock()
        self.bcrypt = HeldRunner()
        self.file_reads = 0
        self.results = []

    def read_file(self, function, *args):
        # File work runs inline: it must never wait for a held bcrypt job.
        self.file_reads += 1
        return defer.maybeDeferred(function, *args)

    def make(self, threshold=10, pending_per_client=4, threads=1, **kwargs):
        return HtpasswdAuthenticator(
            self.path,
            "test realm",
            reactor=self.clock,
            run_blocking=self.read_file,
            run_bcrypt=self.bcrypt,
            bcrypt_threads=threads,
            throttle=FailureThrottle(self.clock, threshold=threshold, penalty=30),
            pending_per_client=pending_per_client,
            **kwargs,
        )

    def tearDown(self):
        self.bcrypt.release_all()
        for d in self.results:
            d.addErrback(lambda failure: None)

    def flood(self, auth, count, client="127.0.6.6"):
        results = [auth.authenticate(basic("alice", "guess{}".format(n)), client) for n in range(count)]
        self.results.extend(results)
        return results

    def outcomes(self, results):
        kinds = []
        for d in results:
            failure = self.failureResultOf(d)
            kinds.append("429" if failure.check(TooManyRequests) else "401")
        return kinds

    def test_attempts_counted_when_submitted(self):
        # No bound on pending checks here: the throttle alone must stop the
        # flood at its threshold, before any of the checks has come back.
        auth = self.make(threshold=10, pending_per_client=1000, threads=4)
        results = self.flood(auth, 300)
        self.assertEqual(self.bcrypt.started, 4)
        self.bcrypt.release_all()
        self.assertEqual(self.bcrypt.started, 10)
        kinds = self.outcomes(results)
        self.assertEqual(kinds.count("401"), 10)
        self.assertEqual(kinds.count("429"), 290)
        self.failureResultOf(auth.authenticate(basic("alice", "wonderland"), "127.0.6.6"), TooManyRequests)

    def test_pending_checks_bounded_per_address(self):
        auth = self.make(threshold=10, pending_per_client=2)
        results = self.flood(auth, 5)
        # Three refused at once, without a bcrypt check and without counting.
        self.assertEqual(self.outcomes(results[2:]), ["429"] * 3)
        self.assertNoResult(results[0])
        self.assertEqual(self.bcrypt.started, 1)
        self.bcrypt.release_all()
        self.assertEqual(self.outcomes(results[:2]), ["401"] * 2)
        self.assertEqual(self.bcrypt.started, 2)
        # Eight more failures reach the threshold of ten: only two were counted.
        for n in range(4):
            results = self.flood(auth, 2)
            self.bcrypt.release_all()
            self.assertEqual(self.outcomes(results), ["401", "401"])
        self.failureResultOf(auth.authenticate(basic("alice", "wonderland"), "127.0.6.6"), TooManyRequests)

    def test_other_address_served_before_the_flood(self):
        auth = self.make(pending_per_client=4, threads=1)
        flood = self.flood(auth, 100)
        other = auth.authenticate(basic("bob", "builder"), "10.0.0.2")
        self.assertEqual(self.bcrypt.passwords(), [b"guess0"])
        self.bcrypt.release()
        # The other address's check runs next, ahead of the flood's queued ones.
        self.assertEqual(self.bcrypt.passwords(), [b"builder"])
        self.bcrypt.release()
        self.assertEqual(self.successResultOf(other), "bob")
        self.bcrypt.release_all()
        self.assertEqual(self.outcomes(flood).count("401"), 4)

    def test_verified_credentials_never_wait_for_bcrypt(self):
        auth = self.make(pending_per_client=4, threads=1, check_interval=1.0)
        first = auth.authenticate(basic("bob", "builder"), "10.0.0.2")
        self.bcrypt.release()
        self.assertEqual(self.successResultOf(first), "bob")
        self.flood(auth, 100)
        self.flood(auth, 100, client="127.0.6.7")
        for _ in range(5):
            self.clock.advance(1.5)  # the file check is due every time
            reads = self.file_reads
            result = auth.authenticate(basic("bob", "builder"), "10.0.0.2")
            self.assertEqual(self.successResultOf(result), "bob")
            self.assertEqual(self.file_reads, reads + 1)
        self.assertEqual(len(self.bcrypt.jobs), 1)

    def test_same_credentials_share_one_check(self):
        auth = self.make(pending_per_client=1)
        results = [auth.authenticate(basic("bob", "builder"), "10.0.0.2") for _ in range(20)]
        wrong = [auth.authenticate(basic("bob", "wrong"), "10.0.0.2") for _ in range(3)]
        self.assertEqual(self.outcomes(wrong), ["429"] * 3)
        self.bcrypt.release_all()
        self.assertEqual([self.successResultOf(d) for d in results], ["bob"] * 20)
        self.assertEqual(self.bcrypt.started, 1)

    def test_block_is_logged_when_the_attempt_is_counted(self):
        from twisted.logger import globalLogPublisher

        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        auth = self.make(threshold=3, pending_per_client=10)
        self.flood(auth, 3)
        blocked = [e for e in events if "blocked" in e.get("log_format", "")]
        self.assertEqual([(e["client"], e["seconds"]) for e in blocked], [("127.0.6.6", 30)])
        self.bcrypt.release_all()


class BcryptPoolTests(unittest.TestCase):
    @async_test
    async def test_bcrypt_off_the_reactor_thread_in_its_own_pool(self):
        import threading

        from twisted.internet import reactor

        path = os.path.join(self.mktemp())
        with open(path, "wb") as handle:
            handle.write(b"alice:" + hash_password(b"wonderland") + b"\n")
        threads = []
        real = htpasswd_module._check_password

        def recording(password, hashed):
            threads.append(threading.current_thread().name)
            return real(password, hashed)

        self.patch(htpasswd_module, "_check_password", recording)
        auth = HtpasswdAuthenticator(path, "r", reactor=reactor, bcrypt_threads=1)
        self.assertEqual(await auth.authenticate(basic("alice", "wonderland"), "c"), "alice")
        with self.assertRaises(Unauthorized):
            await auth.authenticate(basic("alice", "wrong"), "c")
        self.assertEqual(len(threads), 2)
        self.assertTrue(all(name.startswith("spectroreg-bcrypt") for name in threads), threads)
