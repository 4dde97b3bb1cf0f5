"""
Each configuration key is declared once, on the settings field it fills
(spectroreg.config.declare), and everything else comes from there: the
schema, the validation's typed reads, the defaults, README's reference.
"""

import copy
import dataclasses
import os
import re

import yaml
from twisted.trial import unittest

from spectroreg.config import declare, settings as s
from spectroreg.config.errors import ConfigError
from spectroreg.config.load import load_settings
from spectroreg.config.schema import ANY, SCHEMA, leaf_paths, schema_at
from spectroreg.config.tree import dotted

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")

# A base configuration in which the section holding each key is active.
_BASES = [
    (("storage", "s3"), {"storage": {"s3": {"bucket": "b", "region": "r"}}}),
    (("storage", "filesystem"), {"storage": {"filesystem": {"rootdirectory": "/x"}}}),
    (("http", "tls", "letsencrypt"), {"http": {"tls": {"letsencrypt": {"cachefile": "/c", "hosts": ["a.example"]}}}}),
    (("http", "tls"), {"http": {"tls": {"certificate": "/c.pem", "key": "/k.pem"}}}),
    (("http", "debug"), {"http": {"debug": {"addr": "127.0.0.1:5001"}}}),
    (("notifications", "endpoints"), {"notifications": {"endpoints": [{"name": "n", "url": "http://x"}]}}),
    (("health", "file"), {"health": {"file": [{"file": "/f"}]}}),
    (("health", "http"), {"health": {"http": [{"uri": "http://x"}]}}),
    (("health", "tcp"), {"health": {"tcp": [{"addr": "x:1"}]}}),
    (("auth", "htpasswd"), {"auth": {"htpasswd": {"realm": "r", "path": "/p"}}}),
]


def _checked_paths():
    """Every declared key with a kind the validation reads (not free-form)."""
    return [
        path for path in leaf_paths()
        if getattr(schema_at(path), "kind", "any") != "any" and path != ("version",)
    ]


def _config_with(path, value):
    config = {"version": "0.1", "storage": {"inmemory": {}}}
    for prefix, base in _BASES:
        if path[: len(prefix)] == prefix:
            for section, content in base.items():
                config[section] = copy.deepcopy(content)
            break
    node = config
    for part in path[:-1]:
        node = node[part] if isinstance(part, int) else node.setdefault(part, {})
    node[path[-1]] = value
    return config


class DeclaredOnceTests(unittest.TestCase):
    def load(self, config):
        path = self.mktemp()
        with open(path, "w") as f:
            yaml.safe_dump(config, f)
        return load_settings(path, environ={})

    def test_twice_is_refused(self):
        """A key declared by a field and again as a key not kept is an error at import time."""

        @dataclasses.dataclass(frozen=True)
        class Twice:
            enabled: bool = declare.key(declare.BOOL, False, at="feature.enabled")

            OTHER_KEYS = {"feature.enabled": declare.Leaf(declare.BOOL)}

        self.assertRaises(declare.DuplicateKey, declare.tree_of, Twice)

    def test_every_declared_key_is_read(self):
        """
        The validation reads every declared key with its declared kind: a
        mapping where a value belongs fails, naming that key.
        """
        paths = _checked_paths()
        self.assertGreater(len(paths), 80)
        for path in paths:
            with self.assertRaises(ConfigError, msg=dotted(path)) as caught:
                self.load(_config_with(path, {"x": 1}))
            self.assertIn(" " + dotted(path) + ": ", str(caught.exception))

    def test_every_accepted_key_is_declared(self):
        """A key next to the declared ones is warned about as unknown: nothing else is accepted."""
        for path in _checked_paths():
            parent = path[:-1]
            settings = self.load(_config_with(parent + ("notdeclared",), "1"))
            self.assertTrue(
                any(dotted(parent + ("notdeclared",)) + ": unknown key" in w for w in settings.warnings)
                or schema_at(parent) is ANY,
                dotted(path),
            )

    def test_defaults_come_from_the_declaration(self):
        """An empty section gives the declared defaults."""
        settings = self.load({"version": "0.1", "storage": {"filesystem": {}, "maintenance": {}}, "http": {}})
        self.assertEqual(settings.storage.filesystem, s.FilesystemSettings())
        self.assertEqual(settings.storage.uploadpurging, s.UploadPurgingSettings())
        self.assertEqual(settings.http, s.HTTPSettings())
        self.assertEqual(settings.log, s.LogSettings())
        for settings_class in (s.FilesystemSettings, s.S3Settings, s.HTTPSettings, s.RedisSettings):
            for field, _, leaf in declare.declared_keys(settings_class):
                if field.default is not dataclasses.MISSING:
                    self.assertEqual(field.default, leaf.default, field.name)

    def test_readme_lists_every_key(self):
        """README's configuration reference names every declared key."""
        with open(README, encoding="utf-8") as f:
            text = f.read()
        reference = text[text.index("## Configuration reference"):text.index("### Environment overrides")]
        quoted = " ".join(re.findall(r"`([^`]*)`", reference))
        missing = [
            dotted(path) for path in leaf_paths()
            if not re.search(r"(^|[^A-Za-z0-9])" + re.escape(path[-1]) + r"([^A-Za-z0-9]|$)", quoted)
        ]
        self.assertEqual(missing, [])
        self.assertIn("storage", SCHEMA)
