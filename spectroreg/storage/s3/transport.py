"""
The Twisted HTTP pieces under the S3 client.

- ``BytesProducer``: a request body held in memory (an S3 part is a bounded
  buffer), pushed in slices while the connection accepts them, and
  re-sendable as is when a request is retried.
- ``collect_body``: a whole (small) response body, with an idle timeout.
- ``BodyStreamer``: a response body pushed into a consumer, pausing the
  S3 connection while the consumer is paused, with an idle timeout that
  only runs while we actually wait for S3.
- ``tls_policy``: certificate checking, or none for ``skipverify``.
"""

from OpenSSL import SSL
from twisted.internet import defer
from twisted.internet.error import TimeoutError
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IPushProducer
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import BrowserLikePolicyForHTTPS, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import IBodyProducer, IPolicyForHTTPS
from zope.interface import implementer

SLICE = 256 * 1024


@implementer(IBodyProducer, IPushProducer)
class BytesProducer:
    """A request body from bytes; see the module docstring."""

    def __init__(self, data):
        self._body = data
        self._data = None
        self.length = len(data)
        self._consumer = None
        self._offset = 0
        self._paused = False
        self._stopped = False
        self._done = None

    def startProducing(self, consumer):
        self._data = memoryview(self._body)
        self._consumer = consumer
        self._offset = 0
        self._paused = False
        self._stopped = False
        self._done = defer.Deferred()
        self._pump()
        return self._done

    def _pump(self):
        while not (self._paused or self._stopped) and self._offset < self.length:
            start = self._offset
            self._offset = start + SLICE
            self._consumer.write(bytes(self._data[start:start + SLICE]))
        if self._offset >= self.length and not self._stopped and not self._done.called:
            self._release()
            self._done.callback(None)

    def _release(self):
        # Twisted's HTTP client keeps the request (and so this producer) in
        # reference cycles that only the cyclic GC frees, which runs by
        # object counts, not bytes: without this, every sent part (MiBs)
        # would stay in memory until a collection happens to run.
        self._data = None
        self._body = None
        self._consumer = None

    def pauseProducing(self):
        self._paused = True

    def resumeProducing(self):
        if self._done is None or self._done.called or self._stopped:
            return
        self._paused = False
        self._pump()

    def stopProducing(self):
        # IBodyProducer: the Deferred from startProducing must never fire now.
        self._stopped = True
        self._release()


class _Collector(Protocol):
    def __init__(self, finished, clock, idle_timeout, limit):
        self._finished = finished
        self._clock = clock
        self._idle_timeout = idle_timeout
        self._limit = limit
        self._chunks = []
        self._size = 0
        self._timer = None
        self._failed = False

    def connectionMade(self):
        self._arm()

    def _arm(self):
        if self._timer is not None and self._timer.active():
            self._timer.reset(self._idle_timeout)
        else:
            self._timer = self._clock.callLater(self._idle_timeout, self._timed_out)

    def _timed_out(self):
        self._timer = None
        self._fail(TimeoutError("no data from S3 for {} s".format(self._idle_timeout)))

    def _fail(self, error):
        if self._failed:
            return
        self._failed = True
        self.transport.stopProducing()
        self._finished.errback(Failure(error))

    def dataReceived(self, data):
        if self._failed:
            return
        self._size += len(data)
        if self._limit is not None and self._size > self._limit:
            self._fail(ValueError("response body over {} bytes".format(self._limit)))
            return
        self._chunks.append(data)
        self._arm()

    def connectionLost(self, reason):
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._failed:
            return
        self._failed = True
        if reason.check(ResponseDone, PotentialDataLoss):
            self._finished.callback(b"".join(self._chunks))
        else:
            self._finished.errback(reason)


def collect_body(response, clock, idle_timeout, limit=None):
    """
    @return: a Deferred firing with the whole body of C{response} (bytes);
        fails with L{TimeoutError} when S3 sends nothing for C{idle_timeout}
        seconds, or when more than C{limit} bytes arrive.
    """
    finished = defer.Deferred()
    if response.length == 0:
        response.deliverBody(_Discard())
        finished.callback(b"")
        return finished
    response.deliverBody(_Collector(finished, clock, idle_timeout, limit))
    return finished


class _Discard(Protocol):
    def connectionLost(self, reason):
        pass


class BodyStreamer(Protocol):
    """
    Pushes one response body into C{consumer} (already registered with a
    producer that forwards pause/resume/stop here).

    Pausing pauses the S3 connection; bytes that still arrive (what Twisted
    had read already) are held until the consumer resumes, so the consumer
    never gets a write while it is paused.

    @ivar received: body bytes delivered to the consumer so far.
    @ivar finished: fires with None once the whole body was delivered; fails
        on a dropped connection, an idle timeout, or after L{stop}.
    """

    def __init__(self, consumer, clock, idle_timeout, paused=False):
        self._consumer = consumer
        self._clock = clock
        self._idle_timeout = idle_timeout
        self._paused = paused
        self._held = []
        self._ended_by_peer = False
        self._timer = None
        self._ended = False
        self.received = 0
        self.finished = defer.Deferred()

    def connectionMade(self):
        if self._paused:
            self.transport.pauseProducing()
        else:
            self._arm()

    def _arm(self):
        if self._ended:
            return
        if self._timer is not None and self._timer.active():
            self._timer.reset(self._idle_timeout)
        else:
            self._timer = self._clock.callLater(self._idle_timeout, self._timed_out)

    def _disarm(self):
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _timed_out(self):
        self._timer = None
        self._end(Failure(TimeoutError(
            "no data from S3 for {} s while streaming".format(self._idle_timeout))))
        self.transport.stopProducing()

    def _end(self, failure):
        if self._ended:
            return
        self._ended = True
        self._held = []
        self._disarm()
        if failure is None:
            self.finished.callback(None)
        else:
            self.finished.errback(failure)

    def _deliver(self, data):
        self.received += len(data)
        self._consumer.write(data)

    def dataReceived(self, data):
        if self._ended:
            return
        if self._paused or self._held:
            self._held.append(data)
            return
        self._arm()
        self._deliver(data)

    def connectionLost(self, reason):
        if reason.check(ResponseDone):
            if self._held:
                # The rest goes out when the consumer resumes.
                self._ended_by_peer = True
                self._disarm()
                return
            self._end(None)
        else:
            self._end(reason)

    def pause(self):
        self._paused = True
        self._disarm()
        if self.transport is not None and not self._ended and not self._ended_by_peer:
            self.transport.pauseProducing()

    def resume(self):
        self._paused = False
        if self._ended:
            return
        while self._held and not self._paused:
            self._deliver(self._held.pop(0))
        if self._paused:
            return
        if self._ended_by_peer:
            self._end(None)
        elif self.transport is not None:
            self._arm()
            self.transport.resumeProducing()

    def stop(self, failure):
        if self._ended:
            return
        self._end(failure)
        if self.transport is not None and not self._ended_by_peer:
            self.transport.stopProducing()


@implementer(IOpenSSLClientConnectionCreator)
class _Unverified:
    """TLS without certificate or name checks (``skipverify: true``)."""

    def __init__(self, hostname):
        from twisted.internet.ssl import CertificateOptions

        self._hostname = hostname.encode("idna") if hostname else None
        self._context = CertificateOptions(verify=False).getContext()

    def clientConnectionForTLS(self, tls_protocol):
        connection = SSL.Connection(self._context, None)
        connection.set_app_data(tls_protocol)
        if self._hostname:
            connection.set_tlsext_host_name(self._hostname)
        return connection


@implementer(IPolicyForHTTPS)
class _SkipVerify:
    def creatorForNetloc(self, hostname, port):
        return _Unverified(hostname.decode("ascii") if isinstance(hostname, bytes) else hostname)


def tls_policy(skipverify):
    """The HTTPS policy for ``storage.s3.skipverify``."""
    return _SkipVerify() if skipverify else BrowserLikePolicyForHTTPS()


__all__ = ["BytesProducer", "collect_body", "BodyStreamer", "tls_policy"]
