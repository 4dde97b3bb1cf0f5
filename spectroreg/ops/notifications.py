"""
Webhook endpoints (``notifications.endpoints``): each event is put in a
bounded queue per endpoint and POSTed later, in Distribution's envelope, by
one sender per endpoint; a request that produced the event never waits.

- The queue holds at most ``queuesize`` events; when full the oldest is
  dropped (counted, and logged at most once a minute), so a slow or dead
  endpoint costs bounded memory.
- One POST at a time per endpoint, with up to ``MAX_BATCH`` queued events
  in one envelope; it must answer 200, 201, 202 or 204 within ``timeout``
  (head and body), else it failed and the events go back to the front of
  the queue. After ``threshold`` failures in a row the sender waits
  ``backoff`` between attempts (Distribution's breaker).
- ``ignoredmediatypes`` / ``ignore.mediatypes`` and ``ignore.actions`` drop
  matching events before they are queued.
"""

import collections
import json

from twisted.application.service import Service
from twisted.internet import defer, protocol
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers
from zope.interface import implementer

from spectroreg.ops.events import EVENTS_MEDIA_TYPE, envelope
from spectroreg.ops.interfaces import IEventSink
from spectroreg.web.bodies import BytesBody

log = Logger(namespace="spectroreg.notifications")

MAX_BATCH = 50
ACCEPTED = frozenset([200, 201, 202, 204])
LOG_EVERY = 60.0  # seconds between two warnings about the same endpoint


class _Discard(protocol.Protocol):
    """Reads and forgets a response body; C{done} fires at its end."""

    def __init__(self):
        self.done = defer.Deferred(lambda _: self._abort())

    def _abort(self):
        if self.transport is not None:
            self.transport.stopProducing()

    def dataReceived(self, data):
        pass

    def connectionLost(self, reason):
        if not self.done.called:
            self.done.callback(None)


class DeliveryFailed(Exception):
    """The endpoint did not accept an envelope."""


@implementer(IEventSink)
class Endpoint:
    """
    One endpoint: its queue, its sender and its counters (read by the
    metrics: C{pending}, C{sent}, C{failed}, C{dropped}).

    @param settings: L{spectroreg.config.operations.EndpointSettings}.
    @param post: coroutine function C{(body: bytes) -> None} that raises
        L{DeliveryFailed} (or anything) when the endpoint did not take it;
        L{HTTPPoster} by default.
    """

    def __init__(self, settings, reactor, post=None):
        self.settings = settings
        self.name = settings.name
        self._reactor = reactor
        self._post = post or HTTPPoster(settings, reactor)
        self._queue = collections.deque()
        self._ignored_types = frozenset(settings.ignored_mediatypes)
        self._ignored_actions = frozenset(settings.ignored_actions)
        self._running = False
        self._stopped = False
        self._in_flight = 0
        self._failures_in_row = 0
        self._last_warning = {}
        self.sent = 0
        self.failed = 0
        self.dropped = 0

    @property
    def pending(self):
        """Events queued or being sent."""
        return len(self._queue) + self._in_flight

    # -- taking events (IEventSink) -------------------------------------------

    def write(self, event):
        if event["action"] in self._ignored_actions:
            return
        if self._ignored_types and event["target"].get("mediaType") in self._ignored_types:
            return
        if self._stopped:
            return
        self._queue.append(event)
        self._trim()
        if not self._running:
            self._running = True
            # Later, never inside the request that produced the event.
            self._reactor.callLater(0, self._start)

    def _trim(self):
        excess = len(self._queue) + self._in_flight - self.settings.queuesize
        if excess <= 0:
            return
        for _ in range(min(excess, len(self._queue))):
            self._queue.popleft()
            self.dropped += 1
        self._warn("drop", "notification endpoint {name}: queue full ({size} events), dropped the oldest; "
                   "{dropped} dropped so far", size=self.settings.queuesize, dropped=self.dropped)

    def _warn(self, kind, text, **fields):
        now = self._reactor.seconds()
        last = self._last_warning.get(kind)
        if last is not None and now - last < LOG_EVERY:
            return
        self._last_warning[kind] = now
        log.warn(text, name=self.name, **fields)

    # -- sending ----------------------------------------------------------------

    def _start(self):
        d = defer.ensureDeferred(self._send_all())
        d.addErrback(lambda f: log.failure("notification endpoint {name}: sender stopped", f, name=self.name))

    async def _send_all(self):
        try:
            while self._queue and not self._stopped:
                batch = [self._queue.popleft() for _ in range(min(MAX_BATCH, len(self._queue)))]
                self._in_flight = len(batch)
                try:
                    await self._post(json.dumps(envelope(batch)).encode("utf-8"))
                except Exception as error:
                    self._in_flight = 0
                    self._failed(batch, error)
                    if self._failures_in_row >= self.settings.threshold and not self._stopped:
                        await deferLater(self._reactor, self.settings.backoff, lambda: None)
                    continue
                self._in_flight = 0
                self.sent += len(batch)
                if self._failures_in_row:
                    log.info("notification endpoint {name}: delivering again after {count} failure(s)",
                             name=self.name, count=self._failures_in_row)
                    self._last_warning.pop("fail", None)
                self._failures_in_row = 0
        finally:
            self._in_flight = 0
            self._running = False

    def _failed(self, batch, error):
        self.failed += 1
        self._failures_in_row += 1
        # Back to the front, in order; the bound still holds (oldest dropped).
        self._queue.extendleft(reversed(batch))
        self._trim()
        self._warn("fail", "notification endpoint {name} ({url}): delivery failed: {error}; "
                   "{pending} event(s) pending, retrying", url=_safe_url(self.settings.url),
                   error=_reason(error), pending=self.pending)

    def stop(self):
        """Send nothing more; what is queued is given up (logged)."""
        self._stopped = True
        if self._queue:
            log.info("notification endpoint {name}: {count} event(s) not delivered at shutdown",
                     name=self.name, count=len(self._queue))
        self._queue.clear()
        close = getattr(self._post, "close", None)
        return close() if close is not None else None


def _reason(error):
    if isinstance(error, defer.TimeoutError) or isinstance(error, defer.CancelledError):
        return "no answer in time"
    text = str(error) or error.__class__.__name__
    return text.splitlines()[0][:200] if text else error.__class__.__name__


def _safe_url(url):
    """C{url} without credentials or query (the log must not carry secrets)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = "[{}]".format(netloc)
    if parts.port:
        netloc += ":{}".format(parts.port)
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class HTTPPoster:
    """POSTs an envelope to one endpoint with Twisted's Agent, within a timeout."""

    def __init__(self, settings, reactor):
        self._reactor = reactor
        self._url = settings.url.encode("utf-8")
        self._timeout = settings.timeout
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = 1
        self._pool.retryAutomatically = False
        self._agent = Agent(reactor, connectTimeout=settings.timeout, pool=self._pool)
        headers = Headers()
        for name, values in settings.headers.items():
            headers.setRawHeaders(name.encode("latin-1"), [value.encode("latin-1") for value in values])
        headers.setRawHeaders(b"content-type", [EVENTS_MEDIA_TYPE.encode("ascii")])
        self._headers = headers

    async def __call__(self, body):
        deadline = self._reactor.seconds() + self._timeout
        d = self._agent.request(b"POST", self._url, self._headers.copy(), BytesBody(body))
        d.addTimeout(self._timeout, self._reactor)
        response = await d
        reader = _Discard()
        response.deliverBody(reader)
        remaining = max(0.001, deadline - self._reactor.seconds())
        reader.done.addTimeout(remaining, self._reactor)
        await reader.done
        if response.code not in ACCEPTED:
            raise DeliveryFailed("answered {}".format(response.code))

    def close(self):
        return self._pool.closeCachedConnections()


@implementer(IEventSink)
class Broadcaster:
    """Hands every event to every endpoint."""

    def __init__(self, endpoints):
        self.endpoints = tuple(endpoints)

    def write(self, event):
        for endpoint in self.endpoints:
            endpoint.write(event)


class NotificationService(Service):
    """Stops the endpoints' senders at shutdown."""

    name = "notifications"

    def __init__(self, endpoints):
        self.endpoints = tuple(endpoints)

    def stopService(self):
        Service.stopService(self)
        return defer.DeferredList([defer.maybeDeferred(endpoint.stop) for endpoint in self.endpoints])
