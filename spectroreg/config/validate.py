"""
Check a configuration tree (YAML plus overrides) and build the typed
``settings`` objects from it.

Every problem is a ConfigError whose one line starts with where the value came
from (``file:line`` or the variable) and the key path.
"""

import re

from spectroreg.config import operations, tlsnames
from spectroreg.config import settings as s
from spectroreg.config.addresses import check_http_url, split_host_port
from spectroreg.config.durations import MAX_SECONDS, format_duration, parse_duration, shorten
from spectroreg.config.errors import ConfigError
from spectroreg.config.redis_settings import redis_settings
from spectroreg.config.schema import (
    AUTH_PROVIDERS,
    SCHEMA,
    STORAGE_RESERVED,
    SUPPORTED_DRIVERS,
    UNSUPPORTED_DRIVERS,
    schema_at,
)
from spectroreg.config.tree import dotted
from spectroreg.config.unimplemented import NOT_ACTED_ON

MIB = 1024 * 1024
GIB = 1024 * MIB
S3_MIN_CHUNK = 5 * MIB
S3_MAX_CHUNK = 5 * GIB

LOG_LEVELS = ("error", "warn", "info", "debug")
LOG_FORMATTERS = ("text", "json", "logstash")
TLS_VERSIONS = tuple(tlsnames.PROTOCOL_VERSIONS)
CLIENT_AUTH = tlsnames.CLIENT_AUTH_MODES
ACME_CHALLENGES = ("tls-alpn-01", "http-01")
STORAGE_CLASSES = (
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "OUTPOSTS",
    "GLACIER_IR",
    "NONE",
)
OBJECT_ACLS = (
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
    "log-delivery-write",
)
GO_CIPHER_SUITES = tlsnames.GO_CIPHER_SUITES

# Go's int, which Distribution reads integer keys into.
GO_INT_MAX = 2 ** 63 - 1
# The shortest upload purging interval and age: purging lists every upload in
# storage, and at a nanosecond it would do nothing else.
MIN_PURGE_SECONDS = 1.0
# The shortest collection interval and grace period: a collection lists every
# blob and manifest, and no grace period would let it delete a blob pushed a
# moment before its manifest.
MIN_GC_SECONDS = 1.0

_DIGITS = re.compile(r"[-+]?[0-9]+")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_MISSING = object()


def _choices(values):
    return ", ".join(values)


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
                    _describe(value, self.provenance.raw.get(tuple(path)))
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
                close = _close_match(key, list(schema))
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
            self.fail(where, "expected a string, got {}".format(_describe(value)))
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
                "expected a boolean (true or false), got {}".format(_describe(value, self._raw(where, value))),
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
                        "least" if negative else "most", _size_text(bound), len(digits)
                    ),
                )
            if digits_ok:
                value = int(text)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(where, "expected an integer, got {}".format(_describe(value, self._raw(where, value))))
        if minimum is not None and value < minimum:
            self.fail(where, "must be at least {}, got {}".format(_size_text(minimum), value))
        if maximum is not None and value > maximum:
            self.fail(where, "must be at most {}, got {}".format(_size_text(maximum), value))
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
                "unknown {} {!r} (expected {})".format(what, value, _choices(choices)),
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
                self.fail(where, "expected a list, got {}".format(_describe(value)))
        else:
            items = [(where + (index,), item) for index, item in enumerate(value)]
        result = []
        for item_path, item in items:
            if item is None or isinstance(item, (dict, list)):
                self.fail(item_path, "expected a string, got {}".format(_describe(item)))
            if isinstance(item, bool):
                self.fail(item_path, "expected a string, got a boolean; quote it")
            if not isinstance(item, str):
                item = self._raw(item_path, item)
            result.append(item)
        return tuple(result)


def _describe(value, raw=None):
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean ({})".format(raw if raw is not None else str(value).lower())
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, (int, float)):
        return "a number ({})".format(raw if raw is not None else value)
    return shorten(str(raw if raw is not None else value))


def _size_text(number):
    if number >= MIB and number % MIB == 0:
        return "{} ({} MiB)".format(number, number // MIB)
    return str(number)


def _close_match(word, candidates):
    # difflib only on the (rare) unknown-key path: it costs import time.
    import difflib

    lowered = {candidate.lower(): candidate for candidate in candidates}
    found = difflib.get_close_matches(str(word).lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[found[0]] if found else None


# -- sections ----------------------------------------------------------------


def build_settings(tree, provenance, warnings, source):
    """Validate C{tree} (a dict) and return L{settings.Settings}."""
    check = Checker(provenance, warnings)
    if not isinstance(tree, dict):
        raise ConfigError(
            "{}: the configuration must be a mapping of sections (version, storage, http, ...)".format(
                provenance.where(())
            )
        )
    check.known(tree, (), SCHEMA)
    version = _version(check, tree)
    log = _log(check, tree)
    storage = _storage(check, tree)
    http = _http(check, tree)
    auth = _auth(check, tree)
    catalog = _catalog(check, tree)
    kept = {
        "health": operations.health_settings(check, tree),
        "notifications": operations.notification_settings(check, tree),
        "redis": redis_settings(check, tree, storage.blobdescriptor_cache),
    }
    for name in ("proxy", "validation", "middleware"):
        kept[name] = dict(check.mapping(tree.get(name), (name,)))
    for name in ("reporting", "compatibility"):
        check.mapping(tree.get(name), (name,))
    _not_acted_on(check, tree)
    return s.Settings(
        version=version,
        log=log,
        storage=storage,
        http=http,
        auth=auth,
        catalog=catalog,
        source=source,
        warnings=tuple(warnings),
        **kept,
    )


def _version(check, tree):
    if tree.get("version") is None:
        check.fail(("version",), "required; write version: 0.1")
    value = check.string(tree, (), "version", empty_ok=True)
    # `version: 0.1` is the float 0.1 in YAML; its literal text is kept.
    if value.strip() != "0.1":
        check.fail(("version",), "unsupported version {!r} (expected 0.1)".format(value))
    return "0.1"


def _log(check, tree):
    path = ("log",)
    section = check.mapping(tree.get("log"), path)
    check.known(section, path)
    level = check.choice(section, path, "level", None, LOG_LEVELS, "level")
    if level is None and tree.get("loglevel") is not None:
        level = check.choice(tree, (), "loglevel", None, LOG_LEVELS, "level")
        check.warn(("loglevel",), "deprecated; use log.level")
    formatter = check.choice(section, path, "formatter", "text", LOG_FORMATTERS, "formatter")
    fields = check.mapping(section.get("fields"), path + ("fields",))
    accesslog = check.mapping(section.get("accesslog"), path + ("accesslog",))
    check.known(accesslog, path + ("accesslog",))
    return s.LogSettings(
        level=level or "info",
        formatter=formatter,
        fields=dict(fields),
        accesslog_disabled=check.boolean(accesslog, path + ("accesslog",), "disabled", False),
    )


def _storage(check, tree):
    path = ("storage",)
    if tree.get("storage") is None:
        check.fail(path, "required: configure one storage driver ({})".format(_choices(SUPPORTED_DRIVERS)))
    value = tree["storage"]
    if isinstance(value, str):
        value = {value: {}}
    section = check.mapping(value, path)
    drivers = [key for key in section if key not in STORAGE_RESERVED]
    if not drivers:
        check.fail(path, "no storage driver configured (expected one of {})".format(_choices(SUPPORTED_DRIVERS)))
    if len(drivers) > 1:
        check.fail(
            path + (drivers[1],),
            "exactly one storage driver is allowed, found {}".format(" and ".join(drivers)),
        )
    driver = drivers[0]
    driver_path = path + (driver,)
    if driver in UNSUPPORTED_DRIVERS:
        check.fail(
            driver_path,
            "the {} storage driver is not supported (spectroreg supports {})".format(
                driver, _choices(SUPPORTED_DRIVERS)
            ),
        )
    if driver not in SUPPORTED_DRIVERS:
        close = _close_match(driver, list(SUPPORTED_DRIVERS) + list(STORAGE_RESERVED))
        check.fail(
            driver_path,
            "unknown storage driver {!r} (expected one of {}{})".format(
                driver,
                _choices(SUPPORTED_DRIVERS),
                "; did you mean {}?".format(close) if close else "",
            ),
        )
    parameters = check.mapping(section[driver], driver_path)
    check.known(parameters, driver_path)
    filesystem = s3 = None
    if driver == "filesystem":
        filesystem = s.FilesystemSettings(
            rootdirectory=check.string(parameters, driver_path, "rootdirectory", "/var/lib/registry"),
            maxthreads=check.integer(parameters, driver_path, "maxthreads", 100, minimum=1, digits_ok=True),
        )
    elif driver == "s3":
        s3 = _s3(check, parameters, driver_path)

    cache = check.mapping(section.get("cache"), path + ("cache",))
    check.known(cache, path + ("cache",))
    blobdescriptor = check.choice(
        cache, path + ("cache",), "blobdescriptor", None, ("inmemory", "redis"), "blob descriptor cache"
    )
    check.integer(cache, path + ("cache",), "blobdescriptorsize", None, minimum=1)

    delete = check.mapping(section.get("delete"), path + ("delete",))
    check.known(delete, path + ("delete",))
    redirect = check.mapping(section.get("redirect"), path + ("redirect",))
    check.known(redirect, path + ("redirect",))
    tag = check.mapping(section.get("tag"), path + ("tag",))
    check.known(tag, path + ("tag",))
    check.integer(tag, path + ("tag",), "concurrencylimit", None, minimum=1)

    maintenance_path = path + ("maintenance",)
    maintenance = check.mapping(section.get("maintenance"), maintenance_path)
    check.known(maintenance, maintenance_path)
    purging_path = maintenance_path + ("uploadpurging",)
    purging = check.mapping(maintenance.get("uploadpurging"), purging_path)
    check.known(purging, purging_path)
    defaults = s.UploadPurgingSettings()
    enabled = check.boolean(purging, purging_path, "enabled", defaults.enabled)
    uploadpurging = s.UploadPurgingSettings(
        enabled=enabled,
        age=check.duration(
            purging, purging_path, "age", defaults.age, minimum=MIN_PURGE_SECONDS if enabled else 0.0
        ),
        interval=check.duration(
            purging, purging_path, "interval", defaults.interval, minimum=MIN_PURGE_SECONDS if enabled else 0.0
        ),
        dryrun=check.boolean(purging, purging_path, "dryrun", defaults.dryrun),
    )
    readonly_path = maintenance_path + ("readonly",)
    readonly = check.mapping(maintenance.get("readonly"), readonly_path)
    check.known(readonly, readonly_path)
    gc_path = maintenance_path + ("gc",)
    gc = check.mapping(maintenance.get("gc"), gc_path)
    check.known(gc, gc_path)
    gc_defaults = s.GarbageCollectSettings()
    gc_enabled = check.boolean(gc, gc_path, "enabled", gc_defaults.enabled)
    gc_settings = s.GarbageCollectSettings(
        enabled=gc_enabled,
        interval=check.duration(gc, gc_path, "interval", gc_defaults.interval,
                                minimum=MIN_GC_SECONDS if gc_enabled else 0.0),
        graceperiod=check.duration(gc, gc_path, "graceperiod", gc_defaults.graceperiod,
                                   minimum=MIN_GC_SECONDS if gc_enabled else 0.0),
        deleteuntagged=check.boolean(gc, gc_path, "deleteuntagged", gc_defaults.deleteuntagged),
        dryrun=check.boolean(gc, gc_path, "dryrun", gc_defaults.dryrun),
    )

    return s.StorageSettings(
        driver=driver,
        filesystem=filesystem,
        s3=s3,
        blobdescriptor_cache=blobdescriptor,
        delete_enabled=check.boolean(delete, path + ("delete",), "enabled", False),
        redirect_disable=check.boolean(redirect, path + ("redirect",), "disable", False),
        uploadpurging=uploadpurging,
        readonly=check.boolean(readonly, readonly_path, "enabled", False),
        gc=gc_settings,
    )


def _s3(check, p, path):
    defaults = s.S3Settings(bucket="")
    bucket = check.string(p, path, "bucket", required=True)
    secure = check.boolean(p, path, "secure", defaults.secure)
    host = check.string(p, path, "host")
    if host is not None and "://" in host:
        check_http_url(check, path + ("host",), host, "a host name such as minio.example.com or an http(s) URL")
    elif host is not None and ("/" in host or any(c.isspace() for c in host)):
        check.fail(path + ("host",), "expected a host name such as minio.example.com, got {!r}".format(host))
    port = check.integer(p, path, "port", None, minimum=1, maximum=65535, digits_ok=True)
    if port is not None and host is None:
        check.warn(path + ("port",), "ignored without storage.s3.host")
    endpoint = check.string(p, path, "regionendpoint")
    if endpoint is not None:
        endpoint = endpoint.strip()
        if "://" not in endpoint:
            endpoint = ("https://" if secure else "http://") + endpoint
        check_http_url(check, path + ("regionendpoint",), endpoint, "an http(s) URL such as http://127.0.0.1:9000")
    region = check.string(p, path, "region")
    if region is None:
        if endpoint is None and host is None:
            check.fail(
                path + ("region",),
                "required (or set regionendpoint or host for an S3-compatible server)",
            )
        region = defaults.region
    accesskey = check.string(p, path, "accesskey")
    secretkey = check.string(p, path, "secretkey")
    if (accesskey is None) != (secretkey is None):
        missing = "secretkey" if secretkey is None else "accesskey"
        check.fail(
            path + (missing,),
            "required when {} is set (give both, or neither to use the environment's AWS credentials)".format(
                "accesskey" if missing == "secretkey" else "secretkey"
            ),
        )
    encrypt = check.boolean(p, path, "encrypt", defaults.encrypt)
    keyid = check.string(p, path, "keyid")
    if keyid is not None and not encrypt:
        check.warn(path + ("keyid",), "ignored unless encrypt is true")
    storageclass = check.choice(
        p, path, "storageclass", defaults.storageclass, STORAGE_CLASSES, "storage class", fold=str.upper
    )
    objectacl = check.choice(p, path, "objectacl", defaults.objectacl, OBJECT_ACLS, "object ACL")
    check.boolean(p, path, "usedualstack", False)
    check.boolean(p, path, "accelerate", False)
    check.string(p, path, "loglevel")
    return s.S3Settings(
        bucket=bucket,
        region=region,
        accesskey=accesskey,
        secretkey=secretkey,
        regionendpoint=endpoint,
        host=host,
        port=port,
        secure=secure,
        skipverify=check.boolean(p, path, "skipverify", defaults.skipverify),
        forcepathstyle=check.boolean(p, path, "forcepathstyle", defaults.forcepathstyle),
        encrypt=encrypt,
        keyid=keyid,
        chunksize=check.integer(
            p, path, "chunksize", defaults.chunksize, S3_MIN_CHUNK, S3_MAX_CHUNK, digits_ok=True
        ),
        multipartcopychunksize=check.integer(
            p,
            path,
            "multipartcopychunksize",
            defaults.multipartcopychunksize,
            S3_MIN_CHUNK,
            S3_MAX_CHUNK,
            digits_ok=True,
        ),
        multipartcopymaxconcurrency=check.integer(
            p, path, "multipartcopymaxconcurrency", defaults.multipartcopymaxconcurrency, 1, digits_ok=True
        ),
        multipartcopythresholdsize=check.integer(
            p,
            path,
            "multipartcopythresholdsize",
            defaults.multipartcopythresholdsize,
            0,
            S3_MAX_CHUNK,
            digits_ok=True,
        ),
        rootdirectory=check.string(p, path, "rootdirectory", defaults.rootdirectory),
        storageclass=storageclass,
        objectacl=objectacl,
        useragent=check.string(p, path, "useragent"),
        v4auth=check.boolean(p, path, "v4auth", defaults.v4auth),
        sessiontoken=check.string(p, path, "sessiontoken"),
    )


def _http(check, tree):
    path = ("http",)
    section = check.mapping(tree.get("http"), path)
    check.known(section, path)
    defaults = s.HTTPSettings()
    net = check.choice(section, path, "net", "tcp", ("tcp", "unix"), "network")
    addr = check.string(section, path, "addr", defaults.addr)
    if net == "unix":
        if addr == defaults.addr and section.get("addr") is None:
            check.fail(path + ("addr",), "required with net: unix (the socket path)", at=path + ("net",))
    else:
        try:
            split_host_port(addr)
        except ValueError as error:
            check.fail(path + ("addr",), str(error))
    prefix = check.string(section, path, "prefix", "", empty_ok=True).strip()
    if prefix and not prefix.startswith("/"):
        prefix = "/" + prefix
    prefix = prefix.rstrip("/")
    host = check.string(section, path, "host")
    if host is not None:
        check_http_url(check, path + ("host",), host, "an absolute URL such as https://registry.example.com")
    draintimeout = check.duration(section, path, "draintimeout", defaults.draintimeout)
    headers = _headers(check, section, path)
    tls = _tls(check, section, path)
    debug = None
    if section.get("debug") is not None:
        debug_path = path + ("debug",)
        debug_section = check.mapping(section.get("debug"), debug_path)
        check.known(debug_section, debug_path)
        debug_addr = check.string(debug_section, debug_path, "addr")
        if debug_addr is not None:
            try:
                split_host_port(debug_addr)
            except ValueError as error:
                check.fail(debug_path + ("addr",), str(error))
        prometheus_path = debug_path + ("prometheus",)
        prometheus = check.mapping(debug_section.get("prometheus"), prometheus_path)
        check.known(prometheus, prometheus_path)
        metrics_path = check.string(prometheus, prometheus_path, "path", "/metrics")
        if not metrics_path.startswith("/"):
            check.fail(prometheus_path + ("path",), "must start with /")
        debug = s.DebugSettings(
            addr=debug_addr,
            prometheus_enabled=check.boolean(prometheus, prometheus_path, "enabled", False),
            prometheus_path=metrics_path,
        )
        if debug.prometheus_enabled and debug_addr is None:
            check.warn(prometheus_path + ("enabled",), "ignored without http.debug.addr (metrics are served there)")
    for name, key in (("http2", "disabled"), ("h2c", "enabled")):
        sub = check.mapping(section.get(name), path + (name,))
        check.known(sub, path + (name,))
        check.boolean(sub, path + (name,), key, False)
    ui = check.mapping(section.get("ui"), path + ("ui",))
    check.known(ui, path + ("ui",))
    return s.HTTPSettings(
        addr=addr,
        net=net,
        prefix=prefix,
        host=host.rstrip("/") if host else host,
        secret=check.string(section, path, "secret"),
        relativeurls=check.boolean(section, path, "relativeurls", False),
        draintimeout=draintimeout,
        headers=headers,
        tls=tls,
        debug=debug,
        ui_enabled=check.boolean(ui, path + ("ui",), "enabled", True),
    )


def _headers(check, section, path):
    headers_path = path + ("headers",)
    raw = check.mapping(section.get("headers"), headers_path)
    headers = {}
    seen = {}
    for name in raw:
        where = headers_path + (name,)
        if not _HEADER_NAME.fullmatch(name):
            check.fail(where, "invalid header name {!r}".format(name))
        values = check.strings(raw, headers_path, name)
        for index, value in enumerate(values):
            if "\r" in value or "\n" in value:
                check.fail(where, "a header value must not contain a line break")
        if name.lower() in seen:
            check.warn(where, "same header as {}; the last one wins".format(seen[name.lower()]))
            del headers[seen[name.lower()]]
        seen[name.lower()] = name
        headers[name] = values
    return headers


def _tls(check, section, path):
    tls_path = path + ("tls",)
    if section.get("tls") is None:
        return None
    tls = check.mapping(section.get("tls"), tls_path)
    check.known(tls, tls_path)
    certificate = check.string(tls, tls_path, "certificate")
    key = check.string(tls, tls_path, "key")
    clientcas = check.strings(tls, tls_path, "clientcas")
    clientauth = check.choice(tls, tls_path, "clientauth", None, CLIENT_AUTH, "client auth mode")
    minimumtls = check.choice(tls, tls_path, "minimumtls", "tls1.2", TLS_VERSIONS, "TLS version")
    ciphersuites = check.strings(tls, tls_path, "ciphersuites")
    for index, name in enumerate(ciphersuites):
        if name.upper() not in GO_CIPHER_SUITES:
            check.fail(
                tls_path + ("ciphersuites",),
                "unknown cipher suite {!r} (use Go's names, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)".format(name),
            )
    ciphersuites = tuple(name.upper() for name in ciphersuites)
    letsencrypt = None
    if tls.get("letsencrypt") is not None:
        letsencrypt = _letsencrypt(check, tls, tls_path)
        if certificate is not None:
            check.fail(
                tls_path + ("letsencrypt",),
                "cannot be used together with http.tls.certificate; choose one",
            )
    if certificate is None and letsencrypt is None:
        if key is not None:
            check.fail(tls_path + ("certificate",), "required when http.tls.key is set")
        if tls:
            check.warn(
                tls_path,
                "neither certificate nor letsencrypt is set: serving plain HTTP, the other tls keys are ignored",
            )
        return None
    if certificate is not None and key is None:
        check.fail(tls_path + ("key",), "required when http.tls.certificate is set")
    if minimumtls in ("tls1.0", "tls1.1"):
        check.warn(
            tls_path + ("minimumtls",),
            "{} is accepted but insecure and refused by current clients; use tls1.2 or tls1.3".format(minimumtls),
        )
    if clientauth in ("verify-client-cert-if-given", "require-and-verify-client-cert") and not clientcas:
        check.fail(tls_path + ("clientauth",), "{} needs http.tls.clientcas".format(clientauth))
    return s.TLSSettings(
        certificate=certificate,
        key=key,
        clientcas=clientcas,
        clientauth=clientauth,
        minimumtls=minimumtls,
        ciphersuites=ciphersuites,
        letsencrypt=letsencrypt,
    )


def _letsencrypt(check, tls, tls_path):
    path = tls_path + ("letsencrypt",)
    le = check.mapping(tls.get("letsencrypt"), path)
    check.known(le, path)
    defaults = s.LetsEncryptSettings(cachefile="", hosts=())
    cachefile = check.string(le, path, "cachefile", required=True)
    hosts = check.strings(le, path, "hosts")
    if not hosts:
        check.fail(
            path + ("hosts",),
            "required and must not be empty: without hosts no certificate would ever be issued",
        )
    for index, host in enumerate(hosts):
        if not host or "://" in host or "/" in host or any(c.isspace() for c in host):
            check.fail(path + ("hosts",), "expected host names such as registry.example.com, got {!r}".format(host))
        if "*" in host:
            check.fail(
                path + ("hosts",),
                "wildcard host {!r} cannot be validated with tls-alpn-01 or http-01".format(host),
            )
    email = check.string(le, path, "email")
    if email is not None and ("@" not in email or any(c.isspace() for c in email)):
        check.fail(path + ("email",), "expected an e-mail address, got {!r}".format(email))
    directoryurl = check.string(le, path, "directoryurl", defaults.directoryurl)
    check_http_url(check, path + ("directoryurl",), directoryurl, "the ACME directory URL")
    challenges = check.strings(le, path, "challenges") if le.get("challenges") is not None else defaults.challenges
    if not challenges:
        check.fail(path + ("challenges",), "must not be empty (expected {})".format(_choices(ACME_CHALLENGES)))
    for challenge in challenges:
        if challenge not in ACME_CHALLENGES:
            check.fail(
                path + ("challenges",),
                "unknown challenge {!r} (expected {})".format(challenge, _choices(ACME_CHALLENGES)),
            )
    if "httpaddr" in le:
        httpaddr = check.string(le, path, "httpaddr")  # null or "": no plain HTTP listener
    else:
        httpaddr = defaults.httpaddr
    if httpaddr is not None:
        try:
            split_host_port(httpaddr)
        except ValueError as error:
            check.fail(path + ("httpaddr",), str(error))
    elif "http-01" in challenges:
        check.fail(path + ("httpaddr",), "required for the http-01 challenge (e.g. :80)")
    return s.LetsEncryptSettings(
        cachefile=cachefile,
        hosts=hosts,
        email=email,
        directoryurl=directoryurl,
        challenges=tuple(dict.fromkeys(challenges)),
        httpaddr=httpaddr,
    )


def _auth(check, tree):
    path = ("auth",)
    value = tree.get("auth")
    if value is None:
        return None
    if isinstance(value, str):
        value = {value: {}}
    section = check.mapping(value, path)
    providers = list(section)
    if not providers:
        return None
    if len(providers) > 1:
        check.fail(
            path + (providers[1],),
            "at most one auth provider is allowed, found {}".format(" and ".join(providers)),
        )
    provider = providers[0]
    provider_path = path + (provider,)
    if provider not in AUTH_PROVIDERS:
        check.fail(
            provider_path,
            "unknown auth provider {!r} (expected {})".format(provider, _choices(AUTH_PROVIDERS)),
        )
    parameters = check.mapping(section[provider], provider_path)
    if provider == "htpasswd":
        check.known(parameters, provider_path)
        return s.AuthSettings(
            provider="htpasswd",
            htpasswd=s.HtpasswdSettings(
                realm=check.string(parameters, provider_path, "realm", required=True),
                path=check.string(parameters, provider_path, "path", required=True),
            ),
        )
    return s.AuthSettings(provider=provider, parameters=dict(parameters))


def _catalog(check, tree):
    path = ("catalog",)
    section = check.mapping(tree.get("catalog"), path)
    check.known(section, path)
    return s.CatalogSettings(maxentries=check.integer(section, path, "maxentries", 1000, minimum=1))


def _not_acted_on(check, tree):
    for entry, reason in NOT_ACTED_ON.items():
        key, _, wanted = entry.partition("=")
        path = tuple(key.split("."))
        node = tree
        for part in path:
            node = node.get(part, _MISSING) if isinstance(node, dict) else _MISSING
            if node is _MISSING:
                break
        if node is _MISSING:
            continue
        if wanted and (isinstance(node, (dict, list)) or str(node).lower() != wanted.lower()):
            continue
        check.warn(path, "read but not acted on yet: " + reason)
