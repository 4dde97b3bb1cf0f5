"""
Repository names, tags and references, as the OCI Distribution Spec defines them.
"""

import re

from spectroreg.registry.errors import RegistryError

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(r"^{0}(?:/{0})*$".format(_COMPONENT))
TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")

# Distribution's limit on the whole name.
NAME_MAX_LENGTH = 255


def is_valid_name(name):
    return isinstance(name, str) and 0 < len(name) <= NAME_MAX_LENGTH and bool(NAME_RE.match(name))


def check_name(name):
    """Return C{name}, or raise NAME_INVALID."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise RegistryError("NAME_INVALID", detail={"name": name, "reason": "invalid repository name"})
    if len(name) > NAME_MAX_LENGTH:
        raise RegistryError(
            "NAME_INVALID",
            detail={"name": name, "reason": "repository name must not exceed {} characters".format(NAME_MAX_LENGTH)},
        )
    return name


def is_valid_tag(tag):
    return isinstance(tag, str) and bool(TAG_RE.match(tag))
