"""Test helpers over the registry's stores (spectroreg.registry)."""

import hashlib
import json

from spectroreg.registry import manifests as mf
from spectroreg.registry.digests import digest_of, parse_digest


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


def sha(data):
    """The parsed sha256 digest of C{data}."""
    return parse_digest("sha256:" + hashlib.sha256(data).hexdigest())


def manifest_body(config, layers, **extra):
    """An OCI image manifest (bytes) for a config blob and layer blobs, plus C{extra} fields."""
    document = {
        "schemaVersion": 2,
        "mediaType": mf.OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": str(sha(config)),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": str(sha(layer)),
                    "size": len(layer)} for layer in layers],
    }
    document.update(extra)
    return json.dumps(document).encode("utf-8")
