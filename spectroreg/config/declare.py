"""
How a configuration key is declared: once, on the settings field it fills.

    maxthreads: int = key(INT, 100, minimum=1, digits_ok=True)
    readonly: bool = key(BOOL, False, at="maintenance.readonly.enabled")

A key carries its kind (string, integer, boolean, duration, size, list), its
default (the field's default), its bounds and its choices. From these
declarations come the schema tree (unknown-key warnings and ``REGISTRY_*``
variable names, L{spectroreg.config.schema}), the typed reads of the
validation (L{spectroreg.config.checker.Checker.read}) and the defaults of
the settings objects. Rules that tie several keys together are written by
hand in the section modules (L{spectroreg.config.sections}).
"""

import dataclasses

_UNSET = dataclasses.MISSING
# Go's int, which Distribution reads integer keys into.
GO_INT_MAX = 2 ** 63 - 1


class Leaf:
    """
    A scalar (or list of scalars) key of one kind, with its rules.

    @ivar kind: string | integer | boolean | duration | size | any | list.
    @ivar default: the value when the key is absent (or null).
    @ivar minimum: the least integer or duration (seconds) accepted.
    @ivar maximum: the largest one (for integers Go's int64 unless given).
    @ivar choices: the accepted values of a string key (compared after C{fold}).
    @ivar what: how a message names a value of this key ("storage class").
    @ivar fold: applied to a string before comparing it with C{choices}.
    @ivar digits_ok: an integer may be written as a quoted string of digits.
    @ivar required: absent or empty is an error.
    @ivar empty_ok: an empty string is a value (not "absent").
    """

    def __init__(self, kind, default=None, *, minimum=None, maximum=_UNSET, choices=None, what=None,
                 fold=str.lower, digits_ok=False, required=False, empty_ok=False):
        self.kind = kind
        self.default = default
        self.minimum = minimum
        if maximum is _UNSET:
            maximum = GO_INT_MAX if kind in ("integer", "size") else None
        self.maximum = maximum
        self.choices = tuple(choices) if choices is not None else None
        self.what = what
        self.fold = fold
        self.digits_ok = digits_ok
        self.required = required
        self.empty_ok = empty_ok

    def __repr__(self):
        return "Leaf({})".format(self.kind)


class ListOf(Leaf):
    """A list of C{item}; C{scalar_ok}: one scalar stands for a one-item list."""

    def __init__(self, item, scalar_ok=False, default=(), **rules):
        super().__init__("list", default, **rules)
        self.item = item
        self.scalar_ok = scalar_ok

    def __repr__(self):
        return "ListOf({!r})".format(self.item)


class MapOf:
    """A mapping with free-form names; C{header_names}: HTTP header names (case-insensitive)."""

    def __init__(self, value, header_names=False):
        self.value = value
        self.header_names = header_names


# A free-form value, kept as given.
ANY = Leaf("any")

# The kinds of key().
STR = "string"
INT = "integer"
BOOL = "boolean"
DURATION = "duration"
SIZE = "size"
STRINGS = "strings"  # a list of strings; one scalar stands for a one-item list


def declared(kind, default=None, **rules):
    """The schema node of a key of C{kind} (for C{OTHER_KEYS}, which fill no field)."""
    if kind == STRINGS:
        return ListOf(Leaf(STR), scalar_ok=True, default=default, **rules)
    return Leaf(kind, default, **rules)


def key(kind, default=None, *, at=None, factory=None, **rules):
    """
    A settings field that is a configuration key of C{kind}.

    @param at: the key's path below its section, dotted, when it is not the
        field's name (``"accesslog.disabled"``).
    @param factory: builds the default (for mutable defaults).
    @param rules: see L{Leaf}.
    """
    leaf = declared(kind, default, **rules)
    metadata = {"key": leaf, "at": tuple(at.split(".")) if at else None}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    if rules.get("required") and default is None:
        return dataclasses.field(metadata=metadata)  # no default: the constructor needs it
    return dataclasses.field(default=default, metadata=metadata)


def free(node, default=None, *, at=None, factory=None):
    """A settings field whose key is a free-form schema C{node} (L{MapOf}, L{ANY})."""
    metadata = {"node": node, "at": tuple(at.split(".")) if at else None}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def section(settings_class, default=None, *, at=None, factory=None):
    """A settings field that is a whole section described by C{settings_class}."""
    metadata = {"section": settings_class, "at": tuple(at.split(".")) if at else None}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def sections(settings_class, *, at=None):
    """A settings field that is a list of sections described by C{settings_class} (a tuple)."""
    metadata = {"sections": settings_class, "at": tuple(at.split(".")) if at else None}
    return dataclasses.field(default=(), metadata=metadata)


def key_path(settings_field):
    """The path of C{settings_field} below its section (a tuple of names)."""
    return settings_field.metadata.get("at") or (settings_field.name,)


def declared_keys(settings_class):
    """
    C{[(settings field, path below the section, Leaf)]} for every key field of
    C{settings_class}, in declaration order (sections not descended into).
    """
    return [
        (f, key_path(f), f.metadata["key"])
        for f in dataclasses.fields(settings_class)
        if "key" in f.metadata
    ]


class DuplicateKey(Exception):
    """Two declarations of one key path."""


def tree_of(settings_class, extra=None):
    """
    The schema tree (nested dicts of L{Leaf}s) C{settings_class} declares:
    its fields, then its C{OTHER_KEYS} (keys that fill no field of their
    own: read and checked but not acted on, or merged into another field; a
    dict of dotted paths -> schema nodes), then C{extra} (the same).

    @raise DuplicateKey: a key declared twice.
    """
    tree = {}
    for f in dataclasses.fields(settings_class):
        if "key" in f.metadata:
            _place(tree, key_path(f), f.metadata["key"], settings_class)
        elif "node" in f.metadata:
            _place(tree, key_path(f), f.metadata["node"], settings_class)
        elif "section" in f.metadata:
            _place(tree, key_path(f), tree_of(f.metadata["section"]), settings_class)
        elif "sections" in f.metadata:
            _place(tree, key_path(f), ListOf(tree_of(f.metadata["sections"])), settings_class)
    unkept = dict(getattr(settings_class, "OTHER_KEYS", {}))
    unkept.update(extra or {})
    for path, node in unkept.items():
        _place(tree, tuple(path.split(".")), node, settings_class)
    return tree


def _place(tree, path, node, owner):
    for part in path[:-1]:
        tree = tree.setdefault(part, {})
        if not isinstance(tree, dict):
            raise DuplicateKey("{}: {} declared twice".format(owner.__name__, ".".join(path)))
    if path[-1] in tree:
        raise DuplicateKey("{}: {} declared twice".format(owner.__name__, ".".join(path)))
    tree[path[-1]] = node
