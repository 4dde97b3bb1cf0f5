"""Test helpers over the registry's stores (spectroreg.registry)."""

from spectroreg.registry.digests import digest_of


async def put_blob(registry, name, digest, data):
    """
    Push small content C{data} as blob C{digest} into repository C{name}
    through an upload, as a client does.

    @return: L{spectroreg.registry.BlobDescriptor}.
    """
    if digest_of(data, digest.algorithm) != digest:
        raise ValueError("digest {} does not match the content".format(digest))
    upload_id = await registry.uploads.start(name)
    writer = await registry.uploads.open(name, upload_id)
    try:
        await writer.write(data)
    except BaseException:
        await writer.cancel()
        raise
    return await writer.commit(digest)


async def finish_upload(registry, name, upload_id, digest):
    """Commit what upload C{upload_id} holds as blob C{digest}, as a PUT without a body does."""
    writer = await registry.uploads.open(name, upload_id)
    return await writer.commit(digest)
