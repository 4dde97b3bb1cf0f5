"""
Small request bodies for Twisted's HTTP client (webhook posts, ACME
messages): the whole body at once. ``FileBodyProducer`` would need the
global cooperator; the S3 client streams big parts with its own producer
(``spectroreg.storage.s3.transport``).
"""

from twisted.internet import defer
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer


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
