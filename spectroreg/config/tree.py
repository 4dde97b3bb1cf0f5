"""
A configuration document as plain Python values, plus where each value came
from (a file line or an environment variable) so that errors can say so.
"""

from contextlib import contextmanager

import yaml

from spectroreg.config.compose import MAX_DEPTH, Alias, compose
from spectroreg.config.errors import ConfigError

# libyaml when present: noticeably faster to import and parse.
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def dotted(path):
    """C{("http", "tls", "clientcas", 0)} → C{"http.tls.clientcas[0]"}."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += "[{}]".format(part)
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


class Provenance:
    """
    Where each key path came from, and the literal text of scalars.

    Distribution (Go's YAML) turns any scalar given for a string key into its
    literal text, so ``secret: 0123`` is the string ``"0123"``; ``raw`` keeps
    that text for scalars YAML resolved to something else.
    """

    def __init__(self, filename):
        self.filename = filename
        self.origins = {(): filename}
        self.raw = {}

    def where(self, path):
        """The origin of C{path} or of its nearest ancestor: C{file:line} or a variable."""
        path = tuple(path)
        for length in range(len(path), -1, -1):
            origin = self.origins.get(path[:length])
            if origin:
                return origin
        return self.filename or "configuration"

    def forget(self, path):
        """Drop everything recorded at or under C{path}."""
        path = tuple(path)
        size = len(path)
        for table in (self.origins, self.raw):
            for key in [key for key in table if key[:size] == path]:
                del table[key]

    def replace(self, path, origin, raw=None):
        """C{path} was replaced by a value from C{origin}."""
        self.forget(path)
        self.origins[tuple(path)] = origin
        if raw is not None:
            self.raw[tuple(path)] = raw

    def move(self, old, new):
        """The value at C{old} now lives at C{new} (a scalar wrapped into a list)."""
        old, new = tuple(old), tuple(new)
        size = len(old)
        for table in (self.origins, self.raw):
            for key in [key for key in table if key[:size] == old]:
                table[new + key[size:]] = table.pop(key)


def _first_line(text):
    return " ".join(str(text).split())


def yaml_error(error, filename):
    """A one-line ConfigError for a PyYAML error in C{filename}."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None)
    context = getattr(error, "context", None)
    if problem:
        message = _first_line(problem)
        if context:
            message += " ({})".format(_first_line(context))
    else:
        message = _first_line(error)
    if mark is not None:
        return ConfigError("{}:{}: invalid YAML: {}".format(filename, mark.line + 1, message))
    return ConfigError("{}: invalid YAML: {}".format(filename, message))


class AliasBudget:
    """
    Go's YAML decoder's bound on alias expansion (gopkg.in/yaml.v2, which
    Distribution reads its configuration with): once more than 100 of over
    1000 decoded nodes came from expanding aliases, the share that came from
    aliases may be at most 99 % up to 400,000 nodes, falling to 10 % at
    4,000,000. A "billion laughs" document stops after about a thousand nodes
    instead of a billion; real documents never come close.
    """

    LOW = 400000
    HIGH = 4000000

    def __init__(self):
        self.decoded = 0
        self.aliased = 0
        self.depth = 0

    @classmethod
    def allowed_ratio(cls, decoded):
        if decoded <= cls.LOW:
            return 0.99
        if decoded >= cls.HIGH:
            return 0.10
        return 0.99 - 0.89 * (decoded - cls.LOW) / (cls.HIGH - cls.LOW)

    def count(self):
        """One node decoded; False once the document aliases too much."""
        self.decoded += 1
        if self.depth:
            self.aliased += 1
        return not (
            self.aliased > 100
            and self.decoded > 1000
            and self.aliased / self.decoded > self.allowed_ratio(self.decoded)
        )


def load_tree(data, filename, provenance, warnings):
    """
    Parse YAML C{data} (bytes or str) into plain values, recording the line of
    every key in C{provenance}. Returns None for an empty document.

    Aliases are expanded as Go's YAML decoder expands them, within its bound
    (L{AliasBudget}); an alias inside its own anchor is an error, as there.
    """
    loader = Loader(data)
    try:
        node = compose(loader)
        if node is None:
            return None
        return _Builder(loader, filename, provenance, warnings).build(node, ())
    except yaml.YAMLError as error:
        raise yaml_error(error, filename) from None
    finally:
        loader.dispose()


_MERGE = "tag:yaml.org,2002:merge"


class _Builder:
    def __init__(self, loader, filename, provenance, warnings, located=True):
        self.loader = loader
        self.located = located
        self.filename = filename
        self.provenance = provenance
        self.warnings = warnings
        self.budget = AliasBudget()
        self.expanding = set()  # ids of the Alias objects being expanded
        self.outermost = None  # the alias written in the document being expanded

    def _fail(self, mark, message):
        if self.located:
            raise ConfigError("{}:{}: invalid YAML: {}".format(self.filename, mark.line + 1, message))
        raise ConfigError("{}: not valid YAML: {}".format(self.filename, message))

    def _count(self, node):
        if not self.budget.count():
            alias = self.outermost
            if alias is None:
                # Past 400,000 nodes the allowed share shrinks as the document grows.
                self._fail(node.start_mark, "document contains excessive aliasing")
            self._fail(
                alias.start_mark,
                "document contains excessive aliasing (expanding *{})".format(alias.anchor),
            )

    @contextmanager
    def _within(self, alias, check_cycle=True):
        """Decoding under C{alias}: counted as aliased; an alias met again inside itself is an error."""
        if check_cycle:
            if id(alias) in self.expanding:
                self._fail(alias.start_mark, "anchor {!r} value contains itself".format(alias.anchor))
            self.expanding.add(id(alias))
        outermost = self.outermost
        if not self.budget.depth:
            self.outermost = alias
        self.budget.depth += 1
        try:
            yield
        finally:
            self.budget.depth -= 1
            self.outermost = outermost
            if check_cycle:
                self.expanding.discard(id(alias))

    def _resolve(self, node, then):
        """C{then(target)} for an alias's target, tracked as Go tracks it; C{then(node)} otherwise."""
        if not isinstance(node, Alias):
            return then(node)
        self._count(node)
        with self._within(node):
            return then(node.target)

    def build(self, node, path):
        return self._resolve(node, lambda target: self._build(target, path))

    def _pairs(self, node):
        """
        The C{(key node, value node, alias or None)} of mapping C{node} with
        merge keys (``<<``) applied: merged pairs first, the first merged
        mapping winning among them, then the mapping's own pairs. The alias
        is the one a merged pair came through, so that building its value
        counts as expanding that alias.
        """
        merged = {}
        own = []
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag == _MERGE:
                sources = self._resolve(value_node, lambda target: target)
                items = sources.value if isinstance(sources, yaml.SequenceNode) else [value_node]
                for item in items:
                    pairs = self._resolve(item, lambda target: self._merge_source(target, key_node))
                    for pair_key, pair_value, via in pairs:
                        name = pair_key.value if isinstance(pair_key, yaml.ScalarNode) else object()
                        if name not in merged:
                            if via is None and isinstance(item, Alias):
                                via = item
                            merged[name] = (pair_key, pair_value, via)
            else:
                own.append((key_node, value_node, None))
        return list(merged.values()) + own

    def _merge_source(self, node, key_node):
        if not isinstance(node, yaml.MappingNode):
            self._fail(
                key_node.start_mark,
                "expected a mapping or a list of mappings for merging (<<), but found {}".format(node.id),
            )
        self._count(node)
        return self._pairs(node)

    def _build(self, node, path):
        self._count(node)
        if len(path) > MAX_DEPTH:
            alias = self.outermost
            self._fail(
                alias.start_mark,
                "nested deeper than {} levels once aliases are expanded (expanding *{})".format(MAX_DEPTH, alias.anchor),
            )
        if isinstance(node, yaml.MappingNode):
            return self._build_mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            result = []
            for index, item in enumerate(node.value):
                child = path + (index,)
                self.provenance.origins[child] = "{}:{}".format(self.filename, item.start_mark.line + 1)
                result.append(self.build(item, child))
            return result
        try:
            value = self.loader.construct_object(node, deep=True)
        except (ValueError, OverflowError):
            # Go's YAML resolves a scalar it cannot read as a number or a
            # time (a 5000-digit integer, 2026-13-45) to its text.
            value = node.value
        if value is not None and not isinstance(value, str):
            self.provenance.raw[path] = node.value
        return value

    def _build_mapping(self, node, path):
        filename = self.filename
        duplicates = _duplicate_keys(node)
        result = {}
        warned = set()
        for key_node, value_node, via in self._pairs(node):
            if isinstance(key_node, Alias) and isinstance(key_node.target, yaml.ScalarNode):
                key_node = key_node.target
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(
                    "{}: {}: a key must be a plain name, not a list or mapping".format(
                        "{}:{}".format(filename, line) if self.located else filename, dotted(path)
                    )
                )
            # The literal text: `on:` or `1:` stay the names written.
            key = key_node.value
            child = path + (key,)
            if key in result:
                if key in duplicates and key not in warned:
                    warned.add(key)
                    self.warnings.append(
                        "{}:{}: {}: duplicate key; the last one wins".format(filename, line, dotted(child))
                    )
                self.provenance.forget(child)
            self.provenance.origins[child] = "{}:{}".format(filename, line)
            if via is None:
                result[key] = self.build(value_node, child)
            else:
                with self._within(via, check_cycle=False):
                    result[key] = self.build(value_node, child)
        return result


def _duplicate_keys(node):
    """The names written more than once as keys of mapping C{node} (merges aside)."""
    explicit = set()
    duplicates = set()
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE:
            if key_node.value in explicit:
                duplicates.add(key_node.value)
            explicit.add(key_node.value)
    return duplicates


def parse_scalar_text(text, name):
    """
    A variable's value parsed as YAML 1.1, within the same bounds as a file
    (raises yaml.YAMLError, or ConfigError naming C{name}).
    """
    loader = Loader(text)
    try:
        node = compose(loader)
        if node is None:
            return None
        return _Builder(loader, name, Provenance(name), [], located=False).build(node, ())
    finally:
        loader.dispose()
