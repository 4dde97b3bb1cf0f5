"""
Typed reads from a configuration tree that fail (or warn) with the origin of
the value (``file:line`` or the variable) and its key path.

L{Checker.read} reads a key as it is declared (L{spectroreg.config.declare}):
its kind, default, bounds and choices come from the declaration, so the
section modules name only the key. The other methods are the reads those
declarations use, for keys whose rules depend on other keys.
"""

import re

from spectroreg.config.declare import GO_INT_MAX, ListOf, declared_keys
from spectroreg.config.durations import MAX_SECONDS, format_duration, parse_duration, shorten
from spectroreg.config.errors import ConfigError
from spectroreg.config.messages import choices_text, close_match, describe, size_text
from spectroreg.config.schema import schema_at
from spectroreg.config.tree import dotted


_DIGITS = re.compile(r"[-+]?[0-9]+")


class Checker:
    """Typed reads from the tree that fail with the origin and key path."""

    def __init__(self, provenance, warnings):
        self.provenance = provenance
        self.warnings = warnings

    def fail(self, path, message, at=None):
        """Stop with C{message} about C{path}, located at C{at} (default: C{path})."""
        raise ConfigError(
            "{}: {}: {}".format(self.provenance.where(at or path), dotted(path), message)
        )

    def warn(self, path, message):
        self.warnings.append(
            "{}: {}: {}".format(self.provenance.where(path), dotted(path), message)
        )

    def _raw(self, path, value):
        return self.provenance.raw.get(tuple(path), str(value))

    # -- shapes ---------------------------------------------------------

    def mapping(self, value, path):
        """C{value} as a dict; None (an empty section) is an empty dict."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(
                path,
                "expected a mapping of keys, got {}".format(
                    describe(value, self.provenance.raw.get(tuple(path)))
                ),
            )
        return value

    def known(self, mapping, path, schema=None):
        """Warn about keys of C{mapping} the schema does not know."""
        if schema is None:
            schema = schema_at(path)
        if not isinstance(schema, dict):
            return
        for key in mapping:
            if key not in schema:
                hint = ""
                close = close_match(key, list(schema))
                if close:
                    hint = " (did you mean {}?)".format(close)
                self.warn(tuple(path) + (key,), "unknown key, ignored" + hint)

    # -- scalars --------------------------------------------------------

    def string(self, mapping, path, key, default=None, required=False, empty_ok=False):
        where = tuple(path) + (key,)
        value = mapping.get(key)
        if value is None:
            if required:
                self.fail(where, "required")
            return default
        if isinstance(value, (dict, list)):
            self.fail(where, "expected a string, got {}".format(describe(value)))
        if not isinstance(value, str):
            # Go's YAML gives the literal text of any scalar for a string key.
            value = self._raw(where, value)
        if value == "" and not empty_ok:
            if required:
                self.fail(where, "required and must not be empty")
            return default
        return value

    def boolean(self, mapping, path, key, default):
        where = tuple(path) + (key,)
        value = mapping.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(
                where,
                "expected a boolean (true or false), got {}".format(describe(value, self._raw(where, value))),
            )
        return value

    def integer(self, mapping, path, key, default, minimum=None, maximum=GO_INT_MAX, digits_ok=False):
        """
        An integer within [C{minimum}, C{maximum}]; by default at most Go's
        int64, which is what Distribution reads these keys into.
        """
        where = tuple(path) + (key,)
        value = mapping.get(key)
        if value is None:
            return default
        if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
            text = value.strip()
            digits = text.lstrip("+-").lstrip("0")
            # A number too long for Go's YAML is text there; too long for
            # Python's int() (4300 digits) it is too big for every key anyway.
            if len(digits) > len(str(GO_INT_MAX)):
                negative = text.startswith("-")
                bound = minimum if negative else maximum
                if bound is None:
                    self.fail(where, "expected an integer, got a number of {} digits".format(len(digits)))
                self.fail(
                    where,
                    "must be at {} {}, got a number of {} digits".format(
                        "least" if negative else "most", size_text(bound), len(digits)
                    ),
                )
            if digits_ok:
                value = int(text)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(where, "expected an integer, got {}".format(describe(value, self._raw(where, value))))
        if minimum is not None and value < minimum:
            self.fail(where, "must be at least {}, got {}".format(size_text(minimum), value))
        if maximum is not None and value > maximum:
            self.fail(where, "must be at most {}, got {}".format(size_text(maximum), value))
        return value

    def duration(self, mapping, path, key, default, minimum=0.0, maximum=MAX_SECONDS):
        """
        Seconds from a Go duration, within [C{minimum}, C{maximum}] seconds;
        the upper bound by default is Go's (an int64 of nanoseconds).
        """
        where = tuple(path) + (key,)
        value = mapping.get(key)
        if value is None:
            return default
        if isinstance(value, int) and not isinstance(value, bool) and value == 0:
            seconds = 0.0
        else:
            text = value if isinstance(value, str) else self._raw(where, value)
            try:
                seconds = parse_duration(text)
            except ValueError as error:
                self.fail(where, str(error))
        written = shorten(value if isinstance(value, str) else self._raw(where, value))
        if seconds < minimum or (minimum == 0 and seconds < 0):
            self.fail(where, "must be at least {}, got {}".format(format_duration(minimum), written))
        if seconds > maximum:
            self.fail(where, "must be at most {}, got {}".format(format_duration(maximum), written))
        return seconds

    def choice(self, mapping, path, key, default, choices, what, fold=str.lower):
        value = self.string(mapping, path, key)
        if value is None:
            return default
        folded = fold(value)
        if folded not in choices:
            self.fail(
                tuple(path) + (key,),
                "unknown {} {!r} (expected {})".format(what, value, choices_text(choices)),
            )
        return folded

    def strings(self, mapping, path, key, scalar_ok=True):
        """A tuple of strings from a list (or one scalar when C{scalar_ok})."""
        where = tuple(path) + (key,)
        value = mapping.get(key)
        if value is None:
            return ()
        if not isinstance(value, list):
            if scalar_ok and not isinstance(value, dict):
                value = [value]
                items = [(where, value[0])]
            else:
                self.fail(where, "expected a list, got {}".format(describe(value)))
        else:
            items = [(where + (index,), item) for index, item in enumerate(value)]
        result = []
        for item_path, item in items:
            if item is None or isinstance(item, (dict, list)):
                self.fail(item_path, "expected a string, got {}".format(describe(item)))
            if isinstance(item, bool):
                self.fail(item_path, "expected a string, got a boolean; quote it")
            if not isinstance(item, str):
                item = self._raw(item_path, item)
            result.append(item)
        return tuple(result)


    # -- declared keys --------------------------------------------------

    def read(self, mapping, path, key, **rules):
        """
        The value of C{key} of C{mapping} (the section at C{path}) read as
        its declaration says: kind, default, bounds, choices. C{rules}
        replace declared ones where another key decides them (a bound that
        applies only while a feature is enabled).
        """
        leaf = schema_at(tuple(path) + (key,))
        if leaf is None or not hasattr(leaf, "kind"):
            raise KeyError("{} is not a declared key".format(dotted(tuple(path) + (key,))))
        r = dict(
            default=leaf.default, minimum=leaf.minimum, maximum=leaf.maximum, choices=leaf.choices,
            what=leaf.what, fold=leaf.fold, digits_ok=leaf.digits_ok, required=leaf.required,
            empty_ok=leaf.empty_ok,
        )
        r.update(rules)
        kind = leaf.kind
        if isinstance(leaf, ListOf):
            if mapping.get(key) is None:
                return r["default"]
            return self.strings(mapping, path, key, scalar_ok=leaf.scalar_ok)
        if kind == "boolean":
            return self.boolean(mapping, path, key, r["default"])
        if kind in ("integer", "size"):
            return self.integer(mapping, path, key, r["default"], r["minimum"], r["maximum"], r["digits_ok"])
        if kind == "duration":
            minimum = 0.0 if r["minimum"] is None else r["minimum"]
            maximum = MAX_SECONDS if r["maximum"] is None else r["maximum"]
            return self.duration(mapping, path, key, r["default"], minimum, maximum)
        if kind == "string" and r["choices"] is not None:
            return self.choice(mapping, path, key, r["default"], r["choices"], r["what"], r["fold"])
        if kind == "string":
            return self.string(mapping, path, key, r["default"], r["required"], r["empty_ok"])
        raise TypeError("{}: a {} key has no typed read".format(dotted(tuple(path) + (key,)), kind))

    def read_zero_is_default(self, mapping, path, key):
        """As L{read}, with 0 standing for the declared default (as Distribution reads timeouts)."""
        return self.read(mapping, path, key) or schema_at(tuple(path) + (key,)).default

    def mappings(self, section, path, key):
        """C{[(path, mapping)]} of the list of mappings at C{key} of C{section} (none when absent)."""
        value = section.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(tuple(path) + (key,), "expected a list of mappings")
        where = tuple(path) + (key,)
        return [(where + (index,), self.mapping(item, where + (index,))) for index, item in enumerate(value)]

    def read_keys(self, settings_class, mapping, path, **given):
        """
        The keyword arguments of C{settings_class} for section C{mapping} at
        C{path}: C{given} (values the section module worked out by hand) and
        every other declared key read with L{read}, in declaration order.
        """
        values = dict(given)
        for field, key_path, _ in declared_keys(settings_class):
            if field.name in values:
                continue
            section, where = self._descend(mapping, path, key_path[:-1])
            values[field.name] = self.read(section, where, key_path[-1])
        return values

    def read_unkept(self, settings_class, mapping, path):
        """Type-check the C{OTHER_KEYS} of C{settings_class} that are read but not kept."""
        for name, node in getattr(settings_class, "OTHER_KEYS", {}).items():
            if getattr(node, "kind", "any") == "any":
                continue
            parts = name.split(".")
            section, where = self._descend(mapping, path, parts[:-1])
            self.read(section, where, parts[-1])

    def _descend(self, mapping, path, parts):
        """The sub-section C{parts} below C{mapping} (at C{path}), and its path."""
        where = tuple(path)
        for part in parts:
            mapping = self.mapping(mapping.get(part), where + (part,))
            where += (part,)
        return mapping, where
