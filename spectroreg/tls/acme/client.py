"""
An ACME v2 (RFC 8555) client on Twisted.

certbot's ``acme`` package supplies the message types, JWS signing and the
key-authorization rule; the HTTP transport is our own (``twisted.web.client
.Agent``), so nothing blocks, nothing holds a thread, every wait goes through
the injected clock and everything can be cancelled. The same code runs on
Debian's acme 2.1 / josepy 1.13 and on acme 5.x / josepy 2.x: the only parts
of ``acme`` used are the ones those versions share (acme 5 has no TLS-ALPN-01
classes; the challenge certificate is built in L{certs}).
"""

import json
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import josepy
from acme import challenges, jws, messages
from twisted.internet import defer, task
from twisted.logger import Logger
from zope.interface import implementer

from spectroreg.web.bodies import BytesBody

from . import certs
from .errors import (
    ACMEError,
    BadNonceError,
    CAUnavailableError,
    NoUsableChallengeError,
    OrderFailedError,
    ProblemError,
    RateLimitedError,
    ValidationError,
)
from .interfaces import IHTTPTransport

JOSE = "application/jose+json"
USER_AGENT = "spectroreg-acme"


@dataclass
class HTTPResponse:
    status: int
    headers: Dict[str, List[str]] = field(default_factory=dict)  # lower-case names
    body: bytes = b""

    def header(self, name: str) -> Optional[str]:
        values = self.headers.get(name.lower())
        return values[0] if values else None

    def json(self):
        return json.loads(self.body.decode("utf-8"))


@implementer(IHTTPTransport)
class AgentTransport:
    """
    HTTPS to the CA through C{twisted.web.client.Agent}.

    @param ca_file: a PEM file of the certificates to trust for the CA's API
        (a private ACME CA); None trusts the system's store, which OpenSSL
        reads from ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when they are set.
    @param timeout: seconds for connecting and for each whole request.
    """

    def __init__(self, reactor=None, ca_file=None, timeout=30.0):
        if reactor is None:
            from twisted.internet import reactor
        from twisted.internet import ssl
        from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool

        self._reactor = reactor
        self._timeout = timeout
        if ca_file:
            with open(ca_file, "rb") as f:
                blocks = certs.split_pem(f.read())
            roots = [ssl.Certificate.loadPEM(block) for kind, block in blocks if kind == "CERTIFICATE"]
            if not roots:
                raise ValueError("{}: no certificate found".format(ca_file))
            policy = BrowserLikePolicyForHTTPS(trustRoot=ssl.trustRootFromCertificates(roots))
        else:
            policy = BrowserLikePolicyForHTTPS()
        # Not persistent: nothing stays open between issuances (which are
        # weeks apart) and nothing is left behind when the service stops.
        pool = HTTPConnectionPool(reactor, persistent=False)
        self._agent = Agent(reactor, contextFactory=policy, connectTimeout=timeout, pool=pool)

    async def _request(self, method, url, headers, body):
        from twisted.web.client import readBody
        from twisted.web.http_headers import Headers

        raw_headers = Headers({b"User-Agent": [USER_AGENT.encode()]})
        for name, value in (headers or {}).items():
            raw_headers.setRawHeaders(name.encode("ascii"), [value.encode("ascii")])
        producer = BytesBody(body) if body is not None else None
        response = await self._agent.request(
            method.encode("ascii"), url.encode("ascii"), raw_headers, producer
        )
        data = b"" if method == "HEAD" else await readBody(response)
        result = HTTPResponse(status=response.code)
        for name, values in response.headers.getAllRawHeaders():
            result.headers[name.decode("latin-1").lower()] = [v.decode("latin-1") for v in values]
        result.body = data
        return result

    def request(self, method, url, headers=None, body=None):
        d = defer.ensureDeferred(self._request(method, url, headers, body))
        d.addTimeout(self._timeout, self._reactor)

        def unreachable(failure):
            if failure.check(defer.CancelledError):
                return failure
            raise CAUnavailableError(
                "{} {}: {}".format(method, url, failure.getErrorMessage() or failure.type.__name__)
            )

        d.addErrback(unreachable)
        return d


def key_authorization(token: str, account_jwk) -> str:
    """RFC 8555 §8.1: the same rule for every challenge type."""
    challenge = challenges.HTTP01(token=josepy.b64decode(token))
    return challenge.key_authorization(account_jwk)


def _retry_after(response: HTTPResponse) -> Optional[float]:
    value = response.header("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime
        import time

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def problem_from(response: HTTPResponse, url: str) -> ACMEError:
    """The exception an error response stands for."""
    try:
        error = messages.Error.from_json(response.json())
        code, detail = error.code, error.detail or error.title or ""
    except Exception:
        code, detail = None, response.body[:200].decode("utf-8", "replace")
    retry_after = _retry_after(response)
    if code == "rateLimited" or response.status == 429:
        return RateLimitedError(response.status, code, detail, url, retry_after)
    if code is None and response.status >= 500:
        return CAUnavailableError("{} answered {}: {}".format(url, response.status, detail))
    cls = BadNonceError if code == "badNonce" else ProblemError
    return cls(response.status, code, detail, url, retry_after)


class ACMEClient:
    """
    Talks to one ACME CA with one account key.

    @param directory_url: the CA's directory URL.
    @param account_key: a cryptography EC P-256 private key.
    @param transport: an L{IHTTPTransport}.
    @param clock: an C{IReactorTime} for polling waits.
    @param email: the account contact, or None.
    """

    log = Logger()

    def __init__(
        self,
        directory_url,
        account_key,
        transport,
        clock,
        email=None,
        nonce_retries=10,
        poll_interval=1.0,
        poll_timeout=120.0,
    ):
        self.directory_url = directory_url
        self._jwk = josepy.JWKEC(key=account_key)
        self._transport = transport
        self._clock = clock
        self._email = email
        self._nonce_retries = nonce_retries
        self._poll_interval = poll_interval
        self._poll_timeout = poll_timeout
        self._directory = None
        self._nonces: List[str] = []
        self.account_url: Optional[str] = None
        self._register_lock = defer.DeferredLock()
        # Counts for tests and metrics.
        self.orders_created = 0
        self.bad_nonces = 0

    @property
    def account_jwk(self):
        return self._jwk

    async def _get(self, url, method="GET") -> HTTPResponse:
        response = await self._transport.request(method, url, {}, None)
        self._keep_nonce(response)
        if response.status >= 400:
            raise problem_from(response, url)
        return response

    def _keep_nonce(self, response):
        nonce = response.header("replay-nonce")
        if nonce:
            self._nonces.append(nonce)

    async def directory(self):
        if self._directory is None:
            response = await self._get(self.directory_url)
            try:
                self._directory = messages.Directory.from_json(response.json())
            except Exception as e:
                raise CAUnavailableError(
                    "{} is not an ACME directory: {}".format(self.directory_url, e)
                )
        return self._directory

    async def _nonce(self) -> str:
        if not self._nonces:
            directory = await self.directory()
            await self._get(directory["newNonce"], method="HEAD")
            if not self._nonces:
                raise CAUnavailableError("the CA sent no Replay-Nonce")
        return self._nonces.pop()

    async def _post(self, url, payload, accept=None) -> HTTPResponse:
        """
        A JWS-signed POST (C{payload} None: POST-as-GET). ``badNonce`` is
        retried with the fresh nonce the error carries, several times: CAs
        may reject a share of good nonces (pebble does 5-15 % by default).
        """
        body = b"" if payload is None else json.dumps(payload).encode("utf-8")
        for attempt in range(self._nonce_retries):
            nonce = await self._nonce()
            signed = jws.JWS.sign(
                body,
                key=self._jwk,
                alg=josepy.ES256,
                nonce=josepy.b64decode(nonce),
                url=url,
                kid=self.account_url,
            ).json_dumps()
            headers = {"Content-Type": JOSE}
            if accept:
                headers["Accept"] = accept
            response = await self._transport.request("POST", url, headers, signed.encode("utf-8"))
            self._keep_nonce(response)
            if response.status < 400:
                return response
            error = problem_from(response, url)
            if isinstance(error, BadNonceError):
                self.bad_nonces += 1
                self.log.debug("ACME badNonce from {url}, retrying ({attempt})", url=url, attempt=attempt + 1)
                continue
            raise error
        raise error

    async def register(self) -> str:
        """Create the account, or find the existing one for our key; return its URL."""
        await self._register_lock.acquire()
        try:
            return await self._register()
        finally:
            self._register_lock.release()

    async def _register(self):
        if self.account_url is not None:
            return self.account_url
        directory = await self.directory()
        kwargs = {"terms_of_service_agreed": True}
        if self._email:
            kwargs["email"] = self._email
        registration = messages.NewRegistration.from_data(**kwargs)
        response = await self._post(directory["newAccount"], registration.to_json())
        location = response.header("location")
        if not location:
            raise CAUnavailableError("the CA created an account without a Location")
        self.account_url = location
        self.log.info(
            "ACME account {url} ({state}) at {directory}",
            url=location,
            state="created" if response.status == 201 else "existing",
            directory=self.directory_url,
        )
        return location

    async def _sleep(self, seconds):
        await task.deferLater(self._clock, seconds, lambda: None)

    async def _poll(self, url, done_statuses):
        """POST-as-GET C{url} until its status leaves pending/processing."""
        deadline = self._clock.seconds() + self._poll_timeout
        while True:
            response = await self._post(url, None)
            body = response.json()
            if body.get("status") in done_statuses:
                return body
            if self._clock.seconds() >= deadline:
                raise OrderFailedError(
                    "{} still {} after {:.0f} s".format(url, body.get("status"), self._poll_timeout)
                )
            wait = _retry_after(response)
            wait = self._poll_interval if wait is None else min(max(wait, 0.2), 10.0)
            await self._sleep(wait)

    async def issue(self, host, key, responders, challenge_types):
        """
        Obtain a certificate for C{host} whose private key is C{key}.

        @param responders: dict challenge type -> responder with
            C{start(host, token, key_authorization)} and C{stop(host, token)}.
        @param challenge_types: the types to use, in order of preference.
        @return: (PEM certificate chain bytes, challenge type used or None
            when the CA reused a valid authorization).
        @raise ValidationError: the CA could not validate the chosen challenge.

        When the CA answers ``accountDoesNotExist``, the account is
        registered again and the order placed again at once, once.
        """
        account = await self.register()
        try:
            return await self._issue(host, key, responders, challenge_types)
        except ProblemError as e:
            if e.code != "accountDoesNotExist":
                raise
        # The CA lost or dropped the account (its state was reset, the
        # account was deactivated). Register again and order again now:
        # waiting for the next retry would only bring the expiry of the
        # certificate in service closer. A second refusal is an error.
        self.log.warn("ACME account {url} is unknown to the CA; registering again", url=account)
        if self.account_url == account:
            self.account_url = None
        await self.register()
        return await self._issue(host, key, responders, challenge_types)

    async def _issue(self, host, key, responders, challenge_types):
        await self.register()
        directory = await self.directory()
        order = messages.NewOrder(
            identifiers=[messages.Identifier(typ=messages.IDENTIFIER_FQDN, value=host)]
        )
        response = await self._post(directory["newOrder"], order.to_json())
        self.orders_created += 1
        order_url = response.header("location")
        order_body = response.json()
        if not order_url:
            raise OrderFailedError("the CA created an order without a Location")
        self.log.info("ACME order {url} for {host}", url=order_url, host=host)

        used = None
        for authz_url in order_body.get("authorizations", []):
            authz = (await self._post(authz_url, None)).json()
            status = messages.Authorization.from_json(authz).status.name
            if status == "valid":
                continue
            if status != "pending":
                raise OrderFailedError("authorization {} is {}".format(authz_url, status))
            used = await self._validate(host, authz_url, authz, responders, challenge_types)

        ready = await self._poll(order_url, ("ready", "valid", "invalid"))
        if ready["status"] == "invalid":
            raise OrderFailedError("order {} became invalid: {}".format(order_url, ready.get("error")))
        if ready["status"] == "ready":
            csr = certs.make_csr_der(key, host)
            await self._post(ready["finalize"], {"csr": josepy.b64encode(csr).decode("ascii")})
            ready = await self._poll(order_url, ("valid", "invalid"))
            if ready["status"] == "invalid":
                raise OrderFailedError(
                    "order {} became invalid: {}".format(order_url, ready.get("error"))
                )
        chain = await self._post(
            ready["certificate"], None, accept="application/pem-certificate-chain"
        )
        return chain.body, used

    async def _validate(self, host, authz_url, authz, responders, challenge_types):
        offered = {c.get("type"): c for c in authz.get("challenges", [])}
        chosen = next(
            (t for t in challenge_types if t in offered and t in responders), None
        )
        if chosen is None:
            raise NoUsableChallengeError(
                "{}: the CA offers {}, we answer {}".format(
                    host, sorted(offered), [t for t in challenge_types if t in responders]
                )
            )
        challenge = offered[chosen]
        token = challenge["token"]
        responder = responders[chosen]
        responder.start(host, token, key_authorization(token, self._jwk))
        try:
            await self._post(challenge["url"], {})
            result = await self._poll(authz_url, ("valid", "invalid", "deactivated", "expired", "revoked"))
        finally:
            responder.stop(host, token)
        if result["status"] != "valid":
            detail = "authorization is " + result["status"]
            for c in result.get("challenges", []):
                if c.get("type") == chosen and c.get("error"):
                    detail = c["error"].get("detail") or detail
            raise ValidationError(host, chosen, detail)
        self.log.info("ACME {type} validation of {host} succeeded", type=chosen, host=host)
        return chosen
