"""
Streaming an S3 object into a consumer: ranged GETs with back-pressure, and
a download cut in the middle continued from the byte it reached (``Range``
and ``If-Match``, so a replaced object is never spliced).
"""

from twisted.internet import task
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from spectroreg.storage.errors import InvalidOffset, PathNotFound, StorageError
from spectroreg.storage.s3.client import raw_header
from spectroreg.storage.s3.errors import S3Error, not_found
from spectroreg.storage.s3.transport import BodyStreamer

log = Logger()


@implementer(IPushProducer)
class ReadProducer:
    """The producer a read registers; forwards to the body being streamed."""

    def __init__(self):
        self.paused = False
        self.stopped = False
        self.streamer = None

    def pauseProducing(self):
        self.paused = True
        if self.streamer is not None:
            self.streamer.pause()

    def resumeProducing(self):
        self.paused = False
        if self.streamer is not None:
            self.streamer.resume()

    def stopProducing(self):
        self.stopped = True
        if self.streamer is not None:
            self.streamer.stop(Failure(ConnectionDone("consumer stopped the read")))


class ObjectStream:
    """
    One read of C{key} into C{consumer} from C{offset}, C{length} bytes or
    to the end. L{run} fires with the number of bytes written.

    @param head_size: an async function of (path, key) giving the object's
        size (for reads of nothing, and a range past the end).
    """

    def __init__(self, client, clock, head_size, path, key, consumer, producer, offset, length):
        self._client = client
        self._clock = clock
        self._head_size = head_size
        self._path = path
        self._key = key
        self._consumer = consumer
        self._producer = producer
        self._offset = offset
        self._length = length
        self._etag = None
        self._written = 0

    async def run(self):
        if self._length == 0:
            if self._offset > await self._head_size(self._path, self._key):
                raise InvalidOffset(self._path, self._offset)
            return 0
        failures = 0
        while True:
            if self._producer.stopped:
                raise ConnectionDone("consumer stopped the read")
            response = await self._open()
            if response is None:
                return self._written
            try:
                return self._written + await self._receive(response)
            except Exception as error:
                failures += 1
                if not await self._continue_after(error, failures):
                    return self._written

    async def _open(self):
        """The GET of what is still missing; None when nothing is."""
        start = self._offset + self._written
        byte_range = "bytes={}-".format(start)
        if self._length is not None:
            byte_range += str(self._offset + self._length - 1)
        try:
            response = await self._client.open_object(self._key, self._path, byte_range, self._etag)
        except S3Error as error:
            if not_found(error):
                raise PathNotFound(self._path)
            if error.status == 416 or error.code == "InvalidRange":
                if start == await self._head_size(self._path, self._key):
                    return None
                raise InvalidOffset(self._path, self._offset)
            raise
        if self._etag is None:
            self._etag = raw_header(response, b"etag")
        if response.code == 200 and start > 0:
            response.deliverBody(Ignore())
            raise StorageError("S3 ignored the Range of a GET", self._path)
        if self._producer.stopped:
            response.deliverBody(Ignore())
            raise ConnectionDone("consumer stopped the read")
        return response

    async def _receive(self, response):
        streamer = BodyStreamer(self._consumer, self._clock, self._client.idle_timeout,
                                paused=self._producer.paused)
        self._producer.streamer = streamer
        response.deliverBody(streamer)
        try:
            await streamer.finished
        except Exception:
            self._written += streamer.received
            self._producer.streamer = None
            raise
        return streamer.received

    async def _continue_after(self, error, failures):
        """Whether to GET the rest after a broken body; raises when not worth it."""
        if self._producer.stopped:
            raise ConnectionDone("consumer stopped the read")
        if failures >= self._client.retry.attempts:
            raise S3Error("reading {} failed after {} attempts: {}".format(
                self._key, failures, error), self._path, retriable=True)
        if self._length is not None and self._written >= self._length:
            return False
        log.info("S3 GET {key} broke after {n} bytes ({error}); resuming",
                 key=self._key, n=self._written, error=error)
        await task.deferLater(self._clock, self._client.retry.delay(failures), lambda: None)
        return True


class Ignore:
    """Discards a response body we do not want."""

    def makeConnection(self, transport):
        transport.stopProducing()

    def dataReceived(self, data):
        pass

    def connectionLost(self, reason):
        pass
