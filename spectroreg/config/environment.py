"""
``REGISTRY_*`` environment overrides, applied to the parsed YAML tree.

Distribution's rules (sorted by name, ``_`` separates keys matched
case-insensitively, values parsed as YAML 1.1) with its pitfalls fixed:
naming the provider or driver the file already configures keeps its settings,
``REGISTRY_STORAGE`` keeps the reserved storage keys, header names match
case-insensitively and replace, ``_N`` list indices work on scalars and lists,
a second storage driver or auth provider is an error naming the variable, and
unknown variables only warn (Kubernetes service links are ignored silently).
"""

import re

import yaml

from spectroreg.config.errors import ConfigError
from spectroreg.config.schema import ANY, SCHEMA, STORAGE_RESERVED, ListOf, MapOf
from spectroreg.config.tree import dotted, parse_scalar_text

PREFIX = "REGISTRY_"
# Variables with the REGISTRY_ prefix that are not configuration keys.
NOT_KEYS = frozenset(["REGISTRY_CONFIGURATION_PATH"])

# What Kubernetes injects for a Service named registry-*: REGISTRY_AUTH_PORT,
# REGISTRY_AUTH_PORT_5001_TCP_ADDR, REGISTRY_AUTH_SERVICE_HOST, ...
_SERVICE_LINK = re.compile(r"(_PORT$|_PORT_|_SERVICE_HOST$|_SERVICE_PORT)")

# Sections where exactly one non-reserved key is the thing chosen.
_ONE_OF = {
    "storage": ("storage driver", STORAGE_RESERVED),
    "auth": ("auth provider", ()),
}


def _sort_key(name):
    # Segment-wise with numbers compared as numbers: a section's own variable
    # comes before its keys, and HOSTS_2 before HOSTS_10.
    # Compared as (length, digits), not int(): a 5000-digit index is more
    # than Python's int() reads.
    keys = []
    for part in name.split("_"):
        if part.isdigit():
            digits = part.lstrip("0")
            keys.append((0, len(digits), digits))
        else:
            keys.append((1, 0, part))
    return keys


# The longest list index a variable may give: far past any list, and within
# what int() reads.
_MAX_INDEX_DIGITS = 9


def _index(name, segment):
    """The list index variable C{name} gives as C{segment} (digits)."""
    if len(segment.lstrip("0")) > _MAX_INDEX_DIGITS:
        raise ConfigError(
            "{}: list index of {} digits; indices count up from 0".format(
                name if len(name) <= 80 else name[:80] + "...", len(segment)
            )
        )
    return int(segment)


def is_service_link(name):
    return _SERVICE_LINK.search(name) is not None


def canonical_header(name):
    """Go's canonical form: C{X-FRAME-OPTIONS} → C{X-Frame-Options}."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def _match(segment, keys):
    lowered = segment.lower()
    for key in keys:
        if isinstance(key, str) and key.lower() == lowered:
            return key
    return None


def resolve(name, tree):
    """
    The key path (a tuple) and schema node variable C{name} refers to, or
    None when it matches no key.
    """
    found = _resolve(name, tree)
    return found[:2] if found else None


def _resolve(name, tree):
    """As L{resolve}, plus whether a free-form key the tree lacks was invented."""
    segments = name[len(PREFIX):].split("_")
    if not segments or any(segment == "" for segment in segments):
        return None
    schema = SCHEMA
    node = tree
    path = []
    invented = False
    for segment in segments:
        if isinstance(schema, dict):
            key = _match(segment, schema)
            if key is None:
                return None
            child_schema = schema[key]
        elif isinstance(schema, ListOf):
            if not segment.isdigit():
                return None
            key = _index(name, segment)
            child_schema = schema.item
        elif isinstance(schema, MapOf) or schema is ANY:
            existing = _match(segment, node) if isinstance(node, dict) else None
            if existing is not None:
                key = existing
            elif segment.isdigit() and not isinstance(node, dict):
                key = _index(name, segment)
            elif isinstance(schema, MapOf) and schema.header_names:
                key = canonical_header(segment)
                invented = True
            else:
                key = segment.lower()
                invented = True
            child_schema = schema.value if isinstance(schema, MapOf) else ANY
        else:
            return None  # nothing below a scalar
        path.append(key)
        node = _child(node, key)
        schema = child_schema
    return tuple(path), schema, invented


def _child(node, key):
    if isinstance(key, int):
        if isinstance(node, list) and key < len(node):
            return node[key]
        if key == 0 and node is not None and not isinstance(node, (dict, list)):
            return node
        return None
    if isinstance(node, dict):
        return node.get(key)
    return None


def _is_text(schema):
    return getattr(schema, "kind", None) == "string"


def parse_value(name, text, schema):
    """
    C{text} parsed as YAML 1.1, and the literal text for scalars that are not
    strings (see L{Provenance}).
    """
    try:
        value = parse_scalar_text(text, name)
    except yaml.YAMLError as error:
        if _is_text(schema) or (isinstance(schema, ListOf) and _is_text(schema.item)):
            return text, None
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError("{}: not valid YAML: {}".format(name, " ".join(problem.split()))) from None
    if value is not None and not isinstance(value, (str, dict, list)):
        return value, text
    return value, None


def apply_environment(tree, environ, provenance, warnings):
    """
    Apply every C{REGISTRY_*} variable of C{environ} to C{tree} (a dict,
    changed in place) and return it.
    """
    names = sorted(
        (name for name in environ if name.startswith(PREFIX) and name not in NOT_KEYS),
        key=_sort_key,
    )
    for name in names:
        resolved = _resolve(name, tree)
        service_link = is_service_link(name)
        if resolved is None or (service_link and resolved[2]):
            # A service link matches a key only when that key exists or is a
            # named key; inventing notifications.port from
            # REGISTRY_NOTIFICATIONS_PORT would not be what anyone meant.
            if not service_link:
                warnings.append("{}: matches no configuration key; ignored".format(name))
            continue
        path, schema, _ = resolved
        value, raw = parse_value(name, environ[name], schema)
        if path[0] in _ONE_OF and len(path) == 1:
            _choose(tree, path[0], value, raw, name, provenance, warnings)
        else:
            if path[0] in _ONE_OF and len(path) >= 2:
                _check_second(tree, path, name)
            _set(tree, path, value, raw, name, provenance)
    return tree


def normalise_one_of(tree):
    """The bare string forms ``storage: inmemory`` and ``auth: htpasswd`` as mappings."""
    for section in _ONE_OF:
        value = tree.get(section)
        if isinstance(value, str):
            tree[section] = {value: {}}


def _choose(tree, section, value, raw, name, provenance, warnings):
    """``REGISTRY_STORAGE=...`` / ``REGISTRY_AUTH=...``: pick the driver or provider."""
    _, reserved = _ONE_OF[section]
    old = tree.get(section)
    if not isinstance(old, dict):
        old = {}
    if section not in tree:
        provenance.origins[(section,)] = name
    if isinstance(value, str):
        new = {key: old[key] for key in old if key in reserved}
        # Naming the one the file already configures keeps its settings
        # (Distribution wipes them: "path must be set").
        kept = _match(value, [key for key in old if key not in reserved])
        for key in old:
            if key not in new and key != kept:
                provenance.forget((section, key))
        if kept is not None:
            new[kept] = old[kept]
        else:
            new[value] = {}
            provenance.replace((section, value), name)
        tree[section] = new
    elif isinstance(value, dict):
        new = {key: old[key] for key in old if key in reserved and key not in value}
        for key in old:
            if key not in new:
                provenance.forget((section, key))
        for key, item in value.items():
            new[key] = item
            provenance.replace((section, key), name)
        tree[section] = new
    else:
        tree[section] = value
        provenance.replace((section,), name, raw)
        if value is None and section == "auth":
            warnings.append("{}: empty: authentication is switched off".format(name))


def _check_second(tree, path, name):
    section = path[0]
    what, reserved = _ONE_OF[section]
    chosen = path[1]
    current = tree.get(section)
    if not isinstance(current, dict) or chosen in reserved or chosen in current:
        return
    others = [key for key in current if key not in reserved]
    if others:
        raise ConfigError(
            "{}: {}: would add a second {} next to {} (exactly one is allowed; "
            "set {}{}={} to switch)".format(
                name,
                dotted(path[:2]),
                what,
                ", ".join(others),
                PREFIX,
                section.upper(),
                chosen,
            )
        )


def _set(tree, path, value, raw, name, provenance):
    container = tree
    for depth in range(len(path) - 1):
        key = path[depth]
        following = path[depth + 1]
        here = path[: depth + 1]
        child = _child_for_write(container, key)
        if isinstance(following, int):
            if child is None:
                child = []
            elif isinstance(child, dict):
                pass
            elif not isinstance(child, list):
                # A scalar where a list is wanted is its first item (v3 drops it).
                provenance.move(here, here + (0,))
                child = [child]
        elif not isinstance(child, dict):
            if child is not None:
                provenance.forget(here)
            child = {}
        _put(container, key, child, name, here)
        if here not in provenance.origins:
            provenance.origins[here] = name
        container = child
    _put(container, path[-1], value, name, path)
    provenance.replace(path, name, raw)


def _child_for_write(container, key):
    if isinstance(container, list):
        return container[key] if key < len(container) else None
    return container.get(key)


def _put(container, key, value, name, path):
    if isinstance(container, list):
        if not isinstance(key, int):
            raise ConfigError("{}: {}: not a list index".format(name, dotted(path)))
        if key < len(container):
            container[key] = value
        elif key == len(container):
            container.append(value)
        else:
            raise ConfigError(
                "{}: {}: index {} is past the end of the list ({} item{}); "
                "indices must count up from 0".format(
                    name, dotted(path), key, len(container), "" if len(container) == 1 else "s"
                )
            )
    else:
        container[key] = value

