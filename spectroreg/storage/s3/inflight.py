"""
An unfinished file on S3, kept exactly as Distribution 2.8's s3-aws driver
keeps it, so an upload moves between spectroreg and Distribution sharing a
bucket.

The bytes written so far are the parts of an S3 multipart upload on the
file's own key: the first upload ListMultipartUploads shows for exactly that
key (the oldest), its parts as ListParts shows them, the file's size the sum
of their sizes. Nothing else: no object of our own beside it.

- Closing a writer sends what it holds as a part, however small. S3 only
  completes an upload whose parts are all at least 5 MiB but the last, so a
  writer continuing a file whose last part is smaller first completes the
  upload (the key then holds the bytes so far as an object) and starts a new
  one whose first part is that object: copied on the server (UploadPartCopy)
  from 5 MiB, read back below. Distribution does the same; spectroreg skips
  it when it wrote that small part itself and S3 still lists it unchanged
  (``cache.py``): it sends the part again, same number, with the new bytes
  appended.
- Committing completes the upload: the object appears at the key.
- Parts S3 lists after a gap in the numbering, or after a small part, were
  left by a writer cut in the middle (parts go up several at a time); they
  are not part of the file. The next writer restarts the upload from the
  parts before them, which drops them.
"""

from spectroreg.storage.s3.errors import S3Error

MIN_PART = 5 * 1024 * 1024


class Found:
    """
    The upload in flight on a key.

    @ivar upload_id: its id.
    @ivar listed: every part S3 lists, C{[(number, etag, size)]} in order.
    @ivar parts: the file's parts (L{file_parts} of C{listed}).
    @ivar initiated: POSIX time the upload started, or None when not asked.
    """

    def __init__(self, upload_id, listed, initiated=None):
        self.upload_id = upload_id
        self.listed = sorted(listed)
        self.parts = file_parts(self.listed)
        self.initiated = initiated

    @property
    def size(self):
        return sum(size for _, _, size in self.parts)

    @property
    def clean(self):
        """Whether S3 lists nothing but the file's parts."""
        return len(self.parts) == len(self.listed)


def file_parts(listed):
    """The parts numbered 1, 2, ... with every part but the last at least 5 MiB."""
    parts = []
    for number, etag, size in sorted(listed):
        if number != len(parts) + 1 or (parts and parts[-1][2] < MIN_PART):
            break
        parts.append((number, etag, size))
    return parts


def same_parts(a, b):
    """Whether two part lists name the same bytes (ETags compared unquoted)."""
    return len(a) == len(b) and all(
        n1 == n2 and s1 == s2 and e1.strip('"') == e2.strip('"')
        for (n1, e1, s1), (n2, e2, s2) in zip(a, b))


def _no_such_upload(error):
    return isinstance(error, S3Error) and (error.code == "NoSuchUpload" or error.status == 404)


async def find(client, key, path, upload_id=None):
    """
    The upload in flight on C{key}, or None: with C{upload_id} (one this
    process left there) a ListParts only, unless S3 no longer has it; else
    ListMultipartUploads and ListParts, as Distribution does.

    @return: a L{Found} or None.
    """
    if upload_id is not None:
        try:
            return Found(upload_id, await client.list_parts(key, upload_id, path))
        except S3Error as error:
            if not _no_such_upload(error):
                raise
    for name, found_id, initiated in await client.list_multipart_uploads(key, path):
        if name == key:
            return Found(found_id, await client.list_parts(key, found_id, path), initiated)
    return None


async def abort_all(client, key, path, keep=None):
    """Abort every upload in flight on C{key} (but C{keep}). @return: how many."""
    aborted = 0
    for name, upload_id, _ in await client.list_multipart_uploads(key, path):
        if name == key and upload_id != keep:
            await client.abort_multipart(key, upload_id, path)
            aborted += 1
    return aborted
