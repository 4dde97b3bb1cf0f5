"""
``REGISTRY_*`` overrides: Distribution's rules, and each of its pitfalls
behaving as spectroreg fixes it (docs/config.md lists them).
"""

from spectroreg.config.environment import canonical_header, resolve
from spectroreg.config.errors import ConfigError
from spectroreg.config.load import load_settings
from tests.support.config import DEFAULT_YAML, MINIMAL_YAML, ConfigTestCase, dig

TLS_YAML = """\
version: 0.1
storage: inmemory
http:
  tls:
    letsencrypt:
      cachefile: /var/lib/acme
      hosts: [x.example.com, y.example.com]
"""

CLIENTCAS_YAML = """\
version: 0.1
storage: inmemory
http:
  tls:
    certificate: /c.pem
    key: /k.pem
    clientcas: /a.pem
"""

S3_MAINTENANCE_YAML = """\
version: 0.1
storage:
  filesystem:
    rootdirectory: /srv/registry
  cache:
    blobdescriptor: inmemory
  delete:
    enabled: true
  redirect:
    disable: true
  maintenance:
    uploadpurging:
      enabled: false
    readonly:
      enabled: true
"""

# (description, yaml, environment, {settings path: expected value})
OVERRIDES = [
    ("a plain key", MINIMAL_YAML, {"REGISTRY_LOG_LEVEL": "debug"}, {"log.level": "debug"}),
    (
        "names match case-insensitively",
        MINIMAL_YAML,
        {"REGISTRY_log_Level": "warn"},
        {"log.level": "warn"},
    ),
    (
        "nested keys",
        TLS_YAML,
        {"REGISTRY_HTTP_TLS_LETSENCRYPT_CACHEFILE": "/acme", "REGISTRY_HTTP_TLS_LETSENCRYPT_EMAIL": "a@b.c"},
        {"http.tls.letsencrypt.cachefile": "/acme", "http.tls.letsencrypt.email": "a@b.c"},
    ),
    (
        "issue 2's must-show variables over the default config",
        DEFAULT_YAML,
        {
            "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/tmp/data",
            "REGISTRY_HTTP_ADDR": "127.0.0.1:0",
            "REGISTRY_AUTH_HTPASSWD_PATH": "/tmp/htpasswd",
        },
        {
            "storage.filesystem.rootdirectory": "/tmp/data",
            "http.addr": "127.0.0.1:0",
            "auth.htpasswd.path": "/tmp/htpasswd",
            "auth.htpasswd.realm": "basic-realm",
            "storage.blobdescriptor_cache": "inmemory",
        },
    ),
    # Pitfall: REGISTRY_AUTH=htpasswd wiped the section in Distribution ("path must be set").
    (
        "naming the configured auth provider keeps its settings (users' docs example)",
        DEFAULT_YAML,
        {"REGISTRY_AUTH": "htpasswd", "REGISTRY_AUTH_HTPASSWD_REALM": "My Enterprise Realm"},
        {
            "auth.provider": "htpasswd",
            "auth.htpasswd.realm": "My Enterprise Realm",
            "auth.htpasswd.path": "/auth/htpasswd-basic",
        },
    ),
    (
        "naming a provider the file lacks starts it empty",
        MINIMAL_YAML,
        {
            "REGISTRY_AUTH": "htpasswd",
            "REGISTRY_AUTH_HTPASSWD_REALM": "r",
            "REGISTRY_AUTH_HTPASSWD_PATH": "/p",
        },
        {"auth.htpasswd.realm": "r", "auth.htpasswd.path": "/p"},
    ),
    (
        "naming a different provider replaces the section",
        DEFAULT_YAML,
        {"REGISTRY_AUTH": "token", "REGISTRY_AUTH_TOKEN_REALM": "https://auth.example.com/token"},
        {"auth.provider": "token", "auth.htpasswd": None, "auth.parameters.realm": "https://auth.example.com/token"},
    ),
    (
        "an empty REGISTRY_AUTH switches authentication off",
        DEFAULT_YAML,
        {"REGISTRY_AUTH": ""},
        {"auth": None},
    ),
    # Pitfall: REGISTRY_STORAGE=inmemory dropped storage.cache/delete/maintenance.
    (
        "choosing another driver keeps the reserved storage keys",
        S3_MAINTENANCE_YAML,
        {"REGISTRY_STORAGE": "inmemory"},
        {
            "storage.driver": "inmemory",
            "storage.filesystem": None,
            "storage.blobdescriptor_cache": "inmemory",
            "storage.delete_enabled": True,
            "storage.redirect_disable": True,
            "storage.uploadpurging.enabled": False,
            "storage.readonly": True,
        },
    ),
    (
        "naming the configured driver keeps its parameters",
        S3_MAINTENANCE_YAML,
        {"REGISTRY_STORAGE": "filesystem"},
        {"storage.driver": "filesystem", "storage.filesystem.rootdirectory": "/srv/registry"},
    ),
    (
        "a section chosen and then filled in (variables applied sorted by name)",
        DEFAULT_YAML,
        # Given in reverse order on purpose: sorting puts REGISTRY_STORAGE first.
        {
            "REGISTRY_STORAGE_S3_REGION": "eu-west-1",
            "REGISTRY_STORAGE_S3_BUCKET": "images",
            "REGISTRY_STORAGE": "s3",
        },
        {
            "storage.driver": "s3",
            "storage.s3.bucket": "images",
            "storage.s3.region": "eu-west-1",
            "storage.blobdescriptor_cache": "inmemory",
        },
    ),
    (
        "a mapping for REGISTRY_STORAGE keeps the reserved keys it does not set",
        S3_MAINTENANCE_YAML,
        {"REGISTRY_STORAGE": "{inmemory: {}, delete: {enabled: false}}"},
        {"storage.driver": "inmemory", "storage.delete_enabled": False, "storage.readonly": True},
    ),
    # Pitfall: header overrides added a second, lower-case header.
    (
        "a header override replaces the header whatever its case",
        DEFAULT_YAML,
        {"REGISTRY_HTTP_HEADERS_X-FRAME-OPTIONS": "[SAMEORIGIN]"},
        {"http.headers.X-Frame-Options": ("SAMEORIGIN",)},
    ),
    (
        "a header override as a scalar is one value",
        DEFAULT_YAML,
        {"REGISTRY_HTTP_HEADERS_REFERRER-POLICY": "no-referrer"},
        {"http.headers.Referrer-Policy": ("no-referrer",)},
    ),
    (
        "a new header gets its canonical name",
        MINIMAL_YAML,
        {"REGISTRY_HTTP_HEADERS_ACCESS-CONTROL-ALLOW-ORIGIN": "['*']"},
        {"http.headers.Access-Control-Allow-Origin": ("*",)},
    ),
    # Pitfall: v3's indexed lists dropped scalar values.
    (
        "indexed items build a list",
        MINIMAL_YAML,
        {
            "REGISTRY_HTTP_TLS_LETSENCRYPT_CACHEFILE": "/acme",
            "REGISTRY_HTTP_TLS_LETSENCRYPT_HOSTS_0": "a.example.com",
            "REGISTRY_HTTP_TLS_LETSENCRYPT_HOSTS_1": "b.example.com",
        },
        {"http.tls.letsencrypt.hosts": ("a.example.com", "b.example.com")},
    ),
    (
        "an index replaces one item of the file's list",
        TLS_YAML,
        {"REGISTRY_HTTP_TLS_LETSENCRYPT_HOSTS_1": "z.example.com"},
        {"http.tls.letsencrypt.hosts": ("x.example.com", "z.example.com")},
    ),
    (
        "an index appends to the file's list",
        TLS_YAML,
        {"REGISTRY_HTTP_TLS_LETSENCRYPT_HOSTS_2": "z.example.com"},
        {"http.tls.letsencrypt.hosts": ("x.example.com", "y.example.com", "z.example.com")},
    ),
    (
        "an index after a scalar keeps the scalar as item 0",
        CLIENTCAS_YAML,
        {"REGISTRY_HTTP_TLS_CLIENTCAS_1": "/b.pem"},
        {"http.tls.clientcas": ("/a.pem", "/b.pem")},
    ),
    (
        "indices sort as numbers (2 before 10)",
        MINIMAL_YAML,
        dict(
            [("REGISTRY_HTTP_TLS_CERTIFICATE", "/c"), ("REGISTRY_HTTP_TLS_KEY", "/k")]
            + [("REGISTRY_HTTP_TLS_CLIENTCAS_{}".format(i), "/ca{}.pem".format(i)) for i in range(12)]
        ),
        {"http.tls.clientcas": tuple("/ca{}.pem".format(i) for i in range(12))},
    ),
    (
        "the whole-list form",
        TLS_YAML,
        {"REGISTRY_HTTP_TLS_LETSENCRYPT_HOSTS": "[a.example.com, b.example.com]"},
        {"http.tls.letsencrypt.hosts": ("a.example.com", "b.example.com")},
    ),
    # Values are YAML 1.1.
    ("false is a bool", S3_MAINTENANCE_YAML, {"REGISTRY_STORAGE_DELETE_ENABLED": "false"}, {"storage.delete_enabled": False}),
    ("yes is a bool", MINIMAL_YAML, {"REGISTRY_STORAGE_DELETE_ENABLED": "yes"}, {"storage.delete_enabled": True}),
    (
        "a number is an int",
        MINIMAL_YAML,
        {
            "REGISTRY_STORAGE": "s3",
            "REGISTRY_STORAGE_S3_BUCKET": "b",
            "REGISTRY_STORAGE_S3_REGION": "us-east-1",
            "REGISTRY_STORAGE_S3_CHUNKSIZE": "5242880",
        },
        {"storage.s3.chunksize": 5242880},
    ),
    ("tcp://x is a string", MINIMAL_YAML, {"REGISTRY_HTTP_SECRET": "tcp://x"}, {"http.secret": "tcp://x"}),
    (
        "a string key keeps the literal text of numbers and bools",
        MINIMAL_YAML,
        {"REGISTRY_HTTP_SECRET": "0123", "REGISTRY_LOG_FIELDS_ENVIRONMENT": "prod"},
        {"http.secret": "0123", "log.fields.environment": "prod"},
    ),
    ("a duration", MINIMAL_YAML, {"REGISTRY_HTTP_DRAINTIMEOUT": "1m30s"}, {"http.draintimeout": 90.0}),
    ("worker processes", DEFAULT_YAML, {"REGISTRY_HTTP_WORKERS": "4"}, {"http.workers": 4}),
    ("the version itself", MINIMAL_YAML, {"REGISTRY_VERSION": "0.1"}, {"version": "0.1"}),
    ("catalog", MINIMAL_YAML, {"REGISTRY_CATALOG_MAXENTRIES": "50"}, {"catalog.maxentries": 50}),
    (
        "the deprecated top-level loglevel",
        MINIMAL_YAML,
        {"REGISTRY_LOGLEVEL": "error"},
        {"log.level": "error"},
    ),
]

# (description, yaml, environment, expected message)
ERRORS = [
    (
        "workers over inmemory storage",
        MINIMAL_YAML,
        {"REGISTRY_HTTP_WORKERS": "2"},
        "REGISTRY_HTTP_WORKERS: http.workers: 2: inmemory storage lives in one process, so one worker "
        "can serve it; use filesystem or s3 storage, or workers: 1",
    ),
    (
        "too many workers",
        DEFAULT_YAML,
        {"REGISTRY_HTTP_WORKERS": "65"},
        "REGISTRY_HTTP_WORKERS: http.workers: must be at most 64, got 65",
    ),
    (
        "a second storage driver",
        DEFAULT_YAML,
        {"REGISTRY_STORAGE_S3_BUCKET": "b"},
        "REGISTRY_STORAGE_S3_BUCKET: storage.s3: would add a second storage driver next to filesystem "
        "(exactly one is allowed; set REGISTRY_STORAGE=s3 to switch)",
    ),
    (
        "a second auth provider",
        DEFAULT_YAML,
        {"REGISTRY_AUTH_TOKEN_REALM": "https://auth.example.com"},
        "REGISTRY_AUTH_TOKEN_REALM: auth.token: would add a second auth provider next to htpasswd "
        "(exactly one is allowed; set REGISTRY_AUTH=token to switch)",
    ),
    (
        "a wrong boolean",
        MINIMAL_YAML,
        {"REGISTRY_STORAGE_DELETE_ENABLED": "maybe"},
        "REGISTRY_STORAGE_DELETE_ENABLED: storage.delete.enabled: expected a boolean (true or false), got 'maybe'",
    ),
    (
        "a wrong integer",
        MINIMAL_YAML,
        {"REGISTRY_CATALOG_MAXENTRIES": "lots"},
        "REGISTRY_CATALOG_MAXENTRIES: catalog.maxentries: expected an integer, got 'lots'",
    ),
    (
        "a wrong duration",
        MINIMAL_YAML,
        {"REGISTRY_HTTP_DRAINTIMEOUT": "soon"},
        "REGISTRY_HTTP_DRAINTIMEOUT: http.draintimeout: invalid duration 'soon'; expected e.g. 60s, 1h30m, 300ms",
    ),
    (
        "a duration without unit",
        MINIMAL_YAML,
        {"REGISTRY_HTTP_DRAINTIMEOUT": "5"},
        "REGISTRY_HTTP_DRAINTIMEOUT: http.draintimeout: invalid duration '5'; expected e.g. 60s, 1h30m, 300ms",
    ),
    (
        "a mapping for a string key",
        MINIMAL_YAML,
        {"REGISTRY_HTTP_ADDR": "{a: b}"},
        "REGISTRY_HTTP_ADDR: http.addr: expected a string, got a mapping",
    ),
    (
        "an unknown level",
        MINIMAL_YAML,
        {"REGISTRY_LOG_LEVEL": "verbose"},
        "REGISTRY_LOG_LEVEL: log.level: unknown level 'verbose' (expected error, warn, info, debug)",
    ),
    (
        "a list index that skips items",
        MINIMAL_YAML,
        {"REGISTRY_HTTP_TLS_CLIENTCAS_2": "/x.pem"},
        "REGISTRY_HTTP_TLS_CLIENTCAS_2: http.tls.clientcas[2]: index 2 is past the end of the list (0 items); "
        "indices must count up from 0",
    ),
    (
        "a driver chosen that is not supported",
        MINIMAL_YAML,
        {"REGISTRY_STORAGE": "azure"},
        "REGISTRY_STORAGE: storage.azure: the azure storage driver is not supported "
        "(spectroreg supports inmemory, filesystem, s3)",
    ),
    (
        "a provider chosen whose settings are missing",
        MINIMAL_YAML,
        {"REGISTRY_AUTH": "htpasswd", "REGISTRY_AUTH_HTPASSWD_PATH": "/p"},
        "REGISTRY_AUTH: auth.htpasswd.realm: required",
    ),
    (
        "bad YAML in a non-string value",
        MINIMAL_YAML,
        {"REGISTRY_CATALOG_MAXENTRIES": "[1, "},
        "REGISTRY_CATALOG_MAXENTRIES: not valid YAML: did not find expected node content",
    ),
]


class OverrideTableTests(ConfigTestCase):
    def test_overrides(self):
        """Each (yaml, env) case yields the expected settings, with no warnings."""
        for description, text, environ, expected in OVERRIDES:
            settings = self.load(text, environ)
            for dotted, value in expected.items():
                self.assertEqual(dig(settings, dotted), value, "{}: {}".format(description, dotted))
            self.assertEqual(
                [w for w in settings.warnings if "matches no configuration key" in w],
                [],
                description,
            )

    def test_errors(self):
        """Each failing case is one line that starts with the variable's name."""
        for description, text, environ, expected in ERRORS:
            path = self.write(text)
            error = self.assertRaises(ConfigError, load_settings, path, environ)
            self.assertEqual(str(error), expected, description)


class PitfallTests(ConfigTestCase):
    def test_header_not_duplicated(self):
        """Only one X-Frame-Options header remains, in the file's spelling."""
        settings = self.load(DEFAULT_YAML, {"REGISTRY_HTTP_HEADERS_x-frame-options": "[SAMEORIGIN]"})
        names = [name for name in settings.http.headers if name.lower() == "x-frame-options"]
        self.assertEqual(names, ["X-Frame-Options"])
        self.assertEqual(len(settings.http.headers), 6)

    def test_service_links_ignored_silently(self):
        """Kubernetes service-link variables that match no key neither fail nor warn."""
        environ = {
            "REGISTRY_AUTH_PORT": "tcp://10.0.0.7:5001",
            "REGISTRY_AUTH_PORT_5001_TCP": "tcp://10.0.0.7:5001",
            "REGISTRY_AUTH_PORT_5001_TCP_ADDR": "10.0.0.7",
            "REGISTRY_AUTH_SERVICE_HOST": "10.0.0.7",
            "REGISTRY_AUTH_SERVICE_PORT": "5001",
            "REGISTRY_PORT": "tcp://10.0.0.8:5000",
            "REGISTRY_SERVICE_PORT_HTTP": "5000",
            "REGISTRY_STORAGE_PORT": "tcp://10.0.0.9:80",
            # Free-form sections match any name; a service link must not invent keys there.
            "REGISTRY_NOTIFICATIONS_PORT": "tcp://10.0.0.10:80",
            "REGISTRY_NOTIFICATIONS_PORT_80_TCP_ADDR": "10.0.0.10",
            "REGISTRY_LOG_FIELDS_SERVICE_PORT": "80",
        }
        settings = self.load(DEFAULT_YAML, environ)
        self.assertEqual(settings.warnings, ())
        self.assertEqual(settings.auth.htpasswd.path, "/auth/htpasswd-basic")
        self.assertEqual(settings.storage.driver, "filesystem")
        self.assertEqual(settings.notifications.endpoints, ())
        self.assertEqual(settings.log.fields, {"service": "registry"})

    def test_service_link_shaped_key_still_applies(self):
        """A service-link-shaped name that is a real key is applied (storage.s3.port)."""
        settings = self.load(
            "version: 0.1\nstorage:\n  s3:\n    bucket: b\n    host: minio\n",
            {"REGISTRY_STORAGE_S3_PORT": "9000"},
        )
        self.assertEqual(settings.storage.s3.port, 9000)

    def test_unknown_variable_warns(self):
        """Other unknown variables only warn, naming the variable."""
        settings = self.load(MINIMAL_YAML, {"REGISTRY_HTTP_TSL_CERTIFICATE": "/c.pem", "REGISTRY_": "x"})
        self.assertIn("REGISTRY_HTTP_TSL_CERTIFICATE: matches no configuration key; ignored", settings.warnings)
        self.assertIn("REGISTRY_: matches no configuration key; ignored", settings.warnings)
        self.assertIsNone(settings.http.tls)

    def test_configuration_path_is_not_a_key(self):
        """REGISTRY_CONFIGURATION_PATH names the file and is not warned about."""
        path = self.write(MINIMAL_YAML)
        settings = load_settings(None, {"REGISTRY_CONFIGURATION_PATH": path})
        self.assertEqual(settings.source, path)
        self.assertEqual(settings.warnings, ())

    def test_keys_with_underscores_are_unreachable(self):
        """A free-form key containing _ cannot be set: the name splits there."""
        settings = self.load(
            "version: 0.1\nstorage: inmemory\nlog:\n  fields:\n    my_key: a\n",
            {"REGISTRY_LOG_FIELDS_MY_KEY": "b"},
        )
        self.assertEqual(settings.log.fields["my_key"], "a")
        self.assertEqual(settings.log.fields["my"], {"key": "b"})

    def test_environment_wins_over_file(self):
        settings = self.load("version: 0.1\nstorage: inmemory\nlog:\n  level: debug\n", {"REGISTRY_LOG_LEVEL": "error"})
        self.assertEqual(settings.log.level, "error")

    def test_error_from_file_value_names_file_line(self):
        """A value from the file that the environment did not touch is reported at its line."""
        path = self.write("version: 0.1\nstorage: inmemory\nhttp:\n  draintimeout: soon\n")
        error = self.assertRaises(ConfigError, load_settings, path, {"REGISTRY_LOG_LEVEL": "info"})
        self.assertEqual(
            str(error),
            "{}:4: http.draintimeout: invalid duration 'soon'; expected e.g. 60s, 1h30m, 300ms".format(path),
        )


class ResolveTests(ConfigTestCase):
    def test_resolve(self):
        tree = {"http": {"headers": {"X-Frame-Options": ["DENY"]}}, "storage": {"filesystem": {}}}
        cases = [
            ("REGISTRY_LOG_LEVEL", ("log", "level")),
            ("REGISTRY_HTTP_HEADERS_X-FRAME-OPTIONS", ("http", "headers", "X-Frame-Options")),
            ("REGISTRY_HTTP_HEADERS_X-FRAME-OPTIONS_0", ("http", "headers", "X-Frame-Options", 0)),
            ("REGISTRY_HTTP_TLS_CLIENTCAS_3", ("http", "tls", "clientcas", 3)),
            ("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_URL", ("notifications", "endpoints", 0, "url")),
            ("REGISTRY_AUTH_PORT", None),
            ("REGISTRY_LOG_LEVEL_X", None),
            ("REGISTRY_STORAGE_FOO", None),
            ("REGISTRY_HTTP_TLS_CLIENTCAS_X", None),
        ]
        for name, expected in cases:
            found = resolve(name, tree)
            self.assertEqual(found[0] if found else None, expected, name)

    def test_canonical_header(self):
        self.assertEqual(canonical_header("X-FRAME-OPTIONS"), "X-Frame-Options")
        self.assertEqual(canonical_header("content-security-policy"), "Content-Security-Policy")
