"""
Where an unfinished S3 upload keeps its state: one small object in the bucket.

A file being written is an S3 multipart upload on the file's own key
(``<key>``). S3 only accepts parts of at least 5 MiB (but the last), so when
a writer closes with fewer bytes than that not yet sent, they cannot become
a part; they go, together with the upload id and the list of parts, into a
state object next to the data::

    <key>~upload        e.g. docker/registry/v2/repositories/r/_uploads/<uuid>/data~upload

``~`` never appears in a storage path (``[A-Za-z0-9._-]``), so the state
object can never be mistaken for a file (and, being unreserved in URLs, it
is never percent-encoded, so every S3 implementation signs it alike): the driver hides it from ``list``,
``walk`` and ``stat`` (and deletes it with its directory). Distribution
ignores it: its upload purging deletes the whole ``_uploads/<uuid>``
directory, and nothing else of Distribution looks below an upload. The
state object is deleted when the file is committed or cancelled.

Any daemon sharing the bucket can continue the file: it reads the state
object, and carries on with the same multipart upload.

Format: a first line ``spectroreg-s3-upload 1``, a JSON line
``{"upload_id": ..., "parts": [[number, etag, size], ...], "size": N,
"tail": T}``, then the T tail bytes. The logical file size is also in the
object's ``x-amz-meta-spectroreg-size`` metadata, so ``stat`` can answer
with a HEAD.
"""

import json

STATE_SUFFIX = "~upload"
SIZE_HEADER = "x-amz-meta-spectroreg-size"
_MAGIC = b"spectroreg-s3-upload 1\n"


def state_key(key):
    return key + STATE_SUFFIX


def is_hidden(key):
    """Whether C{key} is driver bookkeeping rather than a file."""
    return "~" in key.rsplit("/", 1)[-1]


class UploadState:
    """
    @ivar upload_id: the multipart upload, or None when no part was sent yet.
    @ivar parts: C{[(number, etag, size)]} in part order.
    @ivar tail: bytes after the last part.
    """

    def __init__(self, upload_id=None, parts=(), tail=b""):
        self.upload_id = upload_id
        self.parts = list(parts)
        self.tail = bytes(tail)

    @property
    def size(self):
        return sum(size for _, _, size in self.parts) + len(self.tail)

    def encode(self):
        header = json.dumps({
            "upload_id": self.upload_id,
            "parts": [[number, etag, size] for number, etag, size in self.parts],
            "size": self.size,
            "tail": len(self.tail),
        }, separators=(",", ":")).encode("utf-8")
        return _MAGIC + header + b"\n" + self.tail

    @classmethod
    def decode(cls, data):
        """@raise ValueError: C{data} is not a state object."""
        if not data.startswith(_MAGIC):
            raise ValueError("not a spectroreg upload state object")
        header, newline, tail = data[len(_MAGIC):].partition(b"\n")
        if not newline:
            raise ValueError("truncated upload state object")
        fields = json.loads(header.decode("utf-8"))
        if len(tail) != fields["tail"]:
            raise ValueError("upload state object has {} tail bytes, expected {}".format(
                len(tail), fields["tail"]))
        parts = [(int(n), str(etag), int(size)) for n, etag, size in fields["parts"]]
        state = cls(fields.get("upload_id"), parts, tail)
        if state.size != fields["size"]:
            raise ValueError("upload state object is inconsistent")
        return state
