"""
Repository names, tags, references and upload ids, as the OCI Distribution
Spec defines them.

Every pattern is applied with ``fullmatch``: with ``match`` and a ``$``
anchor, Python accepts a value followed by one newline, which then reaches
storage paths and headers.
"""

import re

from spectroreg.registry.errors import RegistryError

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(r"{0}(?:/{0})*".format(_COMPONENT))
TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
# Ids we and Distribution hand out (UUIDs), and no more than a path segment.
UPLOAD_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")

# Distribution's limit on the whole name.
NAME_MAX_LENGTH = 255


def is_valid_name(name):
    return isinstance(name, str) and 0 < len(name) <= NAME_MAX_LENGTH and NAME_RE.fullmatch(name) is not None


def check_name(name):
    """Return C{name}, or raise NAME_INVALID."""
    if not isinstance(name, str):
        raise RegistryError("NAME_INVALID", detail={"name": repr(name), "reason": "invalid repository name"})
    if len(name) > NAME_MAX_LENGTH:
        # Before the pattern: a path may be up to Twisted's 16 KiB line.
        raise RegistryError(
            "NAME_INVALID",
            detail={"name": name, "reason": "repository name must not exceed {} characters".format(NAME_MAX_LENGTH)},
        )
    if NAME_RE.fullmatch(name) is None:
        raise RegistryError("NAME_INVALID", detail={"name": name, "reason": "invalid repository name"})
    return name


def is_valid_tag(tag):
    return isinstance(tag, str) and TAG_RE.fullmatch(tag) is not None


def is_valid_upload_id(upload_id):
    """Whether C{upload_id} can name an upload (and so a storage path segment)."""
    return (isinstance(upload_id, str) and UPLOAD_ID_RE.fullmatch(upload_id) is not None
            and upload_id not in (".", ".."))
