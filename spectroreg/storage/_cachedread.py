"""
Reads of an open file for the streaming producer: from the page cache on the
reactor thread, from the disk in the thread pool.

A download that cannot be sent by the kernel (TLS: the bytes must be
encrypted in this process) streams through
L{spectroreg.storage._producer.ChunkProducer}. Handing every chunk of a blob
in the page cache to a thread and back costs two thread switches and a
Deferred per chunk, and leaves the socket idle while the thread runs (the
producer is resumed only once the transport's buffer is empty). Bytes the
kernel says are resident (``mincore(2)``, see L{resident}) cannot make a
read wait for the disk, so they are read with ``pread`` right away; a window
that is not resident is read in the pool, as before.
"""

import os

from spectroreg.storage._sendfile import WINDOW, resident


class CachedReads:
    """
    C{read_chunk(wanted)} for L{ChunkProducer} over the open descriptor
    C{fd}, from C{offset} up to at most C{limit}: bytes, or a Deferred of
    bytes from C{run_in_thread}.

    @param run_in_thread: C{run_in_thread(function, *args)} -> Deferred, with
        the driver's error translation.
    @param window: bytes checked for residence at once.
    """

    def __init__(self, fd, offset, limit, run_in_thread, window=WINDOW):
        self._fd = fd
        self._limit = limit
        self._offset = offset
        self._run_in_thread = run_in_thread
        self._window = window
        self._checked_end = offset  # bytes before it were found resident
        self.direct = 0  # bytes read on the calling thread

    def __call__(self, wanted):
        offset = self._offset
        wanted = min(wanted, self._limit - offset)
        if wanted <= 0:
            return b""
        if offset + wanted > self._checked_end:
            # Never past the end: pages beyond it are never resident.
            end = min(offset + max(wanted, self._window), self._limit)
            if resident(self._fd, offset, end - offset):
                self._checked_end = end
        if offset + wanted <= self._checked_end:
            try:
                data = os.pread(self._fd, wanted, offset)
            except BlockingIOError:  # pragma: no cover - not for regular files
                data = None
            if data is not None:
                self._offset += len(data)
                self.direct += len(data)
                return data
        d = self._run_in_thread(os.pread, self._fd, wanted, offset)
        d.addCallback(self._advance)
        return d

    def _advance(self, data):
        self._offset += len(data)
        return data
