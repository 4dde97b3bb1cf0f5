"""The issuing service and make_acme_source, with the in-memory CA and a fake clock."""

import dataclasses
import datetime

from twisted.internet import defer, task
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from spectroreg.config.errors import ConfigError
from spectroreg.config.settings import LETSENCRYPT_PRODUCTION, LetsEncryptSettings, TLSSettings
from spectroreg.tls.acme import certs, make_acme_source
from spectroreg.tls.acme.store import ACCOUNT_KEY, MemoryStore
from spectroreg.tls.acme.testing import FakeACMEServer
from spectroreg.tls.interfaces import ICertificateSource

A, B = "a.example.com", "b.example.com"
DAY = 86400.0


def settings(**changes):
    values = dict(cachefile="", hosts=(A, B), email="admin@example.com", directoryurl="https://fake-acme.test/directory")
    values.update(changes)
    return LetsEncryptSettings(**values)


class RenewalTimeTests(unittest.SynchronousTestCase):
    def test_table(self):
        """2/3 of the lifetime or 30 days before expiry, whichever is sooner; short certificates at 2/3."""
        start = datetime.datetime(2030, 1, 1, tzinfo=certs.UTC)
        cases = [
            (90 * DAY, 60 * DAY),  # both rules agree
            (365 * DAY, 365 * DAY * 2 / 3),  # 2/3 is sooner than 30 days before
            (120 * DAY, 80 * DAY),
            (60 * DAY, 30 * DAY),  # 30 days before expiry is sooner
            (45 * DAY, 15 * DAY),  # 30 days before = 1/3: still applies
            (6 * DAY, 4 * DAY),  # short-lived: 2/3, not "24 days ago"
            (30.0, 20.0),  # a test CA's 30-second certificate
        ]
        for lifetime, expected in cases:
            end = start + datetime.timedelta(seconds=lifetime)
            got = certs.renewal_time(start, end)
            self.assertAlmostEqual((got - start).total_seconds(), expected, places=3, msg=lifetime)

    def test_margin(self):
        """Earlier when a failed attempt and its retry would not fit; never in the first third."""
        start = datetime.datetime(2030, 1, 1, tzinfo=certs.UTC)
        cases = [
            (120.0, 10.0, 80.0),  # 40 s left at 2/3: room enough
            (120.0, 60.0, 60.0),  # a slow CA: start with 60 s left
            (120.0, 100.0, 40.0),  # never in the first third
            (90 * DAY, 3600.0, 60 * DAY),
        ]
        for lifetime, margin, expected in cases:
            end = start + datetime.timedelta(seconds=lifetime)
            got = certs.renewal_time(start, end, margin)
            self.assertAlmostEqual((got - start).total_seconds(), expected, places=3, msg=(lifetime, margin))


class ServiceTests(unittest.TestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(1_800_000_000)
        self.ca = FakeACMEServer(self.clock)
        self.store = MemoryStore()

    def make(self, le=None, **options):
        le = le or settings()
        options.setdefault("retry_initial", 10.0)
        setup = make_acme_source(le, TLSSettings(letsencrypt=le), self.clock, store=self.store, transport=self.ca, **options)
        return setup

    def start(self, setup):
        for service in setup.services:
            service.startService()
        self.addCleanup(self.stop, setup)
        return setup

    def stop(self, setup):
        for service in setup.services:
            if service.running:
                d = service.stopService()
                if d is not None:
                    self.successResultOf(d)

    def count_attempts(self):
        """From now on, the clock times of the CA's directory requests (one per attempt)."""
        attempts = []
        original = self.ca.request

        def counting(method, url, headers=None, body=None):
            if url.endswith("/directory"):
                attempts.append(self.clock.seconds())
            return original(method, url, headers, body)

        self.ca.request = counting
        return attempts

    def advance(self, seconds, step=0.5):
        for _ in range(int(seconds / step)):
            self.clock.advance(step)

    def now(self):
        return certs.utc_from_seconds(self.clock.seconds())

    def test_interfaces(self):
        setup = self.make()
        self.assertTrue(verifyObject(ICertificateSource, setup.source))
        self.assertEqual(len(setup.services), 1)
        self.assertIsNotNone(setup.http01_resource)

    def test_fallback_then_certificate(self):
        """Self-signed at once, the CA's certificate in the background, cached."""
        setup = self.start(self.make())
        waiting = setup.issuer.when_certs_valid()
        for host in (A, B):
            self.assertTrue(setup.source.bundle_for(host).fallback)
            self.assertIsNotNone(setup.source.context_for(host))
        fallback_context = setup.source.context_for(A)
        self.assertNoResult(waiting)
        self.advance(5)
        self.successResultOf(waiting)
        for host in (A, B):
            bundle = setup.source.bundle_for(host)
            self.assertFalse(bundle.fallback)
            self.assertEqual(bundle.chain[-1].subject, self.ca.ca_cert.subject)
            self.assertEqual(certs.Bundle.from_pem(self.store.entries[host]).leaf, bundle.leaf)
        self.assertIn(ACCOUNT_KEY, self.store.entries)
        self.assertIsNot(setup.source.context_for(A), fallback_context)
        self.assertEqual(len(self.ca.accounts), 1)
        self.assertEqual(sorted(setup.issuer.issued), [(A, "tls-alpn-01"), (B, "tls-alpn-01")])

    def test_names_not_in_hosts(self):
        setup = self.start(self.make())
        self.assertIsNone(setup.source.context_for("other.example.com"))
        # no SNI (a client that connected by IP address): the first host's certificate
        self.assertIs(setup.source.context_for(None), setup.source.context_for(A))
        self.assertIs(setup.source.context_for(""), setup.source.context_for(A))
        self.assertIsNone(setup.source.alpn_challenge_for("other.example.com"))
        self.assertIsNotNone(setup.source.context_for(A.upper() + "."))

    def test_restart_with_cache_issues_nothing(self):
        first = self.start(self.make())
        self.advance(5)
        self.stop(first)
        orders = self.ca.orders_created
        second = self.start(self.make())
        self.successResultOf(second.issuer.when_certs_valid())
        self.advance(60)
        self.assertEqual(self.ca.orders_created, orders)
        self.assertEqual(second.issuer.issued, [])
        self.assertEqual(second.source.bundle_for(A).leaf, first.source.bundle_for(A).leaf)

    def test_expired_cache_is_replaced(self):
        self.ca.validity = 3600
        first = self.start(self.make(settings(hosts=(A,))))
        self.advance(5)
        self.stop(first)
        self.clock.advance(7200)
        second = self.start(self.make(settings(hosts=(A,))))
        self.assertTrue(second.source.bundle_for(A).fallback)
        self.advance(5)
        self.successResultOf(second.issuer.when_certs_valid())
        self.assertEqual(len(second.issuer.issued), 1)

    def test_renewal_timer(self):
        """A 90-day certificate is renewed at day 60, not before; the new one is served."""
        self.ca.validity = 90 * DAY
        setup = self.start(self.make(settings(hosts=(A,))))
        self.advance(5)
        first = setup.source.bundle_for(A)
        issued_at = first.not_before
        context = setup.source.context_for(A)
        self.clock.advance((issued_at + datetime.timedelta(days=60) - self.now()).total_seconds() - 10)
        self.assertEqual(len(setup.issuer.issued), 1)
        self.assertIs(setup.source.context_for(A), context)
        self.advance(15)
        self.assertEqual(len(setup.issuer.issued), 2)
        self.assertNotEqual(setup.source.bundle_for(A).leaf, first.leaf)
        self.assertIsNot(setup.source.context_for(A), context)
        self.assertEqual(certs.Bundle.from_pem(self.store.entries[A]).leaf, setup.source.bundle_for(A).leaf)

    def test_backoff_while_ca_down(self):
        """Retries at 10, 20, 40, 80 s...; the fallback is served; then the certificate arrives."""
        from twisted.logger import LogLevel, formatEvent, globalLogPublisher

        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.ca.down = True
        setup = self.start(self.make(settings(hosts=(A,))))
        attempts = self.count_attempts()
        self.advance(160)
        gaps = [round(b - a) for a, b in zip(attempts, attempts[1:])]
        self.assertEqual(gaps[:3], [10, 20, 40])
        first = next(formatEvent(e) for e in events if e.get("log_level") == LogLevel.error)
        # the log says what failed, where, what happens next and what is served
        for part in (A, "fake-acme.test", "CAUnavailableError", "retrying in 10 s", "self-signed"):
            self.assertIn(part, first)
        self.assertTrue(setup.source.bundle_for(A).fallback)
        self.ca.down = False
        self.advance(200)
        self.successResultOf(setup.issuer.when_certs_valid())

    def renewal_with_two_minute_certificates(self):
        """A host with a 2-minute certificate, and when it is renewed and expires."""
        self.ca.validity = 120
        setup = self.start(self.make(settings(hosts=(A,))))
        self.advance(2)
        first = setup.source.bundle_for(A)
        self.assertFalse(first.fallback)
        return setup, first

    def serve_until_renewed(self, setup, first, seconds, step=0.25):
        """Advance the clock; every moment, what is served must not have expired."""
        expired = []
        for _ in range(int(seconds / step)):
            self.clock.advance(step)
            bundle = setup.source.bundle_for(A)
            if bundle.not_after <= self.now():
                expired.append(self.now())
            if bundle.leaf != first.leaf:
                return bundle, expired
        return None, expired

    def test_retries_never_sleep_past_expiry(self):
        """
        The CA is down from the renewal until 5 s before expiry: backoff
        alone (10, 20, 40 s) would sleep past it; the delays shrink with the
        time left instead, and the certificate is renewed in time.
        """
        setup, first = self.renewal_with_two_minute_certificates()
        renew_at = certs.renewal_time(first.not_before, first.not_after)
        self.clock.advance(self._until(renew_at) - 1)
        self.ca.down = True
        attempts = self.count_attempts()
        setup.issuer.client._directory = None  # each attempt starts at the directory
        self.advance(self._until(first.not_after) - 5, step=0.25)
        self.ca.down = False
        renewed, expired = self.serve_until_renewed(setup, first, 10)
        self.assertIsNotNone(renewed, attempts)
        self.assertEqual(expired, [])
        # Each wait was at most a third of the time then left (at least 1 s).
        expiry = first.not_after.timestamp()
        for before, after in zip(attempts, attempts[1:]):
            self.assertLessEqual(after - before, max(1.0, (expiry - before) / 3) + 0.25, attempts)
        self.assertGreater(len(attempts), 3)

    def test_account_reset_at_renewal(self):
        """
        The CA forgot every account before the renewal: the renewal registers
        again and gets its certificate in the same attempt, with no error and
        no wait for a retry.
        """
        from twisted.logger import LogLevel, globalLogPublisher

        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        setup, first = self.renewal_with_two_minute_certificates()
        account = setup.issuer.client.account_url
        self.ca.accounts.clear()
        renew_at = certs.renewal_time(first.not_before, first.not_after)
        self.clock.advance(self._until(renew_at) - 1)
        renewed, expired = self.serve_until_renewed(setup, first, 5)
        self.assertIsNotNone(renewed)
        self.assertEqual(expired, [])
        self.assertLess(self.now(), renew_at + datetime.timedelta(seconds=3))
        self.assertNotEqual(setup.issuer.client.account_url, account)
        self.assertEqual([e for e in events if e.get("log_level") == LogLevel.error], [])

    def _until(self, when):
        return (when - self.now()).total_seconds()

    def test_backoff_is_capped(self):
        self.ca.down = True
        setup = self.start(self.make(settings(hosts=(A,)), retry_max=60.0))
        self.advance(600)
        delays = [call.getTime() - self.clock.seconds() for call in self.clock.getDelayedCalls()]
        self.assertTrue(delays and max(delays) <= 60.0, delays)
        self.assertTrue(setup.source.bundle_for(A).fallback)

    def test_rate_limit_waits_retry_after(self):
        self.ca.rate_limit = 300
        setup = self.start(self.make(settings(hosts=(A,))))
        self.advance(1)
        orders_tried = len([r for r in self.ca.requests if r[1].endswith("/new-order")])
        self.advance(250)
        self.assertEqual(len([r for r in self.ca.requests if r[1].endswith("/new-order")]), orders_tried)
        self.ca.rate_limit = None
        self.advance(60)
        self.successResultOf(setup.issuer.when_certs_valid())

    def test_next_challenge_type_after_failed_validation(self):
        """TLS-ALPN-01 fails (port 443 not reachable): HTTP-01 is tried at once."""
        self.ca.validator = lambda kind, host, token, key_authz: kind == "http-01"
        setup = self.start(self.make(settings(hosts=(A,))))
        self.advance(5)
        self.successResultOf(setup.issuer.when_certs_valid())
        self.assertEqual(setup.issuer.issued, [(A, "http-01")])
        self.assertEqual([v[0] for v in self.ca.validations], ["tls-alpn-01", "http-01"])

    def test_challenges_answered_by_the_real_responders(self):
        """The CA's checks see the TLS-ALPN-01 certificate and the HTTP-01 resource."""
        from twisted.web.test.requesthelper import DummyRequest
        import hashlib

        holder = {}

        def validate(kind, host, token, expected):
            setup = holder["setup"]
            if kind == "tls-alpn-01":
                pair = setup.source.alpn_challenge_for(host)
                cert = pair[1].to_cryptography()
                ext = cert.extensions.get_extension_for_oid(certs.ACME_IDENTIFIER_OID)
                return ext.critical and ext.value.value == b"\x04\x20" + hashlib.sha256(expected.encode()).digest()
            request = DummyRequest([])
            child = setup.http01_resource.getChildWithDefault(token.encode(), request)
            return child.render_GET(request) == expected.encode()

        self.ca.validator = validate
        holder["setup"] = setup = self.make(settings(hosts=(A,), challenges=("http-01",)))
        self.start(setup)
        self.advance(5)
        self.assertEqual(setup.issuer.issued, [(A, "http-01")])
        self.assertIsNone(setup.source.alpn_challenge_for(A))
        holder["setup"] = setup = self.make(settings(hosts=(B,), challenges=("tls-alpn-01",)))
        self.start(setup)
        self.advance(5)
        self.assertEqual(setup.issuer.issued, [(B, "tls-alpn-01")])
        self.assertEqual([v[2] for v in self.ca.validations], [True, True])
        # no challenge left pending once validated
        self.assertIsNone(setup.source.alpn_challenge_for(B))

    def test_unwritable_cache(self):
        """A cache that cannot be written is logged; the certificate is served anyway, once."""

        class ReadOnly(MemoryStore):
            def save(self, host, pem):
                return defer.fail(PermissionError(13, "Permission denied", host))

            def save_account_key(self, pem):
                return defer.fail(PermissionError(13, "Permission denied", "acme_account+key"))

        from twisted.logger import LogLevel, formatEvent, globalLogPublisher

        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.store = ReadOnly()
        setup = self.start(self.make(settings(hosts=(A,))))
        self.advance(60)
        self.successResultOf(setup.issuer.when_certs_valid())
        self.assertEqual(self.ca.orders_created, 1)
        messages = [formatEvent(e) for e in events if e.get("log_level") == LogLevel.error]
        self.assertEqual(len(messages), 2, messages)
        self.assertIn("cannot write the account key", messages[0])
        self.assertIn("cannot write the certificate for a.example.com", messages[1])

    def test_stop_cancels_everything(self):
        self.ca.down = True
        setup = self.start(self.make())
        self.advance(1)
        self.assertTrue(self.clock.getDelayedCalls())
        waiting = setup.issuer.when_certs_valid()
        self.stop(setup)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.failureResultOf(waiting, defer.CancelledError)

    def test_stop_during_issuance(self):
        setup = self.start(self.make(settings(hosts=(A,))))
        self.clock.advance(0)  # issuance starts and waits for validation
        self.assertTrue(setup.issuer._running)
        self.stop(setup)
        self.clock.advance(1)  # the fake CA's own timer
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(setup.issuer.issued, [])


class PublicNamesTests(unittest.SynchronousTestCase):
    def test_public_names(self):
        """What the TLS layer and the daemon import from the package."""
        import inspect

        import spectroreg.tls.acme as acme

        self.assertEqual(sorted(acme.__all__), ["ACMESetup", "make_acme_source"])
        parameters = list(inspect.signature(acme.make_acme_source).parameters)
        self.assertEqual(parameters[:3], ["letsencrypt_settings", "tls_settings", "reactor"])
        self.assertEqual(
            sorted(f.name for f in dataclasses.fields(acme.ACMESetup)),
            ["http01_resource", "issuer", "services", "source"],
        )


class MakeSourceTests(unittest.SynchronousTestCase):
    def make(self, le, tls=None):
        return make_acme_source(le, tls or TLSSettings(letsencrypt=le), task.Clock(), store=MemoryStore(), transport=object())

    def test_http01_needs_httpaddr(self):
        """Without a plain HTTP listener HTTP-01 cannot be answered: only TLS-ALPN-01 is tried."""
        setup = self.make(settings(httpaddr=None))
        self.assertIsNone(setup.http01_resource)
        self.assertEqual(setup.issuer.challenge_types, ("tls-alpn-01",))

    def test_tls_alpn_only(self):
        setup = self.make(settings(challenges=("tls-alpn-01",)))
        self.assertIsNone(setup.http01_resource)

    def test_default_directory_is_lets_encrypt(self):
        setup = self.make(settings(directoryurl=""))
        self.assertEqual(setup.issuer.directory_url, LETSENCRYPT_PRODUCTION)

    def test_hosts_normalised(self):
        setup = self.make(settings(hosts=("A.Example.COM.", "a.example.com")))
        self.assertEqual(setup.source.hosts, ("a.example.com",))

    def test_minimumtls_applied(self):
        from OpenSSL import SSL

        le = settings(hosts=(A,))
        setup = self.make(le, TLSSettings(letsencrypt=le, minimumtls="tls1.3"))
        context = setup.source.context_for(A)
        if hasattr(context, "get_min_proto_version"):
            self.assertEqual(context.get_min_proto_version(), SSL.TLS1_3_VERSION)

    def test_listener_policy_applies(self):
        """Client CAs (and the other http.tls rules) apply to ACME certificates too."""
        from cryptography.hazmat.primitives import serialization
        from OpenSSL import SSL

        ca = FakeACMEServer(task.Clock()).ca_cert
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(ca.public_bytes(serialization.Encoding.PEM))
        le = settings(hosts=(A,))
        setup = self.make(le, TLSSettings(letsencrypt=le, clientcas=(path,), minimumtls="tls1.3"))
        context = setup.source.context_for(A)
        self.assertTrue(context.get_verify_mode() & SSL.VERIFY_PEER)
        self.assertTrue(context.get_verify_mode() & SSL.VERIFY_FAIL_IF_NO_PEER_CERT)

    def test_cachefile_that_is_a_file(self):
        """Distribution 2.8's single cache file is refused with a message saying what to do."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("{}")
        with self.assertRaises(ConfigError) as caught:
            self.make(settings(cachefile=path))
        self.assertIn("Distribution 2.8", str(caught.exception))

