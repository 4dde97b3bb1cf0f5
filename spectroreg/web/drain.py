"""
Knowing when what a channel wrote has left its transport.

A response body sent past the transport (``sendfile(2)`` straight to the
socket, see ``spectroreg.storage._sendfile``) may start only once the
response headers written through the transport are all in the kernel:
otherwise body bytes would overtake them. Twisted says so through public API
only: an HTTP channel is the streaming producer of its TCP transport, the
transport pauses it when more than its ``bufferSize`` bytes wait to be sent,
and resumes it (``resumeProducing``) once its buffer is empty again. Writing
with ``bufferSize`` set to 0 makes that pause certain, so the resume that
follows says the bytes are out.
"""

from twisted.internet import defer
from twisted.python.failure import Failure
from zope.interface import Attribute, Interface, implementer

from spectroreg.bounded import Waiters


class IDrainingChannel(Interface):
    """An HTTP channel that tells when its transport's buffer is empty."""

    transport = Attribute("The channel's transport.")

    def write_drained(write):
        """
        Call C{write()}, which writes bytes (at least one) into this
        channel's transport, and learn when they have left it.

        @return: a Deferred that fires (with None) once the transport holds
            nothing more to send, every byte written so far being in the
            kernel; it fails with L{NotDrainable} when the transport cannot
            tell (C{write} is not called then), or with what C{write} raised.
        """


class NotDrainable(Exception):
    """The transport cannot tell when it has drained (see L{IDrainingChannel})."""


@implementer(IDrainingChannel)
class DrainingChannelMixin:
    """
    L{IDrainingChannel} for a C{twisted.web.http.HTTPChannel} subclass: put
    it before HTTPChannel in the bases. See the module docstring.
    """

    _transport_full = False
    _drain_waiters = None

    def write_drained(self, write):
        transport = self.transport
        if (
            transport is None
            # HTTPChannel registers itself as its transport's streaming
            # producer when connected; a transport that did not take it
            # (or pauses someone else) cannot tell us anything.
            or getattr(transport, "producer", None) is not self
            or not getattr(transport, "connected", False)
            or getattr(transport, "disconnecting", True)
            or not hasattr(transport, "bufferSize")
        ):
            return defer.fail(NotDrainable("the transport does not pause this channel"))
        if self._drain_waiters is None:
            self._drain_waiters = Waiters()
        waiter = self._drain_waiters.wait()
        previous = transport.bufferSize
        transport.bufferSize = 0
        try:
            write()
        except BaseException:
            self._drain_waiters.fail(Failure())
            return waiter
        finally:
            transport.bufferSize = previous
        if not self._transport_full:
            # Nothing was written (or the transport is gone): no resume will come.
            self._drain_waiters.fail(Failure(NotDrainable("nothing was written to the transport")))
        return waiter

    def pauseProducing(self):
        # The transport's buffer is over its bufferSize.
        self._transport_full = True
        super().pauseProducing()

    def resumeProducing(self):
        # The transport's buffer is empty (FileDescriptor.doWrite).
        self._transport_full = False
        super().resumeProducing()
        if self._drain_waiters:
            self._drain_waiters.fire(None)

    def connectionLost(self, reason):
        try:
            super().connectionLost(reason)
        finally:
            if self._drain_waiters:
                self._drain_waiters.fail(reason)
