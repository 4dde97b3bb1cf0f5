"""
A configuration document as plain Python values, plus where each value came
from (a file line or an environment variable) so that errors can say so.
"""

import yaml

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


def load_tree(data, filename, provenance, warnings):
    """
    Parse YAML C{data} (bytes or str) into plain values, recording the line of
    every key in C{provenance}. Returns None for an empty document.
    """
    loader = Loader(data)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        return _build(loader, node, (), filename, provenance, warnings)
    except yaml.YAMLError as error:
        raise yaml_error(error, filename) from None
    finally:
        loader.dispose()


def _build(loader, node, path, filename, provenance, warnings):
    if isinstance(node, yaml.MappingNode):
        explicit = set()
        duplicates = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in explicit:
                    duplicates.add(key_node.value)
                explicit.add(key_node.value)
        loader.flatten_mapping(node)
        result = {}
        warned = set()
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(
                    "{}:{}: {}: a key must be a plain name, not a list or mapping".format(
                        filename, line, dotted(path)
                    )
                )
            # The literal text: `on:` or `1:` stay the names written.
            key = key_node.value
            child = path + (key,)
            if key in duplicates and key in result and key not in warned:
                warned.add(key)
                warnings.append(
                    "{}:{}: {}: duplicate key; the last one wins".format(
                        filename, line, dotted(child)
                    )
                )
            provenance.forget(child)
            provenance.origins[child] = "{}:{}".format(filename, line)
            result[key] = _build(loader, value_node, child, filename, provenance, warnings)
        return result
    if isinstance(node, yaml.SequenceNode):
        result = []
        for index, item in enumerate(node.value):
            child = path + (index,)
            provenance.origins[child] = "{}:{}".format(filename, item.start_mark.line + 1)
            result.append(_build(loader, item, child, filename, provenance, warnings))
        return result
    value = loader.construct_object(node, deep=True)
    if value is not None and not isinstance(value, str):
        provenance.raw[path] = node.value
    return value


def parse_scalar_text(text):
    """A variable's value parsed as YAML 1.1 (raises yaml.YAMLError)."""
    return yaml.load(text, Loader=Loader)
