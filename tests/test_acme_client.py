"""The ACME client against the in-memory CA, under a fake clock."""

import json

import josepy
from cryptography import x509
from twisted.internet import defer, task
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from spectroreg.tls.acme import certs, errors
from spectroreg.tls.acme.client import ACMEClient, AgentTransport, HTTPResponse, key_authorization, problem_from
from spectroreg.tls.acme.interfaces import IHTTPTransport
from spectroreg.tls.acme.testing import FakeACMEServer

HOST = "registry.example.com"


def run(clock, d, step=0.5, limit=400):
    """Advance C{clock} until C{d} has fired; return its result (or raise)."""
    for _ in range(limit):
        if d.called:
            break
        clock.advance(step)
    results = []
    d.addBoth(results.append)
    if not results:
        raise AssertionError("still waiting after {} s of fake time".format(step * limit))
    if hasattr(results[0], "raiseException"):
        results[0].raiseException()
    return results[0]


class RecordingResponder:
    def __init__(self, kind):
        self.challenge_type = kind
        self.calls = []

    def start(self, host, token, key_authorization):
        self.calls.append(("start", host, token, key_authorization))

    def stop(self, host, token):
        self.calls.append(("stop", host, token))


class ClientTests(unittest.TestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(1_800_000_000)
        self.ca = FakeACMEServer(self.clock)
        self.account_key = certs.generate_key()
        self.client = self.make_client()
        self.responders = {
            "tls-alpn-01": RecordingResponder("tls-alpn-01"),
            "http-01": RecordingResponder("http-01"),
        }

    def make_client(self, **kwargs):
        return ACMEClient(
            self.ca.directory_url, self.account_key, self.ca, self.clock, email="admin@example.com", **kwargs
        )

    def issue(self, types=("tls-alpn-01", "http-01"), client=None):
        client = client or self.client
        key = certs.generate_key()
        d = defer.ensureDeferred(client.issue(HOST, key, self.responders, list(types)))
        chain, used = run(self.clock, d)
        return key, chain, used

    def test_fake_is_a_transport(self):
        self.assertTrue(verifyObject(IHTTPTransport, self.ca))
        self.assertTrue(verifyObject(IHTTPTransport, AgentTransport(self.clock)))

    def test_issue(self):
        """A whole order: account, order, challenge, finalize, download."""
        key, chain, used = self.issue()
        self.assertEqual(used, "tls-alpn-01")
        bundle = certs.Bundle.from_key_and_chain(key, chain)
        self.assertTrue(bundle.usable_for(HOST, certs.utc_from_seconds(self.clock.seconds())))
        self.assertEqual(len(bundle.chain), 2)
        self.assertEqual(self.ca.orders_created, 1)
        [account] = self.ca.accounts.values()
        self.assertEqual(account["contact"], ["mailto:admin@example.com"])
        self.assertTrue(account["tos"])
        # the responder was started with the RFC 8555 key authorization, then stopped
        calls = self.responders["tls-alpn-01"].calls
        self.assertEqual([c[0] for c in calls], ["start", "stop"])
        _, host, token, key_authz = calls[0]
        self.assertEqual(host, HOST)
        thumbprint = josepy.b64encode(josepy.JWKEC(key=self.account_key).thumbprint()).decode()
        self.assertEqual(key_authz, token + "." + thumbprint)
        self.assertEqual(self.responders["http-01"].calls, [])

    def test_preference_order(self):
        _, _, used = self.issue(types=("http-01", "tls-alpn-01"))
        self.assertEqual(used, "http-01")

    def test_polls_with_the_clock(self):
        """Validation is decided later: the client waits on the clock, not in a loop."""
        d = defer.ensureDeferred(self.client.issue(HOST, certs.generate_key(), self.responders, ["http-01"]))
        self.assertFalse(d.called)
        self.assertTrue(self.clock.getDelayedCalls())
        run(self.clock, d)
        [authz] = self.ca.authzs.values()
        self.assertGreaterEqual(authz["polls"], 2)

    def test_account_reused(self):
        """The same key finds the same account (a restart keeps its account)."""
        self.issue()
        other = self.make_client()
        self.issue(client=other)
        self.assertEqual(len(self.ca.accounts), 1)
        self.assertEqual(other.account_url, self.client.account_url)

    def test_account_lost_by_the_ca(self):
        """
        A CA that forgot the account (pebble restarted): the same attempt
        registers again and orders again, without waiting for a retry.
        """
        self.issue()
        before = self.client.account_url
        self.ca.accounts.clear()
        self.ca.requests.clear()
        self.issue()
        self.assertEqual(len(self.ca.accounts), 1)
        self.assertNotEqual(self.client.account_url, before)
        paths = [url.rsplit("/", 1)[-1] for method, url in self.ca.requests if method == "POST"]
        # The refused order, the new account, the order that worked.
        self.assertEqual(paths[:3], ["new-order", "new-account", "new-order"])

    def test_account_refused_twice_is_an_error(self):
        """A CA that keeps refusing the account is not asked in a loop."""
        self.issue()
        dispatch = self.ca._dispatch

        def refusing(method, url, body):
            if url.endswith("/new-order"):
                return self.ca._problem(400, "accountDoesNotExist", "unknown kid")
            return dispatch(method, url, body)

        self.ca._dispatch = refusing
        self.ca.requests.clear()
        with self.assertRaises(errors.ProblemError) as caught:
            self.issue()
        self.assertEqual(caught.exception.code, "accountDoesNotExist")
        orders = [url for method, url in self.ca.requests if url.endswith("/new-order")]
        self.assertEqual(len(orders), 2)

    def test_bad_nonce_retried(self):
        self.ca.reject_nonces = 4
        self.issue()
        self.assertEqual(self.client.bad_nonces, 4)

    def test_bad_nonce_gives_up(self):
        self.ca.reject_nonces = 100
        with self.assertRaises(errors.BadNonceError):
            self.issue()
        self.assertEqual(self.client.bad_nonces, 10)

    def test_validation_failure(self):
        self.ca.validator = lambda kind, host, token, key_authz: kind != "tls-alpn-01"
        with self.assertRaises(errors.ValidationError) as caught:
            self.issue()
        self.assertEqual(caught.exception.challenge_type, "tls-alpn-01")
        self.assertEqual(caught.exception.host, HOST)
        self.assertIn("wrong answer", str(caught.exception))
        # the responder is cleaned up even though validation failed
        self.assertEqual([c[0] for c in self.responders["tls-alpn-01"].calls], ["start", "stop"])

    def test_rate_limited(self):
        self.ca.rate_limit = 3600
        with self.assertRaises(errors.RateLimitedError) as caught:
            self.issue()
        self.assertEqual(caught.exception.retry_after, 3600)
        self.assertEqual(caught.exception.code, "rateLimited")

    def test_ca_down(self):
        self.ca.down = True
        with self.assertRaises(errors.CAUnavailableError):
            self.issue()

    def test_no_usable_challenge(self):
        self.ca.offered = ("dns-01",)
        with self.assertRaises(errors.NoUsableChallengeError):
            self.issue()

    def test_cancel_while_polling(self):
        """Cancelling stops the work at once and leaves no timer behind."""
        d = defer.ensureDeferred(self.client.issue(HOST, certs.generate_key(), self.responders, ["http-01"]))
        self.assertFalse(d.called)
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)
        self.clock.advance(1)  # the fake CA's own validation timer
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.responders["http-01"].calls[-1][0], "stop")

    def test_signed_requests(self):
        """newAccount carries the JWK, later requests the account URL (kid), all ES256."""
        seen = []
        original = self.ca._dispatch

        def spy(method, url, body):
            if method == "POST":
                seen.append(json.loads(josepy.b64decode(json.loads(body)["protected"])))
            return original(method, url, body)

        self.ca._dispatch = spy
        self.issue()
        self.assertIn("jwk", seen[0])
        self.assertNotIn("kid", seen[0])
        for protected in seen[1:]:
            self.assertEqual(protected["kid"], self.client.account_url)
            self.assertNotIn("jwk", protected)
        self.assertEqual({p["alg"] for p in seen}, {"ES256"})

    def test_csr(self):
        key = certs.generate_key()
        csr = x509.load_der_x509_csr(certs.make_csr_der(key, HOST))
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual(san.get_values_for_type(x509.DNSName), [HOST])
        self.assertTrue(csr.is_signature_valid)


class ProblemTests(unittest.SynchronousTestCase):
    def response(self, status, body, **headers):
        r = HTTPResponse(status=status, body=json.dumps(body).encode() if body is not None else b"oops")
        for name, value in headers.items():
            r.headers[name.replace("_", "-").lower()] = [value]
        return r

    def test_table(self):
        ns = "urn:ietf:params:acme:error:"
        cases = [
            (400, {"type": ns + "badNonce", "detail": "x"}, {}, errors.BadNonceError, None),
            (429, {"type": ns + "rateLimited", "detail": "x"}, {"retry_after": "120"}, errors.RateLimitedError, 120),
            (403, {"type": ns + "unauthorized", "detail": "x"}, {}, errors.ProblemError, None),
            (503, None, {}, errors.CAUnavailableError, None),
            (503, {"type": ns + "serverInternal", "detail": "x"}, {"retry_after": "5"}, errors.ProblemError, 5),
        ]
        for status, body, headers, kind, retry in cases:
            error = problem_from(self.response(status, body, **headers), "https://ca/x")
            self.assertEqual(type(error), kind, (status, body))
            if retry is not None:
                self.assertEqual(error.retry_after, retry)

    def test_key_authorization(self):
        key = certs.generate_key()
        jwk = josepy.JWKEC(key=key)
        token = josepy.b64encode(b"t" * 32).decode()
        self.assertEqual(
            key_authorization(token, jwk), token + "." + josepy.b64encode(jwk.thumbprint()).decode()
        )
