"""Shared pieces for the configuration tests: real temp files, the users' default config."""

import os

from twisted.trial import unittest

from spectroreg.config.errors import ConfigError
from spectroreg.config.load import effective_config, load_settings

# The default config our users' image carries (issue 2), CSP quote fixed.
DEFAULT_YAML = """\
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /data/.spectro-server
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [ nosniff ]
    Strict-Transport-Security: [ max-age=63072000; includeSubdomains; preload ]
    Content-Security-Policy: [ img-src 'self'; script-src 'self'; style-src 'self' ]
    X-Frame-Options: [ DENY ]
    X-XSS-Protection: [ 1; mode=block ]
    Referrer-Policy: [ same-origin ]
auth:
  htpasswd:
    realm: basic-realm
    path: /auth/htpasswd-basic
"""

MINIMAL_YAML = "version: 0.1\nstorage: inmemory\n"


def dig(settings, dotted):
    """C{dig(s, "auth.htpasswd.path")} → C{s.auth.htpasswd.path}; mappings by key."""
    value = settings
    for part in dotted.split("."):
        if isinstance(value, dict):
            value = value[part]
        else:
            value = getattr(value, part)
    return value


class ConfigTestCase(unittest.SynchronousTestCase):
    """Writes YAML to a real file and loads it."""

    def write(self, text, name="config.yml"):
        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, name)
        with open(path, "w") as stream:
            stream.write(text)
        return path

    def load(self, text, environ=None):
        return load_settings(self.write(text), environ or {})

    def effective(self, text, environ=None):
        return effective_config(self.write(text), environ or {})

    def assert_error(self, text, environ, expected):
        """
        Loading fails with exactly C{expected}; C{{path}} in it stands for the
        file's path. Returns the message.
        """
        path = self.write(text)
        error = self.assertRaises(ConfigError, load_settings, path, environ or {})
        message = str(error)
        self.assertEqual(message, expected.format(path=path))
        self.assertNotIn("\n", message)
        return message

    def assert_warning(self, settings, expected):
        expected = expected.format(path=settings.source)
        self.assertIn(expected, settings.warnings)
