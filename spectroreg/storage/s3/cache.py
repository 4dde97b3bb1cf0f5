"""
What one S3 driver remembers between requests, shared by the driver and its
writers: one object, bounded, never the only copy of anything.

- Sizes of objects this process just wrote: the move that publishes an
  upload then needs no HEAD to choose between CopyObject and a multipart
  copy.
- Multipart uploads this process left in flight (``inflight.py``): their
  id, parts and the bytes of a last part smaller than S3's 5 MiB minimum.
  A writer continuing such a file asks S3 for the parts anyway (another
  server may have continued it); when S3 lists exactly these parts, the
  small last part is sent again with the new bytes appended instead of
  completing and restarting the upload, and the upload id saves the listing
  of multipart uploads.

Everything here is checked against S3 before it is relied on, so a cache
emptied at any moment (a restart, another server's writes) costs requests,
never data.
"""

from spectroreg.bounded import LRU

SIZES = 1000
UPLOADS = 1000
# Tail bytes kept at most over all remembered uploads.
TAIL_BYTES = 16 * 1024 * 1024


class InFlight:
    """
    A multipart upload as this process left it.

    @ivar upload_id: the S3 upload id.
    @ivar parts: C{((number, etag, size), ...)} in part order.
    @ivar tail: the bytes of the last part when it is below 5 MiB, else b"".
    """

    __slots__ = ("upload_id", "parts", "tail")

    def __init__(self, upload_id, parts, tail=b""):
        self.upload_id = upload_id
        self.parts = tuple(parts)
        self.tail = bytes(tail)


class S3Cache:
    """The driver's memory: sizes of written objects and uploads in flight."""

    def __init__(self, sizes=SIZES, uploads=UPLOADS, tail_bytes=TAIL_BYTES):
        self._sizes = LRU(sizes)
        self._uploads = LRU(uploads)
        self._tail_bytes = tail_bytes

    # committed objects

    def remember_size(self, key, size):
        self._sizes.put(key, size)

    def size_of(self, key):
        return self._sizes.get(key)

    # uploads in flight

    def remember_upload(self, key, inflight):
        self._uploads.put(key, inflight)
        total = 0
        for cached_key, cached in reversed(self._uploads.items()):
            total += len(cached.tail)
            if total > self._tail_bytes:
                self._uploads.pop(cached_key)

    def upload_of(self, key):
        """The L{InFlight} this process left on C{key}, or None."""
        return self._uploads.get(key)

    def forget(self, key):
        """C{key} changed: nothing remembered about it holds."""
        self._sizes.pop(key, None)
        self._uploads.pop(key, None)

    def tail_bytes(self):
        return sum(len(inflight.tail) for _, inflight in self._uploads.items())
