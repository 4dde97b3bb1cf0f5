"""
File bytes straight from the page cache to a plain TCP socket: ``sendfile(2)``.

A blob download through L{spectroreg.storage._producer.ChunkProducer} copies
every byte from the kernel into Python (a thread-pool read), then back into
the kernel (the transport's ``send``). For a response that goes out on a
plain TCP connection the kernel can do it alone: L{SendfileProducer} calls
``os.sendfile(socket, file, offset, count)`` on the reactor thread whenever
the socket is writable, and Python only counts bytes.

When it is used (L{sendfile_transport}): the consumer is a twisted.web
request whose connection is a plain TCP transport (not TLS, not HTTP/2, not
an in-memory test transport) under a channel that tells when the transport
has drained, with a Content-Length and nothing written yet. Everything else keeps the streaming producer.

How it keeps its promises:

- Nothing blocks the reactor. The socket is non-blocking: ``sendfile`` sends
  what fits in the socket buffer and returns (a partial send), or fails with
  ``EAGAIN``; the producer then waits for writability, as a reactor writer on
  a duplicate of the socket's descriptor (the transport keeps its own
  registration, and the duplicate keeps the socket alive even if the
  connection is closed while a read of the file is in a thread). Before file
  bytes are sent from the reactor thread, L{resident} asks the kernel
  (``mincore(2)`` on a mapping of the next window, no page touched) whether
  they are all in the page cache; if not, the window is read into the cache
  in the thread pool first, then sent.
- Bytes never interleave: the response headers go through the request (and
  the transport's buffer) as usual, and the first ``sendfile`` waits until
  the channel says they have all left the transport
  (L{spectroreg.web.drain.IDrainingChannel}, public Twisted API only).
- Memory stays flat: a client that stops reading leaves the socket
  unwritable and the producer idle; nothing is buffered in Python.
- A file replaced or deleted during the download: the producer sends from the
  descriptor it opened, so the client receives the old content whole (the
  registry publishes and deletes with rename and unlink, never rewriting a
  file in place). A file truncated in place under it ends the response
  short: the connection is closed, so the client sees fewer bytes than
  Content-Length, never bytes from another file.
"""

import ctypes
import errno
import os
import socket

from twisted.internet import defer, tcp
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IPushProducer, ISSLTransport, IWriteDescriptor
from twisted.python.failure import Failure
from zope.interface import implementer

from spectroreg.storage._producer import settle
from spectroreg.storage.errors import StorageError
from spectroreg.web.drain import IDrainingChannel, NotDrainable

# Bytes checked for residence (and, if missing, read into the cache by a
# thread) at a time.
WINDOW = 4 * 1024 * 1024
# Buffer a thread reads a missing window through.
_WARM_CHUNK = 256 * 1024
# sendfile calls per writability event before other connections get a turn.
_CALLS_PER_TURN = 16

_PROT_READ = 0x1
_MAP_SHARED = 0x01
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
# The connection is gone: the client hung up or reset.
_GONE = frozenset([errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.ESHUTDOWN])


def _load_mincore():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        mmap_, munmap, mincore = libc.mmap, libc.munmap, libc.mincore
    except (OSError, AttributeError):
        return None
    mmap_.restype = ctypes.c_void_p
    mmap_.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
    munmap.restype = ctypes.c_int
    munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    mincore.restype = ctypes.c_int
    mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    failed = ctypes.c_void_p(-1).value

    def resident(fd, offset, length):
        start = offset - offset % _PAGE
        size = offset + length - start
        if size <= 0:
            return True
        address = mmap_(None, size, _PROT_READ, _MAP_SHARED, fd, start)
        if address is None or address == failed:
            return False
        try:
            pages = (size + _PAGE - 1) // _PAGE
            vector = (ctypes.c_ubyte * pages)()
            if mincore(address, size, vector) != 0:
                return False
            # Bit 0: the page is resident.
            return not any(byte & 1 == 0 for byte in bytes(vector))
        finally:
            munmap(address, size)

    return resident


_resident = _load_mincore() if hasattr(os, "sendfile") else None


def resident(fd, offset, length):
    """
    Whether bytes C{offset} to C{offset + length} of the open file C{fd} are
    all in the page cache (so sending them cannot wait for the disk). False
    whenever it cannot tell.
    """
    if _resident is None:
        return False
    try:
        return _resident(fd, offset, length)
    except (OSError, ValueError, OverflowError):
        return False


def available():
    """Whether this system offers what L{SendfileProducer} needs."""
    return _resident is not None


def sendfile_transport(consumer):
    """
    The plain TCP transport under C{consumer} (a twisted.web request) when
    its response body may be sent with L{SendfileProducer}; else None.
    """
    if _resident is None:
        return None
    channel = getattr(consumer, "channel", None)
    transport = getattr(channel, "transport", None)
    if not isinstance(transport, tcp.Connection):
        return None  # TLS (a protocol wrapper), HTTP/2 stream, test transport
    if ISSLTransport.providedBy(transport) or getattr(transport, "TLS", False):
        return None
    if getattr(transport, "disconnecting", True) or getattr(transport, "disconnected", True):
        return None
    if not IDrainingChannel.providedBy(channel) or getattr(transport, "producer", None) is not channel:
        return None  # nothing would tell when the response headers are out
    if getattr(consumer, "startedWriting", True) or getattr(consumer, "method", b"GET") == b"HEAD":
        return None
    headers = getattr(consumer, "responseHeaders", None)
    if headers is None or not headers.hasHeader(b"content-length"):
        return None  # chunked framing: the body must pass through the request
    try:
        handle = transport.getHandle()
    except Exception:
        return None
    if not isinstance(handle, socket.socket) or handle.type != socket.SOCK_STREAM:
        return None
    return transport


@implementer(IPushProducer, IWriteDescriptor)
class SendfileProducer:
    """
    Sends C{length} bytes of the open file C{fd} from C{offset} to the
    request's socket; see the module docstring.

    @param request: the consumer (a twisted.web request), checked with
        L{sendfile_transport}.
    @param transport: what L{sendfile_transport} returned.
    @param close: releases C{fd}; called once, at the end.
    @param run_in_thread: C{run_in_thread(function, *args)} -> Deferred: the
        driver's thread pool, for windows not in the page cache.
    @ivar deferred: as L{spectroreg.storage._producer.ChunkProducer}'s: the
        number of bytes sent; L{ConnectionDone} when the client went away;
        L{StorageError} when the file ended early (the connection is then
        closed: the response is cut, never padded or mixed).
    """

    def __init__(self, request, transport, fd, offset, length, close, run_in_thread,
                 reactor, path=None, window=WINDOW):
        self._request = request
        self._transport = transport
        self._fd = fd
        self._offset = offset
        self._remaining = length
        self._close = close
        self._run_in_thread = run_in_thread
        self._reactor = reactor
        self._path = path
        self._window = window
        self._socket = -1
        self._checked_end = offset  # bytes before it were found resident
        self._writing = False
        self._warming = False
        self._paused = False
        self._headers_sent = False
        self._done = False
        self.written = 0
        self.deferred = defer.Deferred()

    def start(self):
        """Register, send the response headers, start sending. @return: L{deferred}."""
        try:
            self._request.registerProducer(self, True)
        except Exception:
            self._end(Failure(), unregister=False)
            return self.deferred
        try:
            self._socket = os.dup(self._transport.getHandle().fileno())
            os.set_blocking(self._socket, False)
        except Exception:
            self._end(Failure())
            return self.deferred
        # The headers go through the transport; the body follows once they
        # have all left it, so the two never interleave.
        drained = self._request.channel.write_drained(lambda: self._request.write(b""))
        drained.addCallbacks(self._headers_out, self._headers_failed)
        return self.deferred

    # IPushProducer

    def pauseProducing(self):
        self._paused = True
        self._not_writable()

    def resumeProducing(self):
        if self._done:
            return
        self._paused = False
        self._want_writable()

    def stopProducing(self):
        # The client went away; a window read in a thread still uses the
        # file, which is released when it returns.
        self._end(Failure(ConnectionDone("consumer stopped the read")), unregister=False)

    # IWriteDescriptor

    def fileno(self):
        return self._socket

    def logPrefix(self):
        return "SendfileProducer"

    def connectionLost(self, reason):
        self._end(Failure(ConnectionDone("connection lost")), unregister=False)

    def doWrite(self):
        if self._done or self._paused or self._warming or not self._headers_sent:
            self._not_writable()
            return None
        for _ in range(_CALLS_PER_TURN):
            if self._offset >= self._checked_end:
                end = self._offset + min(self._remaining, self._window)
                if not resident(self._fd, self._offset, end - self._offset):
                    self._warm(end)
                    return None
                self._checked_end = end
            count = min(self._remaining, self._checked_end - self._offset)
            try:
                sent = os.sendfile(self._socket, self._fd, self._offset, count)
            except BlockingIOError:
                return None
            except InterruptedError:
                continue
            except OSError as error:
                if error.errno in _GONE:
                    self._end(Failure(ConnectionDone("client went away")))
                else:
                    self._cut(StorageError("sendfile failed: {}".format(error.strerror), self._path))
                return None
            if sent == 0:
                # The file is shorter than when it was opened.
                self._cut(StorageError("file shrank during the download", self._path))
                return None
            self._offset += sent
            self._remaining -= sent
            self.written += sent
            self._request.sentLength = getattr(self._request, "sentLength", 0) + sent
            if self._remaining == 0:
                self._end(None)
                return None
        return None

    # internals

    def _headers_out(self, _):
        if self._done:
            return
        self._headers_sent = True
        if self._remaining == 0:
            self._end(None)
        else:
            self._want_writable()

    def _headers_failed(self, failure):
        if self._done:
            return
        if failure.check(NotDrainable):
            self._cut(StorageError("response headers not sent: {}".format(failure.getErrorMessage()), self._path))
        else:
            self._end(Failure(ConnectionDone("connection lost before the body")))

    def _want_writable(self):
        if not (self._writing or self._done or self._paused or self._warming or not self._headers_sent):
            self._writing = True
            self._reactor.addWriter(self)

    def _not_writable(self):
        if self._writing:
            self._writing = False
            self._reactor.removeWriter(self)

    def _warm(self, end):
        """Read bytes up to C{end} into the page cache in a thread, then send them."""
        self._not_writable()
        self._warming = True
        d = self._run_in_thread(_read_into_cache, self._fd, self._offset, end - self._offset)
        d.addCallbacks(self._warmed, self._warm_failed, callbackArgs=(end,))

    def _warmed(self, _, end):
        self._warming = False
        if self._done:
            self._release()
            return
        # Sent without a second look: were they evicted meanwhile, a send
        # reads them again rather than looping on the cache.
        self._checked_end = end
        self._want_writable()

    def _warm_failed(self, failure):
        self._warming = False
        if self._done:
            self._release()
            return
        self._cut(StorageError("read failed: {}".format(failure.getErrorMessage()), self._path))

    def _cut(self, error):
        """End with C{error}, closing the connection: the response is incomplete."""
        try:
            self._transport.loseConnection()
        except Exception:
            pass
        self._end(Failure(error))

    def _release(self):
        if self._fd is not None:
            self._fd = None
            try:
                self._close()
            except Exception:
                pass

    def _end(self, failure, unregister=True):
        if self._done:
            return
        self._done = True
        self._not_writable()
        if self._socket >= 0:
            try:
                os.close(self._socket)
            except OSError:
                pass
            self._socket = -1
        if not self._warming:  # else when the thread is done with the file
            self._release()
        if unregister:
            try:
                self._request.unregisterProducer()
            except Exception:
                pass
        settle(self.deferred, self.written, failure, self._path)


def _read_into_cache(fd, offset, length):
    """Read (and drop) C{length} bytes from C{offset}: blocking, for a thread."""
    buffer = bytearray(min(length, _WARM_CHUNK))
    end = offset + length
    while offset < end:
        view = memoryview(buffer)[:min(len(buffer), end - offset)]
        count = os.preadv(fd, [view], offset)
        if count == 0:
            return
        offset += count
