"""
``auth.htpasswd``: HTTP Basic authentication against an htpasswd file.

What it does beyond Distribution's implementation:

- bcrypt runs in a bounded pool of threads of its own, never on the reactor
  thread, and only when a credential was not verified recently: verified
  credentials are remembered in L{VerifiedCredentials} (keyed by an HMAC
  under a per-process key), which a changed password or a reloaded file
  invalidates;
- the file is re-read when its mtime, size or inode changes (checked at most
  every C{check_interval} seconds, and before every bcrypt check, so a user
  just added can log in at once), or on L{HtpasswdAuthenticator.reload}
  (SIGHUP); the check runs on another pool than bcrypt, so verified
  credentials never wait for bcrypt checks;
- repeated failures from one client address are answered with
  L{TooManyRequests} for a while (L{FailureThrottle}); a check is counted
  when it is submitted, not when bcrypt has finished, and one address may
  have only a few checks pending (more are refused at once); the bcrypt
  threads serve the addresses with work queued in turn (L{FairScheduler}),
  so a flood from one address does not hold up other addresses' logins;
- passwords longer than 72 bytes are refused on every bcrypt version (bcrypt
  would only look at their first 72 bytes).
"""

import base64
import os
import stat
from collections import Counter

import bcrypt
from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from spectroreg.auth.basic import MalformedCredentials, parse_basic
from spectroreg.auth.cache import VerifiedCredentials
from spectroreg.auth.fairqueue import FairScheduler
from spectroreg.auth.htpasswd_file import MAX_PASSWORD_BYTES, bcrypt_cost, parse_htpasswd
from spectroreg.auth.interfaces import IAuthenticator, TooManyRequests, Unauthorized
from spectroreg.auth.throttle import FailureThrottle
from spectroreg.bounded import Waiters
from spectroreg.config.errors import ConfigError
from spectroreg.interfaces import IReloadable
from spectroreg.storage._threads import LazyThreadPool

log = Logger(namespace="spectroreg.auth.htpasswd")

DEFAULT_COST = 10  # what Distribution (Go's bcrypt.DefaultCost) uses for the generated user


def _stamp(path):
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise OSError("{} is not a regular file".format(path))
    return (info.st_mtime_ns, info.st_size, info.st_ino, info.st_dev)


def _dummy_hash(cost):
    return bcrypt.hashpw(base64.b64encode(os.urandom(16)), bcrypt.gensalt(cost))


def _typical_cost(users):
    costs = Counter(bcrypt_cost(hashed) for hashed in users.values())
    costs.pop(None, None)
    return costs.most_common(1)[0][0] if costs else DEFAULT_COST


def _load(path, previous_stamp, dummy_costs):
    """
    Blocking: read C{path} when its stamp differs from C{previous_stamp}.

    @return: None when unchanged, else (stamp, entries, dummy) where dummy
        is (cost, hash) when a dummy hash of a new cost was needed, or None.
    """
    stamp = _stamp(path)
    if stamp == previous_stamp:
        return None
    with open(path, "rb") as handle:
        data = handle.read()
    entries = parse_htpasswd(data, path)
    cost = _typical_cost(entries.users)
    dummy = None if cost in dummy_costs else (cost, _dummy_hash(cost))
    return stamp, entries, dummy


def _check_password(password, hashed):
    """Blocking (bcrypt): does C{password} match C{hashed}?"""
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:
        return False


def ensure_htpasswd_file(path):
    """
    Create a missing htpasswd file with one user, C{docker}, and a random
    password that is logged once at WARN (as Distribution does); the folder
    it creates is 0700 and the file 0600. Blocking: call at startup.

    @return: True when the file was created.
    """
    if os.path.lexists(path):
        return False
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700)
        os.chmod(directory, 0o700)
    password = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=")
    line = b"docker:" + bcrypt.hashpw(password, bcrypt.gensalt(DEFAULT_COST)) + b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, line)
    finally:
        os.close(fd)
    # The only place this password is ever shown.
    log.warn(
        "htpasswd file {path} was missing: created it with user \"docker\" and "
        "password {password} (change it with 'htpasswd -B {path} docker')",
        path=path,
        password=password.decode("ascii"),
    )
    return True


def _reactor_pool_runner(reactor):
    """Runs blocking functions on the reactor's thread pool (no bcrypt goes there)."""

    def run(function, *args):
        return deferToThreadPool(reactor, reactor.getThreadPool(), function, *args)

    return run


def _default_limit():
    return max(1, min(4, os.cpu_count() or 1))


@implementer(IAuthenticator, IReloadable)
class HtpasswdAuthenticator:
    """
    @param path: the htpasswd file (created when missing).
    @param realm: the Basic realm of the challenge.
    @param reactor: provides C{seconds()} and a thread pool; the default
        reactor when None.
    @param run_blocking: C{callable(function, *args) -> Deferred} that runs
        blocking file work (the change check, reading the file) off the
        reactor thread; the reactor's thread pool by default. It never waits
        for bcrypt.
    @param run_bcrypt: the same for bcrypt checks; a pool of its own of
        C{bcrypt_threads} threads by default (C{run_blocking} when only that
        is given). At most C{bcrypt_threads} checks are handed to it at once.
    @param check_interval: seconds between checks of the file's mtime on
        the fast (cached) path.
    @param throttle: a L{FailureThrottle}; one on C{reactor}'s clock by default.
    @param pending_per_client: how many bcrypt checks one client address
        may have queued or running; more are answered L{TooManyRequests}
        at once.
    @param max_waiting: how many bcrypt checks may wait over all clients.
    @raise ConfigError: the file cannot be created or read.
    """

    def __init__(
        self,
        path,
        realm,
        reactor=None,
        run_blocking=None,
        check_interval=1.0,
        throttle=None,
        cache_size=1024,
        run_bcrypt=None,
        bcrypt_threads=None,
        pending_per_client=4,
        max_waiting=256,
    ):
        if reactor is None:
            from twisted.internet import reactor
        self._reactor = reactor
        self.path = path
        self.realm = realm
        if bcrypt_threads is None:
            bcrypt_threads = _default_limit()
        if run_bcrypt is None:
            run_bcrypt = run_blocking if run_blocking is not None else LazyThreadPool(
                bcrypt_threads, reactor, name="spectroreg-bcrypt"
            ).run
        self._run = run_blocking if run_blocking is not None else _reactor_pool_runner(reactor)
        # Per-address queues served in turn: a flood from one address waits
        # behind everyone else's first login, not the other way round.
        self._bcrypt = FairScheduler(run_bcrypt, bcrypt_threads, max_waiting)
        self.pending_per_client = pending_per_client
        self._pending = Counter()  # client -> bcrypt checks admitted, not finished
        self._in_flight = {}  # (client, fingerprint) -> waiters for that check
        self.check_interval = check_interval
        self.throttle = throttle if throttle is not None else FailureThrottle(reactor)
        self._cache = VerifiedCredentials(cache_size)
        self._users = {}
        self._stamp = None
        self._dummies = {}
        self._refreshing = None
        self._last_error = None
        try:
            ensure_htpasswd_file(path)
            loaded = _load(path, None, self._dummies)
        except OSError as error:
            raise ConfigError(
                "auth.htpasswd.path: cannot use htpasswd file {}: {}".format(
                    path, error.strerror or error
                )
            ) from None
        self._apply(loaded)
        self._last_check = reactor.seconds()

    # IAuthenticator

    def challenge(self):
        realm = self.realm.replace("\\", "\\\\").replace('"', '\\"')
        return [("WWW-Authenticate", 'Basic realm="{}"'.format(realm))]

    def authenticate(self, authorization, client):
        try:
            self.throttle.check(client)
        except TooManyRequests as error:
            return defer.fail(error)
        if authorization is None:
            return defer.fail(Unauthorized())
        try:
            user, password = parse_basic(authorization)
        except MalformedCredentials as error:
            self._failed(client)
            return defer.fail(Unauthorized(str(error)))
        fingerprint = self._cache.fingerprint(user, password)
        if self._verified(user, fingerprint):
            # Fast path: no thread, no coroutine, when the file was checked
            # recently.
            if self._reactor.seconds() - self._last_check < self.check_interval:
                return defer.succeed(user)
            return defer.ensureDeferred(self._recheck(user, password, fingerprint, client))
        return self._check(user, password, fingerprint, client)

    # Reloading

    def reload(self):
        """
        Re-read the file now (SIGHUP). A failed read keeps the current users
        and logs why.

        @return: a Deferred firing with True when the users were replaced.
        """
        self._stamp = None
        return defer.ensureDeferred(self._refresh())

    # Internals

    def _verified(self, user, fingerprint):
        hashed = self._users.get(user)
        return hashed is not None and self._cache.lookup(fingerprint, user, hashed)

    def _failed(self, client):
        self._log_block(client, self.throttle.failure(client))

    def _log_block(self, client, seconds):
        if seconds is not None:
            log.warn(
                "client {client} blocked for {seconds} s after repeated failed logins",
                client=client,
                seconds=int(seconds),
            )

    async def _recheck(self, user, password, fingerprint, client):
        """Credentials verified before: only the file check (never behind bcrypt) is due."""
        await self._refresh()
        if self._verified(user, fingerprint):
            return user
        return await self._check(user, password, fingerprint, client)

    def _check(self, user, password, fingerprint, client):
        """
        Credentials that need bcrypt. They are admitted, and counted by the
        throttle, now; the check itself runs when the address's turn comes.
        """
        if len(password) > MAX_PASSWORD_BYTES:
            # bcrypt would compare only the first 72 bytes: refuse rather
            # than let a prefix stand for the whole password.
            self._failed(client)
            log.info(
                "refused a password longer than {limit} bytes for user {user}",
                limit=MAX_PASSWORD_BYTES,
                user=user,
            )
            return defer.fail(Unauthorized("password longer than 72 bytes"))
        key = (client, fingerprint)
        waiters = self._in_flight.get(key)
        if waiters is not None:
            # The same credentials from the same address (a client sending
            # several requests at once) share one check and count once.
            return waiters.wait()
        if self._pending[client] >= self.pending_per_client or self._bcrypt.full():
            # Refused without costing a thread or counting as a guess.
            return defer.fail(TooManyRequests(1))
        self._log_block(client, self.throttle.attempt(client))
        self._pending[client] += 1
        self._in_flight[key] = waiters = Waiters()
        checked = defer.ensureDeferred(self._verify(user, password, fingerprint, client))

        def finished(result):
            self._pending[client] -= 1
            if not self._pending[client]:
                del self._pending[client]
            del self._in_flight[key]
            if not isinstance(result, Failure):
                self.throttle.success(client)
            if isinstance(result, Failure):
                waiters.fail(result)
            else:
                waiters.fire(result)
            return result

        checked.addBoth(finished)
        return checked

    async def _verify(self, user, password, fingerprint, client):
        # The file is checked before every bcrypt check, so a user just
        # added can log in at once.
        await self._refresh()
        hashed = self._users.get(user)
        if hashed is not None and self._cache.lookup(fingerprint, user, hashed):
            return user
        # Unknown users are checked against a dummy hash of the usual cost,
        # so the answer takes as long as for a known user.
        against = hashed if hashed is not None else self._dummy()
        matched = await self._bcrypt.submit(client, _check_password, password, against)
        if matched and hashed is not None and self._users.get(user) == hashed:
            self._cache.remember(fingerprint, user, hashed)
            return user
        raise Unauthorized("wrong user name or password")

    def _dummy(self):
        cost = _typical_cost(self._users)
        return self._dummies.get(cost) or next(iter(self._dummies.values()))

    async def _refresh(self):
        """Re-read the file if it changed; concurrent callers share one read."""
        if self._refreshing is not None:
            return await self._refreshing.wait()
        self._refreshing = waiters = Waiters()
        changed = False
        try:
            loaded = await self._run(_load, self.path, self._stamp, dict(self._dummies))
        except Exception as error:
            reason = str(getattr(error, "strerror", None) or error)
            # Every uncached login re-checks the file: say it once, not per request.
            if reason != self._last_error:
                self._last_error = reason
                log.error(
                    "cannot re-read htpasswd file {path} ({error}); keeping the previous users",
                    path=self.path,
                    error=reason,
                )
        else:
            self._last_error = None
            changed = self._apply(loaded)
        finally:
            self._last_check = self._reactor.seconds()
            self._refreshing = None
            waiters.fire(False)
        return changed

    def _apply(self, loaded):
        if loaded is None:
            return False
        stamp, entries, dummy = loaded
        if dummy is not None:
            self._dummies[dummy[0]] = dummy[1]
        for warning in entries.warnings:
            log.warn("{warning}", warning=warning)
        first = self._stamp is None and not self._users
        self._stamp = stamp
        self._users = dict(entries.users)
        self._cache.clear()
        if not first:
            log.info(
                "reloaded htpasswd file {path}: {count} user(s)",
                path=self.path,
                count=len(self._users),
            )
        return True
