"""
Configurations built to never finish or to crash the loader: YAML alias bombs,
aliases inside their own anchor, nesting deep enough to overflow a C stack,
durations and numbers of thousands of digits or of a nanosecond. Each fails
with one exact line naming the file and line (or the variable), in the loader
and in the daemon, which exits 1 at once.
"""

import os
import time

from twisted.trial import unittest

from spectroreg.config.compose import MAX_DEPTH
from spectroreg.config.durations import parse_duration
from spectroreg.config.errors import ConfigError
from spectroreg.config.load import load_settings
from spectroreg.config.tree import AliasBudget
from tests.support.config import MINIMAL_YAML, ConfigTestCase
from tests.support.daemon import daemon_for

HEAD = "version: 0.1\nstorage: inmemory\n"
HUGE = "9" * 5000


def laughs(levels, width=9):
    """A "billion laughs" document: each anchor holds C{width} aliases of the one before."""
    lines = [HEAD.rstrip("\n"), "l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    for level in range(1, levels + 1):
        lines.append("l{0}: &l{0} [".format(level) + ", ".join(["*l{}".format(level - 1)] * width) + "]")
    return "\n".join(lines) + "\n"


def merge_laughs(levels):
    """The same bomb through merge keys: each mapping merges the one before twice."""
    lines = [HEAD.rstrip("\n"), "m0: &m0 {a: 1, b: 2}"]
    for level in range(1, levels + 1):
        lines.append("m{0}: &m{0} {{<<: [*m{1}, *m{1}], k{0}: 1}}".format(level, level - 1))
    return "\n".join(lines) + "\n"


def alias_chain(length):
    """Each anchor a list holding the previous one: shallow as written, deep once expanded."""
    lines = [HEAD.rstrip("\n"), "c0: &c0 [x]"]
    for index in range(1, length + 1):
        lines.append("c{0}: &c{0} [*c{1}]".format(index, index - 1))
    return "\n".join(lines) + "\n"


def nested(depth):
    return HEAD + "x: " + "[" * depth + "]" * depth + "\n"


def purging(key, value):
    return "version: 0.1\nstorage:\n  inmemory:\n  maintenance:\n    uploadpurging:\n      {}: {}\n".format(key, value)


def http(key, value):
    return HEAD + "http:\n  {}: {}\n".format(key, value)


# (description, yaml, environment, expected message; {path} is the file)
ERRORS = [
    ("billion laughs", laughs(6), {},
     "{path}:6: invalid YAML: document contains excessive aliasing (expanding *l2)"),
    ("billion laughs through merge keys", merge_laughs(20), {},
     "{path}:12: invalid YAML: document contains excessive aliasing (expanding *m8)"),
    ("alias inside its own anchor", HEAD + "log:\n  fields:\n    x: &a [*a]\n", {},
     "{path}:5: invalid YAML: anchor 'a' value contains itself"),
    ("alias deep inside its own anchor", HEAD + "x: &a\n  y:\n    - 1\n    - z: *a\n", {},
     "{path}:6: invalid YAML: anchor 'a' value contains itself"),
    ("merge of its own anchor", HEAD + "x: &a {k: 1, <<: *a}\n", {},
     "{path}:3: invalid YAML: anchor 'a' value contains itself"),
    ("merge of a scalar", HEAD + "s: &s text\nx: {<<: *s}\n", {},
     "{path}:4: invalid YAML: expected a mapping or a list of mappings for merging (<<), but found scalar"),
    ("nested deeper than Python recurses", nested(500), {},
     "{path}:3: invalid YAML: nested deeper than 100 levels"),
    ("deep only once aliases are expanded", alias_chain(150), {},
     "{path}:102: invalid YAML: nested deeper than 100 levels once aliases are expanded (expanding *c98)"),
    ("undefined alias", HEAD + "x: *nowhere\n", {},
     "{path}:3: invalid YAML: found undefined alias 'nowhere'"),
    ("purging every nanosecond", purging("interval", "1ns"), {},
     "{path}:6: storage.maintenance.uploadpurging.interval: must be at least 1s, got '1ns'"),
    ("purging uploads as they start", purging("age", "500ms"), {},
     "{path}:6: storage.maintenance.uploadpurging.age: must be at least 1s, got '500ms'"),
    ("a drain timeout of 5000 digits", http("draintimeout", HUGE + "s"), {},
     "{path}:4: http.draintimeout: duration '" + "9" * 40 + "'... (5001 characters) is out of range"
     " (at most 2562047h47m16.854775807s)"),
    ("a drain timeout one nanosecond past Go's", http("draintimeout", "2562047h47m16.854775808s"), {},
     "{path}:4: http.draintimeout: duration '2562047h47m16.854775808s' is out of range"
     " (at most 2562047h47m16.854775807s)"),
    ("a negative drain timeout", http("draintimeout", "-1s"), {},
     "{path}:4: http.draintimeout: must be at least 0s, got '-1s'"),
    ("a drain timeout of 5000 digits, unquoted number", http("draintimeout", HUGE), {},
     "{path}:4: http.draintimeout: invalid duration '" + "9" * 40 + "'... (5000 characters); expected e.g. 60s, 1h30m, 300ms"),
    ("catalog entries of 5000 digits", HEAD + "catalog:\n  maxentries: " + HUGE + "\n", {},
     "{path}:4: catalog.maxentries: must be at most 9223372036854775807, got a number of 5000 digits"),
    ("catalog entries past Go's int", HEAD + "catalog:\n  maxentries: 9223372036854775808\n", {},
     "{path}:4: catalog.maxentries: must be at most 9223372036854775807, got 9223372036854775808"),
    ("filesystem threads of 5000 digits, quoted",
     "version: 0.1\nstorage:\n  filesystem:\n    maxthreads: '" + HUGE + "'\n", {},
     "{path}:4: storage.filesystem.maxthreads: must be at most 9223372036854775807, got a number of 5000 digits"),
    ("S3 port of 5000 digits", "version: 0.1\nstorage:\n  s3:\n    bucket: b\n    region: r\n    port: " + HUGE + "\n", {},
     "{path}:6: storage.s3.port: must be at most 65535, got a number of 5000 digits"),
    ("S3 copy concurrency of minus 5000 digits",
     "version: 0.1\nstorage:\n  s3:\n    bucket: b\n    region: r\n    multipartcopymaxconcurrency: -" + HUGE + "\n", {},
     "{path}:6: storage.s3.multipartcopymaxconcurrency: must be at least 1, got a number of 5000 digits"),
    ("tag concurrency of 5000 digits", "version: 0.1\nstorage:\n  inmemory:\n  tag:\n    concurrencylimit: " + HUGE + "\n", {},
     "{path}:5: storage.tag.concurrencylimit: must be at most 9223372036854775807, got a number of 5000 digits"),
    ("blob descriptor cache size of 5000 digits",
     "version: 0.1\nstorage:\n  inmemory:\n  cache:\n    blobdescriptorsize: " + HUGE + "\n", {},
     "{path}:5: storage.cache.blobdescriptorsize: must be at most 9223372036854775807, got a number of 5000 digits"),
    ("a listening port of 5000 digits", http("addr", "127.0.0.1:" + HUGE), {},
     "{path}:4: http.addr: invalid port '" + "9" * 40 + "'... (5000 characters) in address '127.0.0.1:"
     + "9" * 30 + "'... (5010 characters); expected 0-65535"),
    ("a list index of 5000 digits in a variable", MINIMAL_YAML, {"REGISTRY_HTTP_TLS_CLIENTCAS_" + HUGE: "/ca.pem"},
     "REGISTRY_HTTP_TLS_CLIENTCAS_" + "9" * 52 + "...: list index of 5000 digits; indices count up from 0"),
    ("an alias bomb in a variable", MINIMAL_YAML, {"REGISTRY_LOG_FIELDS": "&a [*a]"},
     "REGISTRY_LOG_FIELDS: not valid YAML: anchor 'a' value contains itself"),
    ("a drain timeout of 5000 digits in a variable", MINIMAL_YAML, {"REGISTRY_HTTP_DRAINTIMEOUT": HUGE + "s"},
     "REGISTRY_HTTP_DRAINTIMEOUT: http.draintimeout: duration '" + "9" * 40 + "'... (5001 characters) is out of range"
     " (at most 2562047h47m16.854775807s)"),
    ("catalog entries of 5000 digits in a variable", MINIMAL_YAML, {"REGISTRY_CATALOG_MAXENTRIES": HUGE},
     "REGISTRY_CATALOG_MAXENTRIES: catalog.maxentries: must be at most 9223372036854775807, got a number of 5000 digits"),
]


class HostileConfigTests(ConfigTestCase):
    def test_errors(self):
        """Each fails within seconds with exactly one line naming where and what."""
        for description, text, environ, expected in ERRORS:
            path = self.write(text)
            started = time.monotonic()
            error = self.assertRaises(ConfigError, load_settings, path, environ)
            self.assertLess(time.monotonic() - started, 10, description)
            self.assertEqual(str(error), expected.format(path=path), description)

    def test_aliases_within_the_bound(self):
        """Ordinary reuse of anchors, even a lot of it, loads as before."""
        lines = [HEAD.rstrip("\n"), "log:", "  fields:", "    base: &b {a: 1, b: [1, 2, 3], c: {d: e}}"]
        lines += ["    f{}: *b".format(index) for index in range(200)]
        lines += ["    m{}: {{<<: *b, z: {}}}".format(index, index) for index in range(200)]
        settings = self.load("\n".join(lines) + "\n")
        fields = settings.log.fields
        self.assertEqual(fields["f199"], {"a": 1, "b": [1, 2, 3], "c": {"d": "e"}})
        self.assertEqual(fields["m7"], {"a": 1, "b": [1, 2, 3], "c": {"d": "e"}, "z": 7})
        # Each alias is its own copy, as Go decodes it: changing one leaves the rest.
        fields["f0"]["b"].append(4)
        self.assertEqual(fields["f1"]["b"], [1, 2, 3])

    def test_nesting_at_the_limit(self):
        settings = self.load(HEAD + "log:\n  fields:\n    x: " + "[" * (MAX_DEPTH - 3) + "]" * (MAX_DEPTH - 3) + "\n")
        self.assertIsInstance(settings.log.fields["x"], list)

    def test_bounds_that_pass(self):
        settings = self.load(purging("interval", "1s") + "      age: 1s\n")
        self.assertEqual((settings.storage.uploadpurging.interval, settings.storage.uploadpurging.age), (1.0, 1.0))
        self.assertEqual(self.load(http("draintimeout", "2562047h47m16.854775807s")).http.draintimeout, 2 ** 63 / 1e9)
        self.assertEqual(self.load(HEAD + "catalog:\n  maxentries: 9223372036854775807\n").catalog.maxentries, 2 ** 63 - 1)
        # A disabled purger's values are not used, so not bounded below.
        settings = self.load(purging("enabled", "false") + "      interval: 1ns\n")
        self.assertFalse(settings.storage.uploadpurging.enabled)

    def test_go_alias_ratio(self):
        cases = [(1, 0.99), (400000, 0.99), (2200000, 0.545), (4000000, 0.10), (10 ** 9, 0.10)]
        for decoded, ratio in cases:
            self.assertAlmostEqual(AliasBudget.allowed_ratio(decoded), ratio, places=9, msg=decoded)

    def test_durations_counted_in_nanoseconds(self):
        self.assertEqual(parse_duration("0." + "0" * 5000 + "1s"), 0.0)
        self.assertEqual(parse_duration("1.0000000019s"), 1.000000001)
        self.assertEqual(parse_duration("1" + "0" * 18 + "ns"), 1e9)
        self.assertRaises(ValueError, parse_duration, "1" + "0" * 19 + "ns")

    def load(self, text):
        return load_settings(self.write(text), {})


# The daemon with each: exit status 1, one line, promptly. ({path} is the file)
DAEMON = [
    ("billion laughs", laughs(9), "{path}:6: invalid YAML: document contains excessive aliasing (expanding *l2)"),
    ("alias inside its own anchor", HEAD + "x: &a [*a]\n", "{path}:3: invalid YAML: anchor 'a' value contains itself"),
    # libyaml stops at 1000 levels where it was built with that limit (PyPI's
    # wheels), Debian's does not: either way, one line.
    ("nested a hundred thousand levels", nested(100000), (
        "{path}:3: invalid YAML: nested deeper than 100 levels",
        "{path}:3: invalid YAML: exceeded maximum nesting depth (while increasing flow level)",
    )),
    ("purging every nanosecond", purging("interval", "1ns"),
     "{path}:6: storage.maintenance.uploadpurging.interval: must be at least 1s, got '1ns'"),
    ("a drain timeout of 5000 digits", http("draintimeout", HUGE + "s"),
     "{path}:4: http.draintimeout: duration '" + "9" * 40 + "'... (5001 characters) is out of range"
     " (at most 2562047h47m16.854775807s)"),
]


class HostileConfigDaemonTests(unittest.TestCase):
    def test_daemon_exits_at_once(self):
        for description, text, message in DAEMON:
            work = os.path.abspath(self.mktemp())
            os.makedirs(work)
            path = os.path.join(work, "config.yml")
            with open(path, "w") as stream:
                stream.write(text)
            daemon = daemon_for(self, None, workdir=work, config_path=path)
            started = time.monotonic()
            code = daemon.run_to_exit(timeout=60)
            elapsed = time.monotonic() - started
            self.assertEqual(code, 1, description)
            templates = (message,) if isinstance(message, str) else message
            self.assertIn(
                daemon.log_text().splitlines(),
                [["spectroreg: " + template.format(path=path)] for template in templates],
                description,
            )
            # Loaded machine: the daemon takes about a second to start at all.
            self.assertLess(elapsed, 20, description)
