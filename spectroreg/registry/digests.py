"""
Content digests (``<algorithm>:<encoded>``): parsing, validation, hashing.

sha256 and sha512 are supported. A string that does not follow the OCI
digest grammar, or an encoding that does not fit its algorithm, is
``DIGEST_INVALID``; a well-formed digest of an algorithm we do not
implement is ``DIGEST_INVALID`` too, with a detail saying so (the spec's
wording: the registry cannot verify it, so it refuses it).
"""

import hashlib
import re

from spectroreg.registry.errors import RegistryError

# Applied with fullmatch: ``$`` would let a trailing newline through.
DIGEST_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")

ALGORITHMS = {
    "sha256": (re.compile(r"[a-f0-9]{64}"), hashlib.sha256),
    "sha512": (re.compile(r"[a-f0-9]{128}"), hashlib.sha512),
}

CANONICAL = "sha256"


class Digest:
    """A validated digest. C{str(d)} is the canonical string."""

    __slots__ = ("algorithm", "hex")

    def __init__(self, algorithm, hex_):
        self.algorithm = algorithm
        self.hex = hex_

    def __str__(self):
        return "{}:{}".format(self.algorithm, self.hex)

    def __repr__(self):
        return "Digest({!r})".format(str(self))

    def __eq__(self, other):
        if isinstance(other, Digest):
            return (self.algorithm, self.hex) == (other.algorithm, other.hex)
        return NotImplemented

    def __hash__(self):
        return hash((self.algorithm, self.hex))

    def hasher(self):
        return ALGORITHMS[self.algorithm][1]()


def parse_digest(value):
    """
    Parse C{value} (str or bytes) into a L{Digest}.

    @raise RegistryError: DIGEST_INVALID.
    """
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            raise RegistryError("DIGEST_INVALID", detail="digest is not ASCII")
    if not isinstance(value, str) or DIGEST_RE.fullmatch(value) is None:
        raise RegistryError("DIGEST_INVALID", detail="invalid digest: {!r}".format(value))
    algorithm, encoded = value.split(":", 1)
    if algorithm not in ALGORITHMS:
        raise RegistryError("DIGEST_INVALID", detail="unsupported digest algorithm: {}".format(algorithm))
    if ALGORITHMS[algorithm][0].fullmatch(encoded) is None:
        raise RegistryError("DIGEST_INVALID", detail="invalid {} digest: {!r}".format(algorithm, value))
    return Digest(algorithm, encoded)


def looks_like_digest(value):
    """Whether C{value} (str) is meant as a digest rather than a tag."""
    return ":" in value


def digest_of(data, algorithm=CANONICAL):
    return Digest(algorithm, ALGORITHMS[algorithm][1](data).hexdigest())
