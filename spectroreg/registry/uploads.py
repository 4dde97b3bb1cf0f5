"""
Upload plumbing: the writer that appends to an upload while hashing it,
hashing stored data back when the in-memory hash state is gone, and the
RFC 3339 timestamps of ``startedat``.
"""

import datetime

from twisted.internet.interfaces import IConsumer
from twisted.logger import Logger
from zope.interface import implementer

from spectroreg.logging import debug_enabled
from spectroreg.registry.digests import CANONICAL, Digest
from spectroreg.storage.interfaces import IHashingWriter

log = Logger()


def debug_upload_state(name, upload_id, state, size=None):
    """A debug line for a change of an upload's state (C{size}: bytes held, if known)."""
    if debug_enabled():
        log.debug("upload {upload_id} in {name}: {state}{at}", name=name, upload_id=upload_id,
                  state=state, at="" if size is None else " at {} bytes".format(size))


def format_rfc3339(when):
    """As Distribution writes ``startedat``: Go's RFC 3339, UTC, whole seconds."""
    return datetime.datetime.fromtimestamp(when, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text):
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # Go writes up to nanoseconds; Python parses up to microseconds.
    if "." in text:
        head, rest = text.split(".", 1)
        digits = ""
        while rest and rest[0].isdigit():
            digits += rest[0]
            rest = rest[1:]
        text = "{}.{}{}".format(head, (digits + "000000")[:6], rest)
    parsed = datetime.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.timestamp()


@implementer(IConsumer)
class HashingConsumer:
    """Consumes a driver read, hashing and counting."""

    def __init__(self, hasher):
        self.hasher = hasher
        self.size = 0
        self.producer = None

    def registerProducer(self, producer, streaming):
        self.producer = producer
        if not streaming:
            # A pull producer wants to be asked.
            self._pull = True
            producer.resumeProducing()

    def unregisterProducer(self):
        self.producer = None

    def write(self, data):
        self.hasher.update(data)
        self.size += len(data)
        if self.producer is not None and getattr(self, "_pull", False):
            self.producer.resumeProducing()


class UploadWriter:
    """
    Appends to one upload's ``data``, hashing (sha256) on the way.

    Obtained from L{Registry.open_upload}; ended by ``close()`` (keep the
    upload resumable) or handed to L{Registry.finish_upload}.
    """

    def __init__(self, registry, name, upload_id, writer, hasher, lock):
        self._registry = registry
        self.name = name
        self.upload_id = upload_id
        self._writer = writer
        self._hasher = hasher
        self._lock = lock
        self.start = writer.size
        self.open = True
        # A writer that hashes where it writes (the filesystem's, in its
        # thread) takes the hashing off the reactor thread.
        self._hash_here = not (hasher is not None and IHashingWriter.providedBy(writer)
                               and writer.hash_with(hasher))
        debug_upload_state(name, upload_id, "opened for appending", self.start)

    @property
    def size(self):
        return self._writer.size

    def write(self, data):
        """@return: Deferred firing when more may be written (back-pressure)."""
        if self._hasher is not None and self._hash_here:
            self._hasher.update(data)
        d = self._writer.write(data)
        d.addErrback(self._write_failed)
        return d

    def _write_failed(self, failure):
        # The hash now covers bytes storage may not hold: recompute later.
        self._hasher = None
        return failure

    async def close(self):
        """Persist what was written; the upload stays resumable."""
        if not self.open:
            return
        self.open = False
        try:
            await self._writer.close()
            self._registry._remember_hash(self.name, self.upload_id, self._writer.size, self._hasher)
            debug_upload_state(self.name, self.upload_id, "closed, resumable", self._writer.size)
        except Exception:
            self._registry._forget_hash(self.name, self.upload_id)
            raise
        finally:
            self._lock.release()

    async def _commit(self):
        self.open = False
        try:
            await self._writer.commit()
            debug_upload_state(self.name, self.upload_id, "complete", self._writer.size)
            return self._writer.size, self._hasher
        finally:
            self._lock.release()

    async def _cancel(self):
        self.open = False
        try:
            await self._writer.cancel()
            debug_upload_state(self.name, self.upload_id, "cancelled", self._writer.size)
        finally:
            self._lock.release()


class LockReleaser:
    """Releases an upload lock once, dropping it when nobody waits."""

    def __init__(self, registry, name, upload_id, lock):
        self._args = (registry, name, upload_id, lock)
        self._done = False

    def release(self):
        if not self._done:
            self._done = True
            registry, name, upload_id, lock = self._args
            registry._release_lock(name, upload_id, lock)




def digest_hasher():
    """A fresh hasher of the canonical algorithm (the in-memory fast path)."""
    return Digest(CANONICAL, "0" * 64).hasher()
