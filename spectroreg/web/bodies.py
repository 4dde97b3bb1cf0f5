"""
Request bodies: how the server reads big ones (``read_in_large_pieces``),
and small ones for Twisted's HTTP client (webhook posts, ACME messages):
the whole body at once. ``FileBodyProducer`` would need the global
cooperator; the S3 client streams big parts with its own producer
(``spectroreg.storage.s3.transport``).
"""

from twisted.internet import abstract, defer
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer


# Bytes asked of the kernel per read on a connection streaming a blob body.
LARGE_READ = 512 * 1024


def read_in_large_pieces(transport, size=LARGE_READ):
    """
    Make the connection under C{transport} read up to C{size} bytes at a
    time instead of Twisted's 64 KiB. Each read costs a round of Python
    (the HTTP parser, the body stream, the writer), so a blob body read in
    larger pieces costs less CPU per byte. Only ever raised, never lowered;
    no effect on a transport that is not a socket (in-memory tests).
    """
    for _ in range(3):
        if isinstance(transport, abstract.FileDescriptor):
            if transport.bufferSize < size:
                transport.bufferSize = size
            return True
        # Twisted's TLS layer wraps the TCP connection that reads.
        transport = transport.__dict__.get("transport") if transport is not None else None
    return False


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
