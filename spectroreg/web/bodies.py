"""
Request bodies: how the server reads big ones (``ReadSizer``),
and small ones for Twisted's HTTP client (webhook posts, ACME messages):
the whole body at once. ``FileBodyProducer`` would need the global
cooperator; the S3 client streams big parts with its own producer
(``spectroreg.storage.s3.transport``).
"""

from twisted.internet import abstract, defer
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer


# Twisted's read size, and the most a connection streaming a blob body reads at once.
DEFAULT_READ = 64 * 1024
LARGE_READ = 512 * 1024


def _socket_of(transport):
    """The connection that reads from the socket under C{transport}, or None."""
    for _ in range(3):
        if isinstance(transport, abstract.FileDescriptor):
            return transport
        # The TLS layer wraps the TCP connection that reads.
        transport = transport.__dict__.get("transport") if transport is not None else None
    return None


class ReadSizer:
    """
    Adapts how much a connection streaming a blob body reads per call.

    Each read costs a round of Python (the HTTP parser, the body stream, the
    writer): while the reads come back full (a fast client, the data is
    there) the read size doubles up to L{LARGE_READ}, so a fast upload costs
    less CPU per byte. A large read is not free when little has arrived
    (Python allocates the whole buffer, then shrinks it): when reads come
    back less than a quarter full the size halves again, and it returns to
    Twisted's own once the body ends. No effect on a transport that is not
    a socket (in-memory tests). Over TLS the count is the plaintext of one
    socket read (the TLS layer decrypts all its records before handing them on).
    """

    def __init__(self, transport):
        self._socket = _socket_of(transport)

    def received(self, count):
        connection = self._socket
        if connection is None:
            return
        size = connection.bufferSize
        if count * 4 >= size * 3:
            if size < LARGE_READ:
                connection.bufferSize = min(size * 2, LARGE_READ)
        elif count * 4 < size and size > DEFAULT_READ:
            connection.bufferSize = max(size // 2, DEFAULT_READ)

    def done(self):
        if self._socket is not None:
            self._socket.bufferSize = DEFAULT_READ
            self._socket = None


@implementer(IBodyProducer)
class BytesBody:
    def __init__(self, data):
        self._data = data
        self.length = len(data)

    def startProducing(self, consumer):
        consumer.write(self._data)
        return defer.succeed(None)

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass

    def stopProducing(self):
        pass
