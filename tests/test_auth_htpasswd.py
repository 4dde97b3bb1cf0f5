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
from spectroreg.auth.htpasswd import HtpasswdAuthenticator, ensure_htpasswd_file
from spectroreg.auth.htpasswd_file import parse_htpasswd
from spectroreg.auth.interfaces import IAuthenticator, TooManyRequests, Unauthorized
from spectroreg.auth.throttle import FailureThrottle
from spectroreg.config.errors import ConfigError
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
        stored = repr(cache._entries)
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


class BlockingRunnerTests(unittest.TestCase):
    @async_test
    async def test_runs_off_the_reactor_thread_bounded(self):
        import threading

        from twisted.internet import reactor

        from spectroreg.auth.htpasswd import BlockingRunner

        runner = BlockingRunner(reactor, limit=1, max_waiting=1)
        release = threading.Event()
        threads = []

        def work(value):
            threads.append(threading.current_thread())
            release.wait(10)
            return value

        first = runner(work, 1)
        second = runner(work, 2)  # waits for the first
        third = runner(work, 3)  # nobody may wait any longer
        failure = self.failureResultOf(third, TooManyRequests)
        self.assertEqual(failure.value.retry_after, 1)
        release.set()
        self.assertEqual(await first, 1)
        self.assertEqual(await second, 2)
        self.assertNotIn(threading.main_thread(), threads)
        self.assertEqual(len(threads), 2)
