"""
The storage driver contract.

A driver is dumb: it knows paths and bytes, nothing about blobs, tags or
uploads (that is ``spectroreg.registry``'s job). Every operation returns a
``Deferred`` and must never block the reactor thread.

Paths are absolute, ``/``-separated and match ``^(/[A-Za-z0-9._-]+)+$``
(``/`` itself is accepted where a directory is meant: ``list``, ``walk``,
``stat``, ``delete``). ``spectroreg.storage.base.ValidatingDriver`` checks
them before a driver sees them, so drivers may assume valid paths.

Errors (``spectroreg.storage.errors``) are the only failures a caller has
to understand: ``PathNotFound``, ``InvalidPath``, ``InvalidOffset``,
``Unsupported``; anything else is a ``StorageError`` (an I/O failure the
caller reports as a server error or retries).
"""

from zope.interface import Attribute, Interface


class FileInfo:
    """
    What ``stat`` knows about a path.

    @ivar path: the path asked for.
    @ivar size: size in bytes (0 for a directory).
    @ivar modified: modification time, POSIX seconds (float).
    @ivar is_dir: whether the path is a directory (a common prefix on S3).
    """

    __slots__ = ("path", "size", "modified", "is_dir")

    def __init__(self, path, size, modified, is_dir):
        self.path = path
        self.size = size
        self.modified = modified
        self.is_dir = is_dir

    def __repr__(self):
        return "FileInfo(path={!r}, size={!r}, modified={!r}, is_dir={!r})".format(
            self.path, self.size, self.modified, self.is_dir
        )

    def __eq__(self, other):
        if not isinstance(other, FileInfo):
            return NotImplemented
        return (self.path, self.size, self.modified, self.is_dir) == (
            other.path,
            other.size,
            other.modified,
            other.is_dir,
        )


class IFileWriter(Interface):
    """
    An append-only writer on one path, obtained from ``IStorageDriver.writer``.

    Data written is not visible at the path through ``get_content``/``read``
    until ``commit()`` has fired (a driver may make it visible earlier, but
    callers never rely on it; the registry only ever writes uploads through
    writers and publishes blobs with ``move``).

    Exactly one of ``commit``, ``close`` or ``cancel`` ends a writer; after
    that every call fails with ``StorageError``.
    """

    size = Attribute(
        "Bytes in the file so far: what was there when the writer was opened "
        "(for append) plus every byte accepted by write()."
    )

    def write(data):
        """
        Append C{data} (bytes).

        @return: a Deferred that fires (with None) when the writer is ready
            for more. Callers write again only after it fired: this is the
            back-pressure that keeps memory flat while a slow backend catches
            up. A driver may buffer up to its own bound before firing.
        """

    def close():
        """
        Persist what was written so far and release resources, leaving the
        file open for a later ``writer(path, append=True)`` (a resumable
        upload), from this process or another one sharing the storage.

        @return: Deferred firing with None.
        """

    def cancel():
        """
        Abandon the file: everything written through this writer and before
        it is removed. @return: Deferred firing with None.
        """

    def commit():
        """
        Flush and finish the file: afterwards it is a complete, durable
        object at its path, readable by ``read``/``get_content``/``stat``.
        @return: Deferred firing with None.
        """


class IHashingWriter(IFileWriter):
    """
    An L{IFileWriter} that can feed what it writes to a hash as it goes,
    where the bytes already are (the filesystem writer: in the thread that
    writes them), instead of its caller hashing on the reactor thread.
    """

    def hash_with(hasher):
        """
        From now on, update C{hasher} (``hashlib``-like: ``update(bytes)``)
        with every byte written, in order, before it reaches storage. The
        hash covers all of them once ``close``/``commit``/``cancel`` fired
        (a failed write leaves it undefined).

        @return: True when the writer took the hasher; False when it cannot
            (the caller then hashes itself).
        """


class IStorageDriver(Interface):
    """
    Byte storage addressed by path; see the module docstring for the rules.
    """

    name = Attribute("The driver's name as in the config: 'inmemory', 'filesystem', 's3'.")

    def get_content(path):
        """
        Read a small file (links, tags, manifests) whole.

        @return: Deferred firing with bytes; fails with PathNotFound.
        """

    def put_content(path, content, durable=True):
        """
        Write a small file whole, atomically: a reader sees the old content or
        the new one, never a mix, never a partial file, even after a crash.
        Missing parent directories are created.

        @param durable: False for content a power loss may take away (the
            file and the directory entry holding it; nothing above): a
            driver may then skip flushing it to disk. Drivers that store
            every write durably ignore it.
        @return: Deferred firing with None.
        """

    def read(path, consumer, offset=0, length=None):
        """
        Stream the file's bytes from C{offset} (at most C{length} of them, or
        to the end) into C{consumer}, an L{twisted.internet.interfaces.IConsumer}
        such as a twisted.web request.

        The driver registers a push producer (streaming=True) on the consumer
        for the duration, honours pauseProducing/resumeProducing (so a slow
        client keeps memory flat) and stopProducing (the client went away:
        stop reading, release the file, and fail the Deferred with
        L{twisted.internet.error.ConnectionDone} or similar), and unregisters
        the producer when done. It does not call consumer.finish().

        @return: Deferred firing with the number of bytes written to the
            consumer; fails with PathNotFound, or InvalidOffset when C{offset}
            is past the end (offset == size is valid and writes nothing).
        """

    def writer(path, append=False, durable=True):
        """
        Open an IFileWriter on C{path}. With C{append=False} any existing file
        is truncated; with C{append=True} writing continues after the bytes a
        previous writer closed (``close()``) there, and PathNotFound is
        raised if there is nothing to append to. C{durable}: as for
        L{put_content}, for what this writer writes and creates. A driver
        may create or open the file with the first write or at the end
        (S3 stores nothing before; the filesystem opens it in the same
        trip to the disk as the first write): errors doing so then fail
        that write, C{close}, C{commit} or C{cancel}.

        @return: Deferred firing with an IFileWriter.
        """

    def stat(path):
        """
        @return: Deferred firing with a L{FileInfo}; fails with PathNotFound.
        """

    def list(path):
        """
        The direct children of a directory, as full paths, sorted.

        @return: Deferred firing with a list of str; fails with PathNotFound
            if C{path} does not exist or is not a directory ('/' on an empty
            store lists as []).
        """

    def move(source, destination):
        """
        Move a file, replacing C{destination} atomically if it exists (the
        registry publishes blobs this way: a reader sees no blob or the whole
        blob). Parents of C{destination} are created.

        @return: Deferred firing with None; fails with PathNotFound.
        """

    def delete(path):
        """
        Delete a file, or a directory and everything below it.

        @return: Deferred firing with None; fails with PathNotFound.
        """

    def redirect_url(path, method="GET"):
        """
        A URL a client may fetch the file from directly (S3 presigned URL).

        @return: Deferred firing with a str, or None when the driver serves
            no redirects (local drivers, or redirects disabled).
        """

    def close():
        """
        Release what the driver holds (thread pools, pooled connections,
        pending background work) when the daemon stops. Nothing stored is
        lost by not calling it.

        @return: Deferred firing with None.
        """

    def walk(path, visit):
        """
        Visit every file and directory below C{path}, depth first, parents
        before children, children in sorted order.

        @param visit: called with a L{FileInfo} per entry; may return a
            Deferred, which is waited for. Returning L{SKIP_DIR} (or a
            Deferred firing with it) for a directory skips its contents.
        @return: Deferred firing with None when done; fails with PathNotFound.
        """


SKIP_DIR = object()
