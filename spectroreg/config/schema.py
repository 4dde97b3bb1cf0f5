"""
The shape of Distribution's configuration: every key spectroreg knows,
gathered from the declarations of the section modules
(L{spectroreg.config.sections}); nothing is declared here but the sections
themselves and the free-form ones.

One tree serves three purposes: unknown-key warnings while validating,
resolving ``REGISTRY_*`` variable names to key paths (case-insensitively)
and typing their values, and the typed reads of the validation
(L{spectroreg.config.checker.Checker.read}). A plain ``dict`` is a section
with a fixed set of keys; a L{Leaf} a value of one kind with its rules;
``ANY`` a free-form value kept as given; ``MapOf`` a mapping with free-form
names (headers); ``ListOf`` a list (``_N`` indices in variable names).
"""

from spectroreg.config.declare import ANY, STR, Leaf, ListOf, MapOf, tree_of
from spectroreg.config.sections.auth import AUTH_PROVIDERS, AuthSettings
from spectroreg.config.sections.catalog import CatalogSettings
from spectroreg.config.sections.health import HealthSettings
from spectroreg.config.sections.http import HTTPSettings
from spectroreg.config.sections.log import LOG_LEVELS, LogSettings
from spectroreg.config.sections.notifications import NotificationSettings
from spectroreg.config.sections.redis import RedisSettings
from spectroreg.config.sections.storage import (
    STORAGE_RESERVED,
    SUPPORTED_DRIVERS,
    UNSUPPORTED_DRIVERS,
    StorageSettings,
)

__all__ = [
    "ANY", "AUTH_PROVIDERS", "Leaf", "ListOf", "MapOf", "SCHEMA", "STORAGE_RESERVED",
    "SUPPORTED_DRIVERS", "UNSUPPORTED_DRIVERS", "leaf_paths", "schema_at",
]

SCHEMA = {
    "version": Leaf(STR),
    "loglevel": Leaf(STR, choices=LOG_LEVELS, what="level"),  # Distribution 2.x's log.level
    "log": tree_of(LogSettings),
    "storage": tree_of(StorageSettings),
    "auth": tree_of(AuthSettings),
    "http": tree_of(HTTPSettings),
    "notifications": tree_of(NotificationSettings),
    "redis": tree_of(RedisSettings),
    "health": tree_of(HealthSettings),
    "catalog": tree_of(CatalogSettings),
    "proxy": ANY,
    "validation": ANY,
    "middleware": ANY,
    "reporting": ANY,
    "compatibility": ANY,
}


def schema_at(path):
    """The schema node for key path C{path} (a tuple), or None when unknown."""
    node = SCHEMA
    for part in path:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, MapOf):
            node = node.value
        elif isinstance(node, ListOf):
            node = node.item
        elif node is ANY:
            return ANY
        else:
            return None
        if node is None:
            return None
    return node


def leaf_paths(node=None, path=()):
    """
    Every declared key path (a tuple) below C{node} (default: the whole
    schema), sorted; the keys of a list of sections are those of its first.
    """
    node = SCHEMA if node is None else node
    if isinstance(node, ListOf) and isinstance(node.item, dict):
        return leaf_paths(node.item, path + (0,))
    if isinstance(node, dict):
        found = []
        for name, child in node.items():
            found.extend(leaf_paths(child, path + (name,)))
        return sorted(found) if not path else found
    return [path]
