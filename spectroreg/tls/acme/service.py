"""
The issuing service: keeps a valid certificate for every configured host.

At start it loads the cache; a host without a usable cached certificate is
served a self-signed fallback at once and issued in the background. Each
certificate is renewed from a timer (L{certs.renewal_time}), early enough
that a failed attempt, its retry delay and the retry (as long as the last
issuance took) all fit before expiry. When the CA is down, rate-limits us or
answers errors, the attempt is retried with exponential backoff while the
current certificate stays in service; the delay is never more than a third
of the time the current certificate has left, so retries come closer
together as expiry nears instead of sleeping past it. When a challenge type
fails validation, the next configured type is tried at once.
"""

import datetime
from typing import Dict, List, Optional

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger

from spectroreg.bounded import Waiters

from . import certs
from .errors import RateLimitedError, ValidationError


class ACMEIssuingService(Service):
    """
    @param hosts: the names to keep certificates for.
    @param store: an L{ICertificateStore}.
    @param source: the L{ACMECertificateSource} the TLS listener reads.
    @param make_client: callable(account_key) -> L{ACMEClient}.
    @param responders: dict challenge type -> responder.
    @param challenge_types: the types to use, in order of preference.
    @param clock: an C{IReactorTime}.
    @param retry_initial: first backoff delay (seconds) after a failure.
    @param retry_max: the longest backoff delay.
    """

    log = Logger()

    def __init__(
        self,
        hosts,
        store,
        source,
        make_client,
        responders,
        challenge_types,
        clock,
        retry_initial=10.0,
        retry_max=3600.0,
        retry_factor=2.0,
        directory_url="",
    ):
        self.hosts = tuple(hosts)
        self.store = store
        self.source = source
        self._make_client = make_client
        self.responders = dict(responders)
        self.challenge_types = tuple(t for t in challenge_types if t in self.responders)
        self._clock = clock
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.retry_factor = retry_factor
        self.directory_url = directory_url
        self.client = None
        self._client_lock = defer.DeferredLock()
        self._timers: Dict[str, object] = {}
        self._running: Dict[str, defer.Deferred] = {}
        self._failures: Dict[str, int] = {}
        self._failed_types: Dict[str, set] = {}
        # How long the slowest recent issuance took (seconds), for the margin
        # kept before expiry.
        self._attempt_seconds = 0.0
        self._starting: Optional[defer.Deferred] = None
        self._waiters = Waiters()
        # (host, challenge type) of every certificate obtained, in order.
        self.issued: List[tuple] = []

    # -- time ------------------------------------------------------------

    def _now(self) -> datetime.datetime:
        return certs.utc_from_seconds(self._clock.seconds())

    def _seconds_until(self, when: datetime.datetime) -> float:
        return max(0.0, (when - self._now()).total_seconds())

    def _renewal_time(self, bundle):
        # Room for one attempt, the first retry delay and the retry.
        margin = 2 * self._attempt_seconds + self.retry_initial
        return certs.renewal_time(bundle.not_before, bundle.not_after, margin)

    # -- lifecycle -------------------------------------------------------

    def startService(self):
        super().startService()
        now = self._now()
        for host in self.hosts:
            if self.source.bundle_for(host) is None:
                self.source.install(host, certs.fallback_bundle(host, now))
        self._starting = defer.ensureDeferred(self._load_cache())
        self._starting.addErrback(self._log_failure, "loading the certificate cache")

    def stopService(self):
        super().stopService()
        for timer in self._timers.values():
            if timer.active():
                timer.cancel()
        self._timers.clear()
        pending = [d for d in [self._starting, *self._running.values()] if d is not None]
        self._running.clear()
        for d in pending:
            d.cancel()
        self._waiters.cancel_all()
        return defer.DeferredList(pending, consumeErrors=True) if pending else None

    def _log_failure(self, failure, doing):
        if not failure.check(defer.CancelledError):
            self.log.failure("ACME: failed while " + doing, failure)

    async def _load_cache(self):
        for host in self.hosts:
            bundle = None
            try:
                data = await self.store.load(host)
                if data is not None:
                    bundle = certs.Bundle.from_pem(data)
            except defer.CancelledError:
                raise
            except Exception as e:
                self.log.warn("ACME: cached certificate for {host} is unusable: {error}", host=host, error=e)
            if bundle is not None and bundle.usable_for(host, self._now()):
                self.source.install(host, bundle)
                renew_at = self._renewal_time(bundle)
                self.log.info(
                    "ACME: using cached certificate for {host}, valid until {until}, renewal at {renew}",
                    host=host,
                    until=bundle.not_after.isoformat(),
                    renew=renew_at.isoformat(),
                )
                self._schedule(host, self._seconds_until(renew_at))
            else:
                self.log.info(
                    "ACME: no valid certificate cached for {host}; serving a self-signed one until {directory} issues it",
                    host=host,
                    directory=self.directory_url,
                )
                self._schedule(host, 0)
        self._notify()

    # -- issuing ---------------------------------------------------------

    def _schedule(self, host, delay):
        timer = self._timers.get(host)
        if timer is not None and timer.active():
            timer.cancel()
        if self.running:
            self._timers[host] = self._clock.callLater(delay, self._start_issue, host)

    def _start_issue(self, host):
        self._timers.pop(host, None)
        if host in self._running or not self.running:
            return
        d = defer.ensureDeferred(self._issue(host))
        self._running[host] = d

        def done(result):
            self._running.pop(host, None)
            return result

        d.addBoth(done)
        d.addErrback(self._issue_failed, host)

    async def _get_client(self):
        await self._client_lock.acquire()
        try:
            if self.client is None:
                pem = await self.store.load_account_key()
                key = None
                if pem is not None:
                    try:
                        key = certs.load_key(pem)
                    except Exception as e:
                        self.log.error("ACME: the cached account key cannot be read ({error}); not replacing it", error=e)
                        raise
                if key is None:
                    key = certs.generate_key()
                    try:
                        await self.store.save_account_key(certs.key_to_pem(key))
                    except defer.CancelledError:
                        raise
                    except Exception as e:
                        # Go on with the key in memory: a certificate now is
                        # worth more than the account kept across restarts.
                        self.log.error(
                            "ACME: cannot write the account key to the cache ({error}); "
                            "a new account will be created at the next start",
                            error=e,
                        )
                self.client = self._make_client(key)
            return self.client
        finally:
            self._client_lock.release()

    def _types_to_try(self, host):
        failed = self._failed_types.setdefault(host, set())
        remaining = [t for t in self.challenge_types if t not in failed]
        if not remaining:
            failed.clear()
            remaining = list(self.challenge_types)
        return remaining

    async def _issue(self, host):
        client = await self._get_client()
        key = certs.generate_key()
        started = self._clock.seconds()
        chain_pem, used = await client.issue(host, key, self.responders, self._types_to_try(host))
        bundle = certs.Bundle.from_key_and_chain(key, chain_pem)
        if not bundle.usable_for(host, self._now()):
            raise ValueError(
                "the CA's certificate for {} does not fit (names {}, valid {} to {})".format(
                    host, certs.dns_names(bundle.leaf), bundle.not_before, bundle.not_after
                )
            )
        self.source.install(host, bundle)
        try:
            await self.store.save(host, bundle.to_pem())
        except defer.CancelledError:
            raise
        except Exception as e:
            # Serve it anyway; asking the CA again would only eat into its
            # rate limits.
            self.log.error(
                "ACME: cannot write the certificate for {host} to the cache ({error}); "
                "it is served now but will be requested again at the next start",
                host=host,
                error=e,
            )
        self._failures.pop(host, None)
        self._failed_types.pop(host, None)
        self.issued.append((host, used))
        elapsed = self._clock.seconds() - started
        self._attempt_seconds = max(elapsed, self._attempt_seconds / 2)
        renew_at = self._renewal_time(bundle)
        self.log.info(
            "ACME: certificate for {host} obtained ({challenge}, {elapsed:.1f} s), valid until {until}, renewal at {renew}",
            host=host,
            challenge=used or "authorization reused",
            elapsed=elapsed,
            until=bundle.not_after.isoformat(),
            renew=renew_at.isoformat(),
        )
        self._schedule(host, self._seconds_until(renew_at))
        self._notify()

    def _issue_failed(self, failure, host):
        if failure.check(defer.CancelledError) or not self.running:
            return None
        error = failure.value
        if isinstance(error, ValidationError):
            failed = self._failed_types.setdefault(host, set())
            failed.add(error.challenge_type)
            if any(t not in failed for t in self.challenge_types):
                self.log.warn(
                    "ACME: {error}; trying the next challenge type for {host}", error=error, host=host
                )
                self._schedule(host, 0)
                return None
        count = self._failures.get(host, 0)
        self._failures[host] = count + 1
        delay = min(self.retry_max, self.retry_initial * self.retry_factor ** count)
        current = self.source.bundle_for(host)
        if current is not None and not current.fallback:
            left = self._seconds_until(current.not_after)
            if left > 0:
                # Never sleep past the expiry of what is served: retries come
                # closer together as it nears.
                delay = min(delay, max(1.0, left / 3))
        if isinstance(error, RateLimitedError) and error.retry_after:
            # The CA's word wins: asking earlier would only be refused again.
            delay = max(delay, error.retry_after)
        serving = "a self-signed certificate" if current is None or current.fallback else (
            "the current certificate (valid until {})".format(current.not_after.isoformat())
        )
        self.log.error(
            "ACME: could not get a certificate for {host} from {directory}: {error}; "
            "retrying in {delay:.0f} s, serving {serving} meanwhile",
            host=host,
            directory=self.directory_url,
            error="{}: {}".format(type(error).__name__, error),
            delay=delay,
            serving=serving,
        )
        self._schedule(host, delay)
        return None

    # -- waiting ---------------------------------------------------------

    def certs_valid(self) -> bool:
        """Whether every host has a CA-issued certificate valid now."""
        now = self._now()
        for host in self.hosts:
            bundle = self.source.bundle_for(host)
            if bundle is None or bundle.fallback or not bundle.usable_for(host, now):
                return False
        return True

    def when_certs_valid(self) -> defer.Deferred:
        """A Deferred firing (with None) once L{certs_valid} is true."""
        if self.certs_valid():
            return defer.succeed(None)
        return self._waiters.wait()

    def _notify(self):
        if self._waiters and self.certs_valid():
            self._waiters.fire(None)
