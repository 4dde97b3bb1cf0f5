"""
Public fakes for testing code that uses the ACME package.

L{FakeACMEServer} is an in-memory ACME CA behind the L{IHTTPTransport} seam:
it speaks enough RFC 8555 (directory, nonces, accounts, orders,
authorizations, challenges, finalize, certificate download) for the client
and the issuing service to run against it under a C{task.Clock}, and it can
be told to reject nonces, be down, or rate-limit. L{SNIConnectionCreator}
and L{listen_tls} are a minimal TLS listener around an
L{ICertificateSource}, enough to let a real CA validate TLS-ALPN-01.
"""

import datetime
import itertools
import json

import josepy
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from twisted.internet import defer
from zope.interface import implementer

from . import certs
from .client import HTTPResponse
from .errors import CAUnavailableError
from .interfaces import IHTTPTransport

BASE = "https://fake-acme.test"


def _b64(data: bytes) -> str:
    return josepy.b64encode(data).decode("ascii")


@implementer(IHTTPTransport)
class FakeACMEServer:
    """
    An in-memory ACME CA.

    @ivar validator: callable(challenge type, host, token, expected key
        authorization) -> bool (or a Deferred of one) deciding a challenge;
        the default accepts everything.
    @ivar down: when true every request fails with L{CAUnavailableError}.
    @ivar reject_nonces: how many of the next signed requests get ``badNonce``.
    @ivar rate_limit: when set, new orders get ``rateLimited`` with this
        ``Retry-After`` (seconds).
    @ivar validity: lifetime in seconds of the certificates issued.
    @ivar offered: the challenge types each authorization offers.
    """

    def __init__(self, clock, validity=90 * 86400, validator=None):
        self.clock = clock
        self.validity = validity
        self.validator = validator or (lambda kind, host, token, key_authz: True)
        self.down = False
        self.reject_nonces = 0
        self.rate_limit = None
        self.offered = ("http-01", "dns-01", "tls-alpn-01")
        self.requests = []
        self.orders = {}
        self.accounts = {}
        self.authzs = {}
        self.challenges = {}
        self.certificates = {}
        self.validations = []
        self._nonces = set()
        self._ids = itertools.count(1)
        self.ca_key = certs.generate_key()
        now = datetime.datetime.now(certs.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Fake ACME Root")])
        self.ca_cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=3650))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.ca_key, hashes.SHA256())
        )

    @property
    def directory_url(self):
        return BASE + "/directory"

    @property
    def orders_created(self):
        return len(self.orders)

    # -- plumbing --------------------------------------------------------

    def _nonce(self):
        nonce = _b64(("nonce-%d" % next(self._ids)).encode().ljust(16, b"."))
        self._nonces.add(nonce)
        return nonce

    def _answer(self, status, body=None, headers=None, raw=None):
        result = HTTPResponse(status=status)
        result.headers["replay-nonce"] = [self._nonce()]
        for name, value in (headers or {}).items():
            result.headers[name.lower()] = [value]
        if raw is not None:
            result.body = raw
        elif body is not None:
            result.body = json.dumps(body).encode()
            result.headers.setdefault(
                "content-type",
                ["application/problem+json" if status >= 400 else "application/json"],
            )
        return result

    def _problem(self, status, code, detail, headers=None):
        return self._answer(
            status,
            {"type": "urn:ietf:params:acme:error:" + code, "detail": detail, "status": status},
            headers,
        )

    def request(self, method, url, headers=None, body=None):
        self.requests.append((method, url))
        if self.down:
            return defer.fail(CAUnavailableError("fake CA is down: {} {}".format(method, url)))
        try:
            return defer.maybeDeferred(self._dispatch, method, url, body)
        except Exception as e:  # pragma: no cover - surfaced to the test
            return defer.fail(e)

    def _dispatch(self, method, url, body):
        path = url[len(BASE):] if url.startswith(BASE) else url
        if method == "GET" and path == "/directory":
            return self._answer(
                200,
                {
                    "newNonce": BASE + "/new-nonce",
                    "newAccount": BASE + "/new-account",
                    "newOrder": BASE + "/new-order",
                    "revokeCert": BASE + "/revoke",
                    "keyChange": BASE + "/key-change",
                    "meta": {"termsOfService": BASE + "/tos"},
                },
            )
        if method == "HEAD" and path == "/new-nonce":
            return self._answer(200)
        if method != "POST":
            return self._problem(405, "malformed", "method not allowed")
        jws = json.loads(body)
        protected = json.loads(josepy.b64decode(jws["protected"]))
        if protected.get("url") != url:
            return self._problem(400, "unauthorized", "url in JWS does not match")
        nonce = protected.get("nonce")
        if nonce not in self._nonces:
            return self._problem(400, "badNonce", "unknown nonce")
        self._nonces.discard(nonce)
        if self.reject_nonces > 0:
            self.reject_nonces -= 1
            return self._problem(400, "badNonce", "nonce rejected (test)")
        payload_raw = josepy.b64decode(jws["payload"]) if jws["payload"] else b""
        payload = json.loads(payload_raw) if payload_raw else None
        kind, _, ident = path.strip("/").partition("/")
        if kind == "new-account":
            if "jwk" not in protected:
                return self._problem(400, "malformed", "newAccount needs jwk")
            thumb = json.dumps(protected["jwk"], sort_keys=True)
            existing = thumb in self.accounts
            if not existing:
                self.accounts[thumb] = {
                    "url": BASE + "/account/%d" % next(self._ids),
                    "jwk": josepy.JWK.from_json(protected["jwk"]),
                    "contact": payload.get("contact"),
                    "tos": payload.get("termsOfServiceAgreed"),
                }
            account = self.accounts[thumb]
            return self._answer(
                200 if existing else 201,
                {"status": "valid", "contact": account["contact"] or []},
                {"Location": account["url"]},
            )
        account = next((a for a in self.accounts.values() if a["url"] == protected.get("kid")), None)
        if account is None:
            return self._problem(400, "accountDoesNotExist", "unknown kid")
        handler = getattr(self, "_post_" + kind.replace("-", "_"), None)
        if handler is None:
            return self._problem(404, "malformed", "no such resource " + path)
        return handler(account, ident, payload)

    # -- resources -------------------------------------------------------

    def _order_json(self, order):
        body = {
            "status": order["status"],
            "identifiers": [{"type": "dns", "value": order["host"]}],
            "authorizations": [BASE + "/authz/" + a for a in order["authzs"]],
            "finalize": BASE + "/finalize/" + order["id"],
        }
        if order.get("certificate"):
            body["certificate"] = BASE + "/cert/" + order["certificate"]
        return body

    def _authz_json(self, authz):
        return {
            "status": authz["status"],
            "identifier": {"type": "dns", "value": authz["host"]},
            "challenges": [
                dict(
                    {
                        "type": self.challenges[c]["type"],
                        "url": BASE + "/chall/" + c,
                        "token": self.challenges[c]["token"],
                        "status": self.challenges[c]["status"],
                    },
                    **({"error": self.challenges[c]["error"]} if self.challenges[c].get("error") else {}),
                )
                for c in authz["challenges"]
            ],
        }

    def _post_new_order(self, account, ident, payload):
        if self.rate_limit is not None:
            return self._problem(
                429, "rateLimited", "too many certificates (test)", {"Retry-After": str(self.rate_limit)}
            )
        host = payload["identifiers"][0]["value"]
        order_id = str(next(self._ids))
        authz_id = str(next(self._ids))
        challenge_ids = []
        for kind in self.offered:
            challenge_id = str(next(self._ids))
            self.challenges[challenge_id] = {
                "type": kind,
                "token": _b64(("token-%s-%s" % (kind, challenge_id)).encode().ljust(32, b"x")),
                "status": "pending",
                "authz": authz_id,
            }
            challenge_ids.append(challenge_id)
        self.authzs[authz_id] = {
            "host": host,
            "status": "pending",
            "challenges": challenge_ids,
            "account": account,
            "polls": 0,
        }
        order = {"id": order_id, "host": host, "status": "pending", "authzs": [authz_id], "account": account}
        self.orders[order_id] = order
        return self._answer(201, self._order_json(order), {"Location": BASE + "/order/" + order_id})

    def _post_authz(self, account, ident, payload):
        authz = self.authzs[ident]
        authz["polls"] += 1
        return self._answer(
            200, self._authz_json(authz), {"Retry-After": "1"} if authz["status"] == "pending" else None
        )

    async def _validate(self, challenge_id):
        challenge = self.challenges[challenge_id]
        authz = self.authzs[challenge["authz"]]
        from .client import key_authorization

        expected = key_authorization(challenge["token"], authz["account"]["jwk"])
        ok = await defer.maybeDeferred(
            self.validator, challenge["type"], authz["host"], challenge["token"], expected
        )
        self.validations.append((challenge["type"], authz["host"], bool(ok)))
        challenge["status"] = "valid" if ok else "invalid"
        authz["status"] = "valid" if ok else "invalid"
        if not ok:
            challenge["error"] = {
                "type": "urn:ietf:params:acme:error:unauthorized",
                "detail": "fake CA: wrong answer to {}".format(challenge["type"]),
            }
        for order in self.orders.values():
            if challenge["authz"] in order["authzs"] and order["status"] == "pending":
                order["status"] = "ready" if ok else "invalid"

    def _post_chall(self, account, ident, payload):
        challenge = self.challenges[ident]
        if challenge["status"] == "pending":
            challenge["status"] = "processing"
            # Decided one clock tick later, so the client has to poll.
            self.clock.callLater(0.5, lambda: defer.ensureDeferred(self._validate(ident)))
        body = {"type": challenge["type"], "url": BASE + "/chall/" + ident,
                "token": challenge["token"], "status": challenge["status"]}
        return self._answer(200, body, {"Link": '<{}/authz/{}>;rel="up"'.format(BASE, challenge["authz"])})

    def _post_order(self, account, ident, payload):
        return self._answer(200, self._order_json(self.orders[ident]))

    def _post_finalize(self, account, ident, payload):
        order = self.orders[ident]
        if order["status"] != "ready":
            return self._problem(403, "orderNotReady", "order is " + order["status"])
        csr = x509.load_der_x509_csr(josepy.b64decode(payload["csr"]))
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        if san.get_values_for_type(x509.DNSName) != [order["host"]]:
            return self._problem(400, "badCSR", "CSR names do not match the order")
        now = certs.utc_from_seconds(self.clock.seconds())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.ca_cert.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(seconds=self.validity))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(order["host"])]), critical=True)
            .sign(self.ca_key, hashes.SHA256())
        )
        cert_id = str(next(self._ids))
        self.certificates[cert_id] = cert.public_bytes(serialization.Encoding.PEM) + self.ca_cert.public_bytes(
            serialization.Encoding.PEM
        )
        order["status"] = "valid"
        order["certificate"] = cert_id
        return self._answer(200, self._order_json(order))

    def _post_cert(self, account, ident, payload):
        return self._answer(
            200, raw=self.certificates[ident], headers={"Content-Type": "application/pem-certificate-chain"}
        )


# -- a minimal TLS listener ---------------------------------------------------

def _sni_connection_creator(source):
    from OpenSSL import SSL
    from twisted.internet.interfaces import IOpenSSLServerConnectionCreator

    from .challenges import ALPNSelector

    @implementer(IOpenSSLServerConnectionCreator)
    class SNIConnectionCreator:
        """
        Picks the context by SNI from an L{ICertificateSource}; the ACME
        source's contexts carry their own ALPN callback (TLS-ALPN-01).
        """

        def __init__(self):
            self.default = SSL.Context(SSL.TLS_METHOD)
            self.default.set_tlsext_servername_callback(self._servername)
            self.default.set_alpn_select_callback(ALPNSelector(source.alpn_challenge_for))

        def _servername(self, connection):
            name = connection.get_servername()
            context = source.context_for(name.decode("ascii", "replace") if name else None)
            if context is not None:
                connection.set_context(context)

        def serverConnectionForTLS(self, protocol):
            return SSL.Connection(self.default, None)

    return SNIConnectionCreator()


def listen_tls(reactor, port, source, site, interface="127.0.0.1"):
    """
    Listen with TLS on C{interface}:C{port} (0: any free port), certificates
    from C{source}, serving C{site}. @return: the C{IListeningPort}.
    """
    from twisted.internet.protocol import Factory
    from twisted.protocols.tls import TLSMemoryBIOFactory

    class _NoNegotiation(Factory):
        # Twisted's TLS layer would install its own ALPN callback (and touch
        # a context already in use) for a factory offering protocols.
        def buildProtocol(self, addr):
            return site.buildProtocol(addr)

        def doStart(self):
            site.doStart()

        def doStop(self):
            site.doStop()

    factory = TLSMemoryBIOFactory(_sni_connection_creator(source), False, _NoNegotiation())
    return reactor.listenTCP(port, factory, interface=interface)
