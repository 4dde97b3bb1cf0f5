"""
Loading and validating configuration files: every section, every error class
with its exact one-line message, warnings with file lines, and masking in the
printed effective configuration.
"""

import os

import yaml

from spectroreg.config import settings as s
from spectroreg.config.errors import ConfigError
from spectroreg.config.load import effective_config, load_settings
from spectroreg.config.masking import MASK
from spectroreg.config.unimplemented import NOT_ACTED_ON
from tests.support.config import DEFAULT_YAML, MINIMAL_YAML, ConfigTestCase

FULL_YAML = """\
version: 0.1
log:
  level: debug
  formatter: json
  fields:
    service: registry
    environment: staging
  accesslog:
    disabled: true
storage:
  s3:
    accesskey: AKIAIOSFODNN7EXAMPLE
    secretkey: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
    region: eu-central-1
    bucket: images
    encrypt: true
    keyid: alias/registry
    secure: true
    skipverify: false
    v4auth: true
    chunksize: 10485760
    multipartcopychunksize: 33554432
    multipartcopymaxconcurrency: 50
    multipartcopythresholdsize: 33554432
    rootdirectory: /registry
    storageclass: reduced_redundancy
    objectacl: bucket-owner-full-control
    forcepathstyle: true
    useragent: spectroreg-test
  delete:
    enabled: true
  redirect:
    disable: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: true
      age: 72h
      interval: 1h30m
      dryrun: true
    readonly:
      enabled: false
http:
  addr: "[::1]:5443"
  net: tcp
  prefix: /registry/
  host: https://registry.example.com/
  secret: asecretforlocaldevelopment
  relativeurls: true
  draintimeout: 60s
  headers:
    X-Content-Type-Options: nosniff
  tls:
    certificate: /certs/server.pem
    key: /certs/server.key
    clientcas:
      - /certs/ca1.pem
      - /certs/ca2.pem
    clientauth: require-and-verify-client-cert
    minimumtls: tls1.3
    ciphersuites:
      - TLS_AES_128_GCM_SHA256
  debug:
    addr: localhost:5001
    prometheus:
      enabled: true
      path: /metrics
auth:
  htpasswd:
    realm: basic-realm
    path: /auth/htpasswd
catalog:
  maxentries: 200
"""

LETSENCRYPT_YAML = """\
version: 0.1
storage: inmemory
http:
  addr: :443
  tls:
    letsencrypt:
      cachefile: /var/lib/spectroreg/acme
      email: ops@example.com
      hosts:
        - registry.example.com
      directoryurl: https://acme-staging-v02.api.letsencrypt.org/directory
      challenges: [http-01]
      httpaddr: :8080
"""


class LoadTests(ConfigTestCase):
    def test_default_config(self):
        """The users' default config loads as the typed settings others read."""
        settings = self.load(DEFAULT_YAML)
        self.assertIsInstance(settings, s.Settings)
        self.assertEqual(settings.version, "0.1")
        self.assertEqual(settings.log, s.LogSettings(fields={"service": "registry"}))
        self.assertEqual(settings.storage.driver, "filesystem")
        self.assertEqual(settings.storage.filesystem, s.FilesystemSettings("/data/.spectro-server", 100))
        self.assertEqual(settings.storage.blobdescriptor_cache, "inmemory")
        self.assertEqual(settings.storage.uploadpurging, s.UploadPurgingSettings())
        self.assertEqual(settings.http.addr, ":5000")
        self.assertEqual(
            settings.http.headers["Content-Security-Policy"],
            ("img-src 'self'; script-src 'self'; style-src 'self'",),
        )
        self.assertEqual(settings.http.headers["X-XSS-Protection"], ("1; mode=block",))
        self.assertEqual(len(settings.http.headers), 6)
        self.assertEqual(settings.auth, s.AuthSettings("htpasswd", s.HtpasswdSettings("basic-realm", "/auth/htpasswd-basic")))
        self.assertEqual(settings.warnings, ())
        self.assertTrue(settings.source.endswith("config.yml"))

    def test_repository_default_config(self):
        """etc/spectro/config.yml, when present in the tree, loads without warnings."""
        path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "etc", "spectro", "config.yml")
        if not os.path.exists(path):
            self.skipTest("etc/spectro/config.yml is not in the tree yet")
        settings = load_settings(path, {})
        self.assertEqual(settings.warnings, ())
        self.assertEqual(settings.auth.provider, "htpasswd")

    def test_full_config(self):
        settings = self.load(FULL_YAML)
        self.assertEqual(settings.log, s.LogSettings("debug", "json", {"service": "registry", "environment": "staging"}, True))
        s3 = settings.storage.s3
        self.assertEqual(settings.storage.driver, "s3")
        self.assertIsNone(settings.storage.filesystem)
        self.assertEqual(
            (s3.bucket, s3.region, s3.accesskey, s3.encrypt, s3.keyid, s3.forcepathstyle),
            ("images", "eu-central-1", "AKIAIOSFODNN7EXAMPLE", True, "alias/registry", True),
        )
        self.assertEqual((s3.chunksize, s3.multipartcopymaxconcurrency), (10485760, 50))
        self.assertEqual((s3.storageclass, s3.objectacl, s3.rootdirectory), ("REDUCED_REDUNDANCY", "bucket-owner-full-control", "/registry"))
        self.assertEqual(s3.useragent, "spectroreg-test")
        self.assertTrue(settings.storage.delete_enabled)
        self.assertTrue(settings.storage.redirect_disable)
        self.assertEqual(settings.storage.uploadpurging, s.UploadPurgingSettings(True, 72 * 3600.0, 5400.0, True))
        self.assertFalse(settings.storage.readonly)
        http = settings.http
        self.assertEqual((http.addr, http.net, http.prefix), ("[::1]:5443", "tcp", "/registry"))
        self.assertEqual(http.host, "https://registry.example.com")
        self.assertEqual((http.secret, http.relativeurls, http.draintimeout), ("asecretforlocaldevelopment", True, 60.0))
        self.assertEqual(http.headers, {"X-Content-Type-Options": ("nosniff",)})
        self.assertEqual(http.workers, 1)
        self.assertEqual(
            http.tls,
            s.TLSSettings(
                certificate="/certs/server.pem",
                key="/certs/server.key",
                clientcas=("/certs/ca1.pem", "/certs/ca2.pem"),
                clientauth="require-and-verify-client-cert",
                minimumtls="tls1.3",
                ciphersuites=("TLS_AES_128_GCM_SHA256",),
            ),
        )
        self.assertEqual(http.debug, s.DebugSettings("localhost:5001", True, "/metrics"))
        self.assertEqual(settings.catalog.maxentries, 200)
        self.assertEqual(settings.warnings, ())

    def test_letsencrypt(self):
        settings = self.load(LETSENCRYPT_YAML)
        self.assertEqual(
            settings.http.tls.letsencrypt,
            s.LetsEncryptSettings(
                cachefile="/var/lib/spectroreg/acme",
                hosts=("registry.example.com",),
                email="ops@example.com",
                directoryurl="https://acme-staging-v02.api.letsencrypt.org/directory",
                challenges=("http-01",),
                httpaddr=":8080",
            ),
        )
        self.assertIsNone(settings.http.tls.certificate)

    def test_letsencrypt_defaults(self):
        settings = self.load(
            "version: 0.1\nstorage: inmemory\nhttp:\n  tls:\n    letsencrypt:\n"
            "      cachefile: /acme\n      hosts: registry.example.com\n"
        )
        le = settings.http.tls.letsencrypt
        self.assertEqual(le.hosts, ("registry.example.com",))
        self.assertEqual(le.directoryurl, s.LETSENCRYPT_PRODUCTION)
        self.assertEqual(le.challenges, ("tls-alpn-01", "http-01"))
        self.assertEqual(le.httpaddr, ":80")

    def test_letsencrypt_no_http_listener(self):
        for value in ("", "null", "''"):
            settings = self.load(
                "version: 0.1\nstorage: inmemory\nhttp:\n  tls:\n    letsencrypt:\n"
                "      cachefile: /acme\n      hosts: [a.example.com]\n      challenges: [tls-alpn-01]\n"
                "      httpaddr: {}\n".format(value)
            )
            self.assertIsNone(settings.http.tls.letsencrypt.httpaddr, value)

    def test_version_forms(self):
        for version in ("0.1", '"0.1"', "'0.1'"):
            self.assertEqual(self.load("version: {}\nstorage: inmemory\n".format(version)).version, "0.1")

    def test_bare_string_forms(self):
        settings = self.load("version: 0.1\nstorage: filesystem\nauth: silly\n")
        self.assertEqual(settings.storage.filesystem, s.FilesystemSettings())
        self.assertEqual(settings.auth.provider, "silly")
        self.assertEqual(self.load(MINIMAL_YAML).storage, s.StorageSettings(driver="inmemory"))

    def test_garbage_collection(self):
        settings = self.load(MINIMAL_YAML)
        self.assertEqual(settings.storage.gc, s.GarbageCollectSettings())
        self.assertFalse(settings.storage.gc.enabled)
        settings = self.load(
            "version: 0.1\nstorage:\n  inmemory:\n  maintenance:\n    gc:\n      enabled: true\n"
            "      interval: 10m\n      graceperiod: 2h\n      deleteuntagged: true\n      dryrun: true\n")
        self.assertEqual(settings.storage.gc, s.GarbageCollectSettings(True, 600.0, 7200.0, True, True))
        self.assertEqual(settings.warnings, ())
        settings = load_settings(self.write(MINIMAL_YAML), {"REGISTRY_STORAGE_MAINTENANCE_GC_ENABLED": "true"})
        self.assertTrue(settings.storage.gc.enabled)

    def test_non_acme_defaults(self):
        settings = self.load(MINIMAL_YAML)
        self.assertEqual(settings.http, s.HTTPSettings())
        self.assertIsNone(settings.auth)
        self.assertEqual(settings.catalog, s.CatalogSettings())
        self.assertEqual(settings.log, s.LogSettings())

    def test_kept_sections(self):
        """Sections not acted on yet are kept as given, each with one warning; health and notifications are typed."""
        settings = self.load(
            MINIMAL_YAML
            + "notifications:\n  endpoints:\n    - name: a\n      url: http://x\nredis:\n  addr: localhost:6379\n"
            "health:\n  storagedriver:\n    enabled: true\nproxy:\n  remoteurl: https://registry-1.docker.io\n"
            "validation:\n  disabled: true\nmiddleware:\n  registry: []\n"
        )
        self.assertEqual([e.url for e in settings.notifications.endpoints], ["http://x"])
        self.assertEqual(settings.redis.addr, "localhost:6379")
        self.assertEqual(settings.proxy, {"remoteurl": "https://registry-1.docker.io"})
        self.assertEqual(settings.middleware, {"registry": []})
        self.assertTrue(settings.health.storagedriver.enabled)
        self.assertEqual(settings.validation, {"disabled": True})
        path = settings.source
        self.assertEqual(
            list(settings.warnings),
            [
                "{}:12: proxy: read but not acted on yet: {}".format(path, NOT_ACTED_ON["proxy"]),
                "{}:14: validation: read but not acted on yet: {}".format(path, NOT_ACTED_ON["validation"]),
                "{}:16: middleware: read but not acted on yet: {}".format(path, NOT_ACTED_ON["middleware"]),
            ],
        )

    def test_redis_section(self):
        """``storage.cache.blobdescriptor: redis`` with Distribution's ``redis`` keys, typed, no warning."""
        settings = self.load(
            "version: 0.1\nstorage:\n  inmemory:\n  cache:\n    blobdescriptor: redis\n"
            "redis:\n  addr: 127.0.0.1:6380\n  username: u\n  password: p\n  db: 2\n  dialtimeout: 10ms\n"
            "  readtimeout: 2s\n  writetimeout: 3s\n  pool:\n    maxidle: 1\n    maxactive: 2\n"
            "    idletimeout: 1m\n  tls:\n    enabled: true\n"
        )
        self.assertEqual(settings.warnings, ())
        self.assertEqual(settings.storage.blobdescriptor_cache, "redis")
        self.assertEqual(settings.redis, s.RedisSettings(
            addr="127.0.0.1:6380", username="u", password="p", db=2, dialtimeout=0.01, readtimeout=2.0,
            writetimeout=3.0, maxidle=1, maxactive=2, idletimeout=60.0, tls=True))

    def test_redis_cache_needs_an_address(self):
        with self.assertRaises(ConfigError) as caught:
            self.load("version: 0.1\nstorage:\n  inmemory:\n  cache:\n    blobdescriptor: redis\n")
        self.assertIn("redis.addr: required when storage.cache.blobdescriptor is redis", str(caught.exception))
        self.assertEqual(self.load("version: 0.1\nstorage:\n  inmemory:\n  cache:\n    blobdescriptor: inmemory\n").warnings, ())

    def test_not_acted_on_table_is_editable(self):
        """Every entry of the table names a key the schema knows."""
        from spectroreg.config.schema import schema_at

        for entry in NOT_ACTED_ON:
            path = tuple(entry.partition("=")[0].split("."))
            self.assertIsNotNone(schema_at(path), entry)

    def test_prefix_normalised(self):
        for written, expected in [("/", ""), ('""', ""), ("/x/", "/x"), ("x", "/x"), ("/a/b", "/a/b"), ("/a/b//", "/a/b")]:
            settings = self.load("version: 0.1\nstorage: inmemory\nhttp:\n  prefix: {}\n".format(written))
            self.assertEqual(settings.http.prefix, expected, written)

    def test_addr_forms(self):
        for addr in (":5000", "127.0.0.1:5000", '"[::1]:5000"', "localhost:0"):
            self.load("version: 0.1\nstorage: inmemory\nhttp:\n  addr: {}\n".format(addr))
        settings = self.load("version: 0.1\nstorage: inmemory\nhttp:\n  net: unix\n  addr: /run/spectroreg.sock\n")
        self.assertEqual((settings.http.net, settings.http.addr), ("unix", "/run/spectroreg.sock"))

    def test_s3_compatible_server(self):
        """host/port/secure for MinIO-like servers; no region needed then."""
        settings = self.load(
            "version: 0.1\nstorage:\n  s3:\n    bucket: b\n    host: minio.local\n    port: 9000\n"
            "    secure: false\n    accesskey: minio\n    secretkey: minio123\n"
        )
        s3 = settings.storage.s3
        self.assertEqual((s3.host, s3.port, s3.secure, s3.region, s3.regionendpoint), ("minio.local", 9000, False, "us-east-1", None))
        settings = self.load("version: 0.1\nstorage:\n  s3:\n    bucket: b\n    regionendpoint: 127.0.0.1:9000\n    secure: false\n")
        self.assertEqual(settings.storage.s3.regionendpoint, "http://127.0.0.1:9000")
        settings = self.load("version: 0.1\nstorage:\n  s3:\n    bucket: b\n    host: http://minio:9000\n")
        self.assertEqual(settings.storage.s3.host, "http://minio:9000")
        settings = self.load("version: 0.1\nstorage:\n  s3:\n    bucket: b\n    regionendpoint: https://s3.example.com\n")
        self.assertEqual(settings.storage.s3.regionendpoint, "https://s3.example.com")

    def test_yaml_11_booleans(self):
        settings = self.load("version: 0.1\nstorage:\n  inmemory:\n  delete:\n    enabled: yes\n  redirect:\n    disable: on\n")
        self.assertTrue(settings.storage.delete_enabled)
        self.assertTrue(settings.storage.redirect_disable)

    def test_literal_text_for_string_keys(self):
        """Go's YAML gives the literal text of a scalar for a string key."""
        settings = self.load("version: 0.1\nstorage: inmemory\nhttp:\n  secret: 0123\nauth:\n  htpasswd:\n    realm: 2024-01-01\n    path: yes\n")
        self.assertEqual(settings.http.secret, "0123")
        self.assertEqual(settings.auth.htpasswd, s.HtpasswdSettings("2024-01-01", "yes"))

    def test_headers(self):
        settings = self.load(
            "version: 0.1\nstorage: inmemory\nhttp:\n  headers:\n    X-One: one\n    X-Two: [a, b]\n    X-Num: [1]\n    X-Empty: []\n"
        )
        self.assertEqual(settings.http.headers, {"X-One": ("one",), "X-Two": ("a", "b"), "X-Num": ("1",), "X-Empty": ()})

    def test_yaml_anchors_and_merge(self):
        settings = self.load(
            "version: 0.1\nbase: &base\n  rootdirectory: /x\nstorage:\n  filesystem:\n    <<: *base\n    maxthreads: 30\n"
        )
        self.assertEqual(settings.storage.filesystem, s.FilesystemSettings("/x", 30))

    def test_tls_minimum_old_versions_warn(self):
        for version in ("tls1.0", "tls1.1"):
            settings = self.load(
                "version: 0.1\nstorage: inmemory\nhttp:\n  tls:\n    certificate: /c\n    key: /k\n    minimumtls: {}\n".format(version)
            )
            self.assertEqual(settings.http.tls.minimumtls, version)
            self.assertEqual(
                list(settings.warnings),
                [
                    "{}:7: http.tls.minimumtls: {} is accepted but insecure and refused by current clients; "
                    "use tls1.2 or tls1.3".format(settings.source, version)
                ],
            )

    def test_tls_without_certificate_warns(self):
        settings = self.load("version: 0.1\nstorage: inmemory\nhttp:\n  tls:\n    clientcas: [/ca.pem]\n")
        self.assertIsNone(settings.http.tls)
        self.assertEqual(len(settings.warnings), 1)
        self.assertIn("http.tls: neither certificate nor letsencrypt is set", settings.warnings[0])

    def test_deprecated_loglevel(self):
        settings = self.load("version: 0.1\nloglevel: debug\nstorage: inmemory\n")
        self.assertEqual(settings.log.level, "debug")
        self.assertEqual(list(settings.warnings), ["{}:2: loglevel: deprecated; use log.level".format(settings.source)])

    def test_log_level_case(self):
        self.assertEqual(self.load("version: 0.1\nstorage: inmemory\nlog:\n  level: DEBUG\n").log.level, "debug")


class WarningTests(ConfigTestCase):
    def test_unknown_keys_with_lines(self):
        settings = self.load(
            "version: 0.1\nstorage:\n  inmemory:\n  delete:\n    enabeld: true\nhttp:\n  tsl:\n    certificate: /c\n"
            "  addr: :5000\nStorage: x\n"
        )
        path = settings.source
        self.assertEqual(
            list(settings.warnings),
            [
                "{}:10: Storage: unknown key, ignored (did you mean storage?)".format(path),
                "{}:5: storage.delete.enabeld: unknown key, ignored (did you mean enabled?)".format(path),
                "{}:7: http.tsl: unknown key, ignored (did you mean tls?)".format(path),
            ],
        )
        self.assertFalse(settings.storage.delete_enabled)

    def test_unknown_key_without_suggestion(self):
        settings = self.load("version: 0.1\nstorage: inmemory\nlog:\n  colour: blue\n")
        self.assertEqual(list(settings.warnings), ["{}:4: log.colour: unknown key, ignored".format(settings.source)])

    def test_duplicate_key(self):
        settings = self.load("version: 0.1\nstorage: inmemory\nlog:\n  level: debug\n  level: error\n")
        self.assertEqual(settings.log.level, "error")
        self.assertEqual(list(settings.warnings), ["{}:5: log.level: duplicate key; the last one wins".format(settings.source)])

    def test_unknown_s3_key(self):
        settings = self.load("version: 0.1\nstorage:\n  s3:\n    bucket: b\n    region: r\n    bucketname: c\n")
        self.assertEqual(list(settings.warnings), ["{}:6: storage.s3.bucketname: unknown key, ignored (did you mean bucket?)".format(settings.source)])


# (description, yaml, environment, expected message; {path} is the file)
ERRORS = [
    ("bad YAML, with its line", "version: 0.1\nstorage:\n  inmemory: {}\n http: x\n", {},
     "{path}:4: invalid YAML: did not find expected key (while parsing a block mapping)"),
    ("bad YAML: a tab", "version: 0.1\nstorage:\n\tinmemory: {}\n", {},
     "{path}:3: invalid YAML: found character that cannot start any token (while scanning for the next token)"),
    ("two documents", "version: 0.1\n---\nversion: 0.1\n", {},
     "{path}:2: invalid YAML: but found another document (expected a single document in the stream)"),
    ("not a mapping", "- version\n", {}, "{path}: the configuration must be a mapping of sections (version, storage, http, ...)"),
    ("empty file", "", {}, "{path}: the file is empty; a configuration needs at least version: 0.1 and storage"),
    ("comments only", "# nothing\n", {}, "{path}: the file is empty; a configuration needs at least version: 0.1 and storage"),
    ("missing version", "storage: inmemory\n", {}, "{path}: version: required; write version: 0.1"),
    ("wrong version", "version: 0.2\nstorage: inmemory\n", {}, "{path}:1: version: unsupported version '0.2' (expected 0.1)"),
    ("version 1", "version: 1\nstorage: inmemory\n", {}, "{path}:1: version: unsupported version '1' (expected 0.1)"),
    ("unknown log level", "version: 0.1\nstorage: inmemory\nlog:\n  level: verbose\n", {},
     "{path}:4: log.level: unknown level 'verbose' (expected error, warn, info, debug)"),
    ("warning is not a level", "version: 0.1\nstorage: inmemory\nlog:\n  level: warning\n", {},
     "{path}:4: log.level: unknown level 'warning' (expected error, warn, info, debug)"),
    ("unknown formatter", "version: 0.1\nstorage: inmemory\nlog:\n  formatter: xml\n", {},
     "{path}:4: log.formatter: unknown formatter 'xml' (expected text, json, logstash)"),
    ("log fields not a mapping", "version: 0.1\nstorage: inmemory\nlog:\n  fields: [a]\n", {},
     "{path}:4: log.fields: expected a mapping of keys, got a list"),
    ("no storage", "version: 0.1\n", {}, "{path}: storage: required: configure one storage driver (inmemory, filesystem, s3)"),
    ("only reserved storage keys", "version: 0.1\nstorage:\n  delete:\n    enabled: true\n", {},
     "{path}:2: storage: no storage driver configured (expected one of inmemory, filesystem, s3)"),
    ("two storage drivers", "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /x\n  s3:\n    bucket: b\n", {},
     "{path}:5: storage.s3: exactly one storage driver is allowed, found filesystem and s3"),
    ("unknown driver", "version: 0.1\nstorage:\n  fylesystem:\n    rootdirectory: /x\n", {},
     "{path}:3: storage.fylesystem: unknown storage driver 'fylesystem' (expected one of inmemory, filesystem, s3; did you mean filesystem?)"),
    ("unsupported driver", "version: 0.1\nstorage:\n  gcs:\n    bucket: b\n", {},
     "{path}:3: storage.gcs: the gcs storage driver is not supported (spectroreg supports inmemory, filesystem, s3)"),
    ("missing bucket", "version: 0.1\nstorage:\n  s3:\n    region: us-east-1\n", {}, "{path}:3: storage.s3.bucket: required"),
    ("missing region", "version: 0.1\nstorage:\n  s3:\n    bucket: b\n", {},
     "{path}:3: storage.s3.region: required (or set regionendpoint or host for an S3-compatible server)"),
    ("chunk size too small", "version: 0.1\nstorage:\n  s3:\n    bucket: b\n    region: r\n    chunksize: 1048576\n", {},
     "{path}:6: storage.s3.chunksize: must be at least 5242880 (5 MiB), got 1048576"),
    ("half a key pair", "version: 0.1\nstorage:\n  s3:\n    bucket: b\n    region: r\n    accesskey: a\n", {},
     "{path}:3: storage.s3.secretkey: required when accesskey is set (give both, or neither to use the environment's AWS credentials)"),
    ("string bool in s3", "version: 0.1\nstorage:\n  s3:\n    bucket: b\n    region: r\n    secure: \"false\"\n", {},
     "{path}:6: storage.s3.secure: expected a boolean (true or false), got 'false'"),
    ("unknown storage class", "version: 0.1\nstorage:\n  s3:\n    bucket: b\n    region: r\n    storageclass: COLD\n", {},
     "{path}:6: storage.s3.storageclass: unknown storage class 'COLD' (expected STANDARD, REDUCED_REDUNDANCY, STANDARD_IA, "
     "ONEZONE_IA, INTELLIGENT_TIERING, OUTPOSTS, GLACIER_IR, NONE)"),
    ("s3 host with a path", "version: 0.1\nstorage:\n  s3:\n    bucket: b\n    host: minio/x\n", {},
     "{path}:5: storage.s3.host: expected a host name such as minio.example.com, got 'minio/x'"),
    ("s3 host an odd URL", "version: 0.1\nstorage:\n  s3:\n    bucket: b\n    host: ftp://minio\n", {},
     "{path}:5: storage.s3.host: expected a host name such as minio.example.com or an http(s) URL, got 'ftp://minio'"),
    ("s3 regionendpoint", "version: 0.1\nstorage:\n  s3:\n    bucket: b\n    regionendpoint: s3://x\n", {},
     "{path}:5: storage.s3.regionendpoint: expected an http(s) URL such as http://127.0.0.1:9000, got 's3://x'"),
    ("s3 port out of range", "version: 0.1\nstorage:\n  s3:\n    bucket: b\n    host: h\n    port: 99999\n", {},
     "{path}:6: storage.s3.port: must be at most 65535, got 99999"),
    ("quoted bool", "version: 0.1\nstorage:\n  inmemory:\n  delete:\n    enabled: \"yes\"\n", {},
     "{path}:5: storage.delete.enabled: expected a boolean (true or false), got 'yes'"),
    ("number as bool", "version: 0.1\nstorage:\n  inmemory:\n  delete:\n    enabled: 1\n", {},
     "{path}:5: storage.delete.enabled: expected a boolean (true or false), got a number (1)"),
    ("blobdescriptor", "version: 0.1\nstorage:\n  inmemory:\n  cache:\n    blobdescriptor: memcached\n", {},
     "{path}:5: storage.cache.blobdescriptor: unknown blob descriptor cache 'memcached' (expected inmemory, redis)"),
    ("upload purging age", "version: 0.1\nstorage:\n  inmemory:\n  maintenance:\n    uploadpurging:\n      age: 7d\n", {},
     "{path}:6: storage.maintenance.uploadpurging.age: unknown unit 'd' in duration '7d'; use ns, us, ms, s, m or h"),
    ("gc grace period zero", "version: 0.1\nstorage:\n  inmemory:\n  maintenance:\n    gc:\n      enabled: true\n      graceperiod: 0s\n", {},
     "{path}:7: storage.maintenance.gc.graceperiod: must be at least 1s, got '0s'"),
    ("two auth providers", "version: 0.1\nstorage: inmemory\nauth:\n  htpasswd:\n    realm: r\n    path: /p\n  silly:\n    realm: r\n", {},
     "{path}:7: auth.silly: at most one auth provider is allowed, found htpasswd and silly"),
    ("unknown auth provider", "version: 0.1\nstorage: inmemory\nauth:\n  ldap:\n    url: x\n", {},
     "{path}:4: auth.ldap: unknown auth provider 'ldap' (expected htpasswd, token, silly)"),
    ("htpasswd without path", "version: 0.1\nstorage: inmemory\nauth:\n  htpasswd:\n    realm: r\n", {},
     "{path}:4: auth.htpasswd.path: required"),
    ("bare htpasswd", "version: 0.1\nstorage: inmemory\nauth: htpasswd\n", {}, "{path}:3: auth.htpasswd.realm: required"),
    ("bad addr", "version: 0.1\nstorage: inmemory\nhttp:\n  addr: 5000\n", {},
     "{path}:4: http.addr: missing port in address '5000'; expected e.g. :5000"),
    ("bad net", "version: 0.1\nstorage: inmemory\nhttp:\n  net: udp\n", {},
     "{path}:4: http.net: unknown network 'udp' (expected tcp, unix)"),
    ("unix without addr", "version: 0.1\nstorage: inmemory\nhttp:\n  net: unix\n", {},
     "{path}:4: http.addr: required with net: unix (the socket path)"),
    ("bad host", "version: 0.1\nstorage: inmemory\nhttp:\n  host: registry.example.com\n", {},
     "{path}:4: http.host: expected an absolute URL such as https://registry.example.com, got 'registry.example.com'"),
    ("headers not a mapping", "version: 0.1\nstorage: inmemory\nhttp:\n  headers: [a]\n", {},
     "{path}:4: http.headers: expected a mapping of keys, got a list"),
    ("bad header name", "version: 0.1\nstorage: inmemory\nhttp:\n  headers:\n    X Bad: [a]\n", {},
     "{path}:5: http.headers.X Bad: invalid header name 'X Bad'"),
    ("header value a mapping", "version: 0.1\nstorage: inmemory\nhttp:\n  headers:\n    X-A: [{b: c}]\n", {},
     "{path}:5: http.headers.X-A[0]: expected a string, got a mapping"),
    ("no workers", "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /r\nhttp:\n  workers: 0\n", {},
     "{path}:6: http.workers: must be at least 1, got 0"),
    ("workers not a number", "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /r\nhttp:\n  workers: many\n", {},
     "{path}:6: http.workers: expected an integer, got 'many'"),
    ("workers with letsencrypt", "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /r\nhttp:\n  workers: 2\n"
     "  tls:\n    letsencrypt:\n      cachefile: /acme\n      hosts: [a.example]\n", {},
     "{path}:6: http.workers: 2: not with http.tls.letsencrypt (certificates are obtained and renewed in one "
     "process); use certificate and key files, or workers: 1"),
    ("draintimeout without unit", "version: 0.1\nstorage: inmemory\nhttp:\n  draintimeout: 60\n", {},
     "{path}:4: http.draintimeout: invalid duration '60'; expected e.g. 60s, 1h30m, 300ms"),
    ("certificate without key", "version: 0.1\nstorage: inmemory\nhttp:\n  tls:\n    certificate: /c\n", {},
     "{path}:4: http.tls.key: required when http.tls.certificate is set"),
    ("minimumtls", "version: 0.1\nstorage: inmemory\nhttp:\n  tls:\n    certificate: /c\n    key: /k\n    minimumtls: ssl3\n", {},
     "{path}:7: http.tls.minimumtls: unknown TLS version 'ssl3' (expected tls1.0, tls1.1, tls1.2, tls1.3)"),
    ("cipher suite", "version: 0.1\nstorage: inmemory\nhttp:\n  tls:\n    certificate: /c\n    key: /k\n    ciphersuites: [AES128-SHA]\n", {},
     "{path}:7: http.tls.ciphersuites: unknown cipher suite 'AES128-SHA' (use Go's names, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)"),
    ("clientauth", "version: 0.1\nstorage: inmemory\nhttp:\n  tls:\n    certificate: /c\n    key: /k\n    clientauth: verify-client-cert-if-given\n", {},
     "{path}:7: http.tls.clientauth: verify-client-cert-if-given needs http.tls.clientcas"),
    ("letsencrypt without hosts", "version: 0.1\nstorage: inmemory\nhttp:\n  tls:\n    letsencrypt:\n      cachefile: /acme\n", {},
     "{path}:5: http.tls.letsencrypt.hosts: required and must not be empty: without hosts no certificate would ever be issued"),
    ("letsencrypt with empty hosts", "version: 0.1\nstorage: inmemory\nhttp:\n  tls:\n    letsencrypt:\n      cachefile: /acme\n      hosts: []\n", {},
     "{path}:7: http.tls.letsencrypt.hosts: required and must not be empty: without hosts no certificate would ever be issued"),
    ("letsencrypt without cachefile", "version: 0.1\nstorage: inmemory\nhttp:\n  tls:\n    letsencrypt:\n      hosts: [a.example.com]\n", {},
     "{path}:5: http.tls.letsencrypt.cachefile: required"),
    ("certificate and letsencrypt", "version: 0.1\nstorage: inmemory\nhttp:\n  tls:\n    certificate: /c\n    key: /k\n"
     "    letsencrypt:\n      cachefile: /acme\n      hosts: [a.example.com]\n", {},
     "{path}:7: http.tls.letsencrypt: cannot be used together with http.tls.certificate; choose one"),
    ("unknown challenge", "version: 0.1\nstorage: inmemory\nhttp:\n  tls:\n    letsencrypt:\n      cachefile: /a\n      hosts: [a.example.com]\n"
     "      challenges: [dns-01]\n", {},
     "{path}:8: http.tls.letsencrypt.challenges: unknown challenge 'dns-01' (expected tls-alpn-01, http-01)"),
    ("http-01 without listener", "version: 0.1\nstorage: inmemory\nhttp:\n  tls:\n    letsencrypt:\n      cachefile: /a\n      hosts: [a.example.com]\n"
     "      httpaddr: null\n", {},
     "{path}:8: http.tls.letsencrypt.httpaddr: required for the http-01 challenge (e.g. :80)"),
    ("wildcard host", "version: 0.1\nstorage: inmemory\nhttp:\n  tls:\n    letsencrypt:\n      cachefile: /a\n      hosts: ['*.example.com']\n", {},
     "{path}:7: http.tls.letsencrypt.hosts: wildcard host '*.example.com' cannot be validated with tls-alpn-01 or http-01"),
    ("dot host", "version: 0.1\nstorage: inmemory\nhttp:\n  tls:\n    letsencrypt:\n      cachefile: /a\n      hosts: ['.example.com']\n", {},
     "{path}:7: http.tls.letsencrypt.hosts: expected host names such as registry.example.com, got '.example.com'"),
    ("acme email", "version: 0.1\nstorage: inmemory\nhttp:\n  tls:\n    letsencrypt:\n      cachefile: /a\n      hosts: [a.example.com]\n"
     "      email: ops\n", {},
     "{path}:8: http.tls.letsencrypt.email: expected an e-mail address, got 'ops'"),
    ("catalog", "version: 0.1\nstorage: inmemory\ncatalog:\n  maxentries: 0\n", {},
     "{path}:4: catalog.maxentries: must be at least 1, got 0"),
    ("section not a mapping", "version: 0.1\nstorage: inmemory\nnotifications: yes\n", {},
     "{path}:3: notifications: expected a mapping of keys, got a boolean (yes)"),
    ("non-scalar key", "version: 0.1\nstorage: inmemory\n? [a, b]\n: c\n", {},
     "{path}:3: (top level): a key must be a plain name, not a list or mapping"),
    ("wrong type from the environment", MINIMAL_YAML, {"REGISTRY_HTTP_RELATIVEURLS": "sometimes"},
     "REGISTRY_HTTP_RELATIVEURLS: http.relativeurls: expected a boolean (true or false), got 'sometimes'"),
]


class ErrorTests(ConfigTestCase):
    def test_errors(self):
        """Each broken configuration fails with exactly one line naming where and what."""
        for description, text, environ, expected in ERRORS:
            path = self.write(text)
            error = self.assertRaises(ConfigError, load_settings, path, environ)
            self.assertEqual(str(error), expected.format(path=path), description)
            self.assertNotIn("\n", str(error), description)

    def test_no_path(self):
        error = self.assertRaises(ConfigError, load_settings, None, {})
        self.assertEqual(str(error), "no configuration file: give its path or set REGISTRY_CONFIGURATION_PATH")

    def test_missing_file(self):
        path = os.path.abspath(self.mktemp())
        error = self.assertRaises(ConfigError, load_settings, path, {})
        self.assertEqual(str(error), "{}: cannot read the configuration file: No such file or directory".format(path))

    def test_directory(self):
        path = os.path.abspath(self.mktemp())
        os.makedirs(path)
        error = self.assertRaises(ConfigError, load_settings, path, {})
        self.assertEqual(str(error), "{}: cannot read the configuration file: Is a directory".format(path))

    def test_unreadable_file(self):
        if os.getuid() == 0:
            self.skipTest("root reads any file")
        path = self.write(MINIMAL_YAML)
        os.chmod(path, 0)
        error = self.assertRaises(ConfigError, load_settings, path, {})
        self.assertEqual(str(error), "{}: cannot read the configuration file: Permission denied".format(path))

    def test_parent_not_a_directory(self):
        """An unreadable path (here: below a plain file, which fails even for root) is named."""
        path = os.path.join(self.write(MINIMAL_YAML), "config.yml")
        error = self.assertRaises(ConfigError, load_settings, path, {})
        self.assertEqual(str(error), "{}: cannot read the configuration file: Not a directory".format(path))

    def test_not_utf8(self):
        path = self.write("")
        with open(path, "wb") as stream:
            stream.write(b"version: 0.1\nstorage: \xff\xfe\n")
        error = self.assertRaises(ConfigError, load_settings, path, {})
        self.assertTrue(str(error).startswith(path + ": invalid YAML: "), str(error))
        self.assertNotIn("\n", str(error))

    def test_environment_default(self):
        """Without an environ argument the process environment is read."""
        path = self.write(MINIMAL_YAML)
        self.patch(os, "environ", {"REGISTRY_CONFIGURATION_PATH": path, "REGISTRY_LOG_LEVEL": "debug"})
        self.assertEqual(load_settings().log.level, "debug")


class EffectiveConfigTests(ConfigTestCase):
    def test_masked(self):
        text = FULL_YAML + (
            "redis:\n  addr: localhost:6379\n  password: redispass\n"
            "proxy:\n  remoteurl: https://user:hunter2@registry-1.docker.io\n  username: user\n  password: hunter2\n"
            "notifications:\n  endpoints:\n    - name: hook\n      url: https://hooks.example.com\n"
            "      headers:\n        Authorization: [Bearer sometoken]\n"
        )
        output = self.effective(text, {"REGISTRY_HTTP_SECRET": "fromtheenvironment", "REGISTRY_STORAGE_S3_SESSIONTOKEN": "tok123"})
        for secret in (
            "wJalrXUtnFEMI",
            "asecretforlocaldevelopment",
            "fromtheenvironment",
            "redispass",
            "hunter2",
            "sometoken",
            "tok123",
            "AKIAIOSFODNN7",
        ):
            self.assertNotIn(secret, output)
        document = yaml.safe_load(output)
        self.assertEqual(document["storage"]["s3"]["secretkey"], MASK)
        self.assertEqual(document["storage"]["s3"]["accesskey"], MASK + "MPLE")
        self.assertEqual(document["http"]["secret"], MASK)
        self.assertEqual(document["redis"]["password"], MASK)
        self.assertEqual(document["proxy"]["remoteurl"], "https://user:{}@registry-1.docker.io".format(MASK))
        self.assertEqual(document["notifications"]["endpoints"][0]["headers"]["Authorization"], [MASK])
        # What is not secret stays readable.
        self.assertEqual(document["http"]["tls"]["key"], "/certs/server.key")
        self.assertEqual(document["storage"]["s3"]["keyid"], "alias/registry")
        self.assertEqual(document["auth"]["htpasswd"]["path"], "/auth/htpasswd")

    def test_after_overrides(self):
        output = self.effective(DEFAULT_YAML, {"REGISTRY_AUTH": "htpasswd", "REGISTRY_AUTH_HTPASSWD_REALM": "My Enterprise Realm", "REGISTRY_FOO": "1"})
        lines = output.splitlines()
        self.assertTrue(lines[0].startswith("# effective configuration of "))
        self.assertEqual(lines[1], "# warning: REGISTRY_FOO: matches no configuration key; ignored")
        document = yaml.safe_load(output)
        self.assertEqual(document["auth"], {"htpasswd": {"realm": "My Enterprise Realm", "path": "/auth/htpasswd-basic"}})
        self.assertEqual(document["http"]["headers"]["X-Frame-Options"], ["DENY"])
        # The printed configuration loads back to the same settings.
        path = self.write(output, "effective.yml")
        again = load_settings(path, {})
        self.assertEqual(again.auth.htpasswd.realm, "My Enterprise Realm")
        self.assertEqual(again.http.headers, self.load(DEFAULT_YAML).http.headers)

    def test_token_keys_masked(self):
        output = self.effective(
            "version: 0.1\nstorage: inmemory\nauth:\n  token:\n    realm: https://a/token\n    service: reg\n"
            "    issuer: me\n    rootcertbundle: /certs/bundle.pem\n    signingkey: abcdef\n"
        )
        document = yaml.safe_load(output)
        self.assertEqual(document["auth"]["token"]["signingkey"], MASK)
        self.assertEqual(document["auth"]["token"]["rootcertbundle"], "/certs/bundle.pem")

    def test_errors_raised(self):
        path = self.write("version: 0.2\nstorage: inmemory\n")
        error = self.assertRaises(ConfigError, effective_config, path, {})
        self.assertEqual(str(error), "{}:1: version: unsupported version '0.2' (expected 0.1)".format(path))
