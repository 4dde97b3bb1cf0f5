"""
Container images built on disk, deterministically, in pure Python.

The integration tests need real images to push with skopeo: a multi-layer
image and a multi-architecture index. They are generated here from a seed
(same seed, same bytes, same digests) with no network, and written in the
two on-disk forms skopeo reads:

- an OCI image layout (``oci-layout``, ``index.json``, ``blobs/sha256/…``),
  read with ``skopeo copy oci:DIR:TAG …``;
- skopeo's ``dir:`` layout (``version``, ``manifest.json``, one file per
  blob named by its hex digest, ``<hex>.manifest.json`` per instance of a
  list), used for Docker schema 2 manifests and manifest lists.

``Image``/``Index`` know every digest they are made of, so a test can check
that exactly those bytes came back.
"""

import gzip
import hashlib
import io
import json
import os
import random
import tarfile

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

FLAVOURS = {
    "oci": (OCI_MANIFEST, OCI_INDEX, OCI_CONFIG, OCI_LAYER),
    "docker": (DOCKER_MANIFEST, DOCKER_LIST, DOCKER_CONFIG, DOCKER_LAYER),
}

DEFAULT_LAYER_SIZES = (64 * 1024, 512 * 1024, 1536 * 1024)
DEFAULT_PLATFORMS = (("linux", "amd64", None), ("linux", "arm64", None), ("linux", "arm", "v7"))


def sha256_digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value):
    """Stable JSON bytes: sorted keys, no spaces (a manifest's digest depends on them)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")


class Blob(object):
    """Bytes with their digest and the media type they are referenced with."""

    def __init__(self, data, media_type):
        self.data = data
        self.media_type = media_type
        self.digest = sha256_digest(data)
        self.size = len(data)

    def descriptor(self, **extra):
        descriptor = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        descriptor.update(extra)
        return descriptor

    def __repr__(self):
        return "<Blob {} {} bytes>".format(self.digest[:19], self.size)


def seeded_bytes(seed, size):
    """C{size} incompressible bytes, the same for the same (seed, size)."""
    generator = random.Random("{}:{}".format(seed, size))
    return generator.getrandbits(size * 8).to_bytes(size, "little") if size else b""


def layer_tar(seed, size):
    """An uncompressed tar holding one file of C{size} seeded bytes."""
    payload = seeded_bytes(seed, size)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        directory = tarfile.TarInfo("data")
        directory.type = tarfile.DIRTYPE
        directory.mode = 0o755
        directory.mtime = 1700000000
        tar.addfile(directory)
        info = tarfile.TarInfo("data/layer-{}.bin".format(seed))
        info.size = len(payload)
        info.mode = 0o644
        info.mtime = 1700000000
        tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def deterministic_gzip(data):
    """gzip with no name and a zero mtime, so the same input gives the same bytes."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=1) as f:
        f.write(data)
    return buffer.getvalue()


class _Manifested:
    """Something pushed as one manifest (C{self.manifest}, a L{Blob})."""

    @property
    def digest(self):
        return self.manifest.digest

    @property
    def media_type(self):
        return self.manifest.media_type


class Image(_Manifested):
    """One image: config, gzip layers and the manifest naming them."""

    def __init__(self, seed, layer_sizes=DEFAULT_LAYER_SIZES, flavour="oci",
                 os_name="linux", architecture="amd64", variant=None):
        manifest_type, _, config_type, layer_type = FLAVOURS[flavour]
        self.flavour = flavour
        self.platform = {"os": os_name, "architecture": architecture}
        if variant:
            self.platform["variant"] = variant
        self.layers = []
        diff_ids = []
        for number, size in enumerate(layer_sizes):
            tar = layer_tar("{}-{}".format(seed, number), size)
            diff_ids.append(sha256_digest(tar))
            self.layers.append(Blob(deterministic_gzip(tar), layer_type))
        config = {
            "architecture": architecture,
            "os": os_name,
            "created": "2026-01-01T00:00:00Z",
            "config": {"Env": ["SEED={}".format(seed)], "Cmd": ["/bin/true"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "layer {}".format(i)}
                        for i in range(len(layer_sizes))],
        }
        if variant:
            config["variant"] = variant
        self.config = Blob(canonical_json(config), config_type)
        manifest = {
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": self.config.descriptor(),
            "layers": [layer.descriptor() for layer in self.layers],
        }
        if flavour == "oci":
            manifest["annotations"] = {"org.opencontainers.image.title": "seed-{}".format(seed)}
        self.manifest = Blob(canonical_json(manifest), manifest_type)

    def blobs(self):
        """Config and layers (the manifest is not among them)."""
        return [self.config] + list(self.layers)

    def all_blobs(self):
        """Everything a registry stores for this image, the manifest included."""
        return self.blobs() + [self.manifest]


class Index(_Manifested):
    """A multi-architecture index (OCI) or manifest list (Docker) over several images."""

    def __init__(self, seed, platforms=DEFAULT_PLATFORMS, layer_sizes=(32 * 1024, 96 * 1024),
                 flavour="oci"):
        _, index_type, _, _ = FLAVOURS[flavour]
        self.flavour = flavour
        self.images = [
            Image("{}-{}".format(seed, number), layer_sizes, flavour, os_name, arch, variant)
            for number, (os_name, arch, variant) in enumerate(platforms)
        ]
        index = {
            "schemaVersion": 2,
            "mediaType": index_type,
            "manifests": [image.manifest.descriptor(platform=image.platform) for image in self.images],
        }
        self.manifest = Blob(canonical_json(index), index_type)

    def blobs(self):
        """Configs and layers of every image (no manifests)."""
        return [blob for image in self.images for blob in image.blobs()]

    def manifests(self):
        """The instance manifests, then the index itself."""
        return [image.manifest for image in self.images] + [self.manifest]

    def all_blobs(self):
        return self.blobs() + self.manifests()


def write_oci_layout(path, artifact, tag):
    """Write C{artifact} (an L{Image} or L{Index}) as an OCI layout at C{path}, tagged C{tag}.

    Returns C{path}; the skopeo reference is ``oci:PATH:TAG``.
    """
    blob_dir = os.path.join(path, "blobs", "sha256")
    os.makedirs(blob_dir, exist_ok=True)
    for blob in artifact.all_blobs():
        with open(os.path.join(blob_dir, blob.digest.split(":", 1)[1]), "wb") as f:
            f.write(blob.data)
    with open(os.path.join(path, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    index = {
        "schemaVersion": 2,
        "manifests": [artifact.manifest.descriptor(
            annotations={"org.opencontainers.image.ref.name": tag})],
    }
    with open(os.path.join(path, "index.json"), "w") as f:
        json.dump(index, f)
    return path


def write_dir_layout(path, artifact):
    """Write C{artifact} in skopeo's ``dir:`` layout (reference ``dir:PATH``)."""
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "version"), "w") as f:
        f.write("Directory Transport Version: 1.1\n")
    for blob in artifact.blobs():
        with open(os.path.join(path, blob.digest.split(":", 1)[1]), "wb") as f:
            f.write(blob.data)
    if isinstance(artifact, Index):
        for image in artifact.images:
            name = image.digest.split(":", 1)[1] + ".manifest.json"
            with open(os.path.join(path, name), "wb") as f:
                f.write(image.manifest.data)
    with open(os.path.join(path, "manifest.json"), "wb") as f:
        f.write(artifact.manifest.data)
    return path


def read_oci_layout(path, tag=None):
    """Read an OCI layout back: (top-level descriptor, {digest: bytes}).

    Every blob's bytes are checked against its file name; a mismatch raises
    ValueError. C{tag} picks the descriptor by its ref.name annotation
    (the only one when None).
    """
    with open(os.path.join(path, "index.json"), "rb") as f:
        index = json.load(f)
    descriptors = index.get("manifests", [])
    if tag is not None:
        descriptors = [d for d in descriptors
                       if d.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]
    if len(descriptors) != 1:
        raise ValueError("{} descriptors for tag {!r} in {}".format(len(descriptors), tag, path))
    blobs = {}
    for root, _, files in os.walk(os.path.join(path, "blobs")):
        algorithm = os.path.basename(root)
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                data = f.read()
            digest = "{}:{}".format(algorithm, name)
            if algorithm == "sha256" and sha256_digest(data) != digest:
                raise ValueError("blob {} in {} does not match its name".format(digest, path))
            blobs[digest] = data
    return descriptors[0], blobs


def read_dir_layout(path):
    """Read a ``dir:`` layout: (top manifest bytes, {digest: bytes}) with manifests included."""
    blobs = {}
    top = None
    for name in os.listdir(path):
        with open(os.path.join(path, name), "rb") as f:
            data = f.read()
        if name == "manifest.json":
            top = data
            blobs[sha256_digest(data)] = data
        elif name.endswith(".manifest.json"):
            digest = "sha256:" + name[: -len(".manifest.json")]
            if sha256_digest(data) != digest:
                raise ValueError("manifest {} in {} does not match its name".format(name, path))
            blobs[digest] = data
        elif name != "version" and not name.endswith(".signature"):
            digest = "sha256:" + name
            if sha256_digest(data) != digest:
                raise ValueError("blob {} in {} does not match its name".format(name, path))
            blobs[digest] = data
    return top, blobs
