"""
The shape of Distribution's configuration: every key spectroreg knows.

One tree serves two purposes: unknown-key warnings while validating, and
resolving ``REGISTRY_*`` variable names to key paths (case-insensitively).
A plain ``dict`` is a section with a fixed set of keys; ``ANY`` is a free-form
value kept as given; ``MapOf`` is a mapping with free-form names (headers);
``ListOf`` is a list (``_N`` indices in variable names).
"""


class Leaf:
    """A scalar value of one kind."""

    def __init__(self, kind):
        self.kind = kind

    def __repr__(self):
        return "Leaf({})".format(self.kind)


STR = Leaf("string")
INT = Leaf("integer")
BOOL = Leaf("boolean")
DURATION = Leaf("duration")
SIZE = Leaf("size")
ANY = Leaf("any")


class ListOf:
    """A list of C{item}; C{scalar_ok}: one scalar stands for a one-item list."""

    def __init__(self, item, scalar_ok=False):
        self.item = item
        self.scalar_ok = scalar_ok


class MapOf:
    """A mapping with free-form names; C{header_names}: HTTP header names (case-insensitive)."""

    def __init__(self, value, header_names=False):
        self.value = value
        self.header_names = header_names


SUPPORTED_DRIVERS = ("inmemory", "filesystem", "s3")
# Distribution's other drivers: recognised so that the error says "not supported".
UNSUPPORTED_DRIVERS = ("azure", "gcs", "swift", "oss", "s3-aws")
STORAGE_RESERVED = ("cache", "delete", "redirect", "maintenance", "tag")
AUTH_PROVIDERS = ("htpasswd", "token", "silly")

S3 = {
    "accesskey": STR,
    "secretkey": STR,
    "sessiontoken": STR,
    "region": STR,
    "regionendpoint": STR,
    "host": STR,
    "port": INT,
    "secure": BOOL,
    "skipverify": BOOL,
    "forcepathstyle": BOOL,
    "bucket": STR,
    "encrypt": BOOL,
    "keyid": STR,
    "chunksize": SIZE,
    "multipartcopychunksize": SIZE,
    "multipartcopymaxconcurrency": INT,
    "multipartcopythresholdsize": SIZE,
    "rootdirectory": STR,
    "storageclass": STR,
    "objectacl": STR,
    "useragent": STR,
    "v4auth": BOOL,
    "usedualstack": BOOL,
    "accelerate": BOOL,
    "loglevel": STR,
}

STORAGE = {
    "inmemory": {},
    "filesystem": {"rootdirectory": STR, "maxthreads": INT},
    "s3": S3,
    "cache": {"blobdescriptor": STR, "blobdescriptorsize": INT},
    "delete": {"enabled": BOOL},
    "redirect": {"disable": BOOL},
    "maintenance": {
        "uploadpurging": {"enabled": BOOL, "age": DURATION, "interval": DURATION, "dryrun": BOOL},
        "readonly": {"enabled": BOOL},
        "gc": {
            "enabled": BOOL,
            "interval": DURATION,
            "graceperiod": DURATION,
            "deleteuntagged": BOOL,
            "dryrun": BOOL,
        },
    },
    "tag": {"concurrencylimit": INT},
}
for _driver in UNSUPPORTED_DRIVERS:
    STORAGE[_driver] = ANY

LETSENCRYPT = {
    "cachefile": STR,
    "email": STR,
    "hosts": ListOf(STR, scalar_ok=True),
    "directoryurl": STR,
    "challenges": ListOf(STR, scalar_ok=True),
    "httpaddr": STR,
}

TLS = {
    "certificate": STR,
    "key": STR,
    "clientcas": ListOf(STR, scalar_ok=True),
    "clientauth": STR,
    "minimumtls": STR,
    "ciphersuites": ListOf(STR, scalar_ok=True),
    "letsencrypt": LETSENCRYPT,
}

HTTP = {
    "addr": STR,
    "net": STR,
    "prefix": STR,
    "host": STR,
    "secret": STR,
    "relativeurls": BOOL,
    "draintimeout": DURATION,
    "headers": MapOf(ListOf(STR, scalar_ok=True), header_names=True),
    "tls": TLS,
    "debug": {
        "addr": STR,
        "prometheus": {"enabled": BOOL, "path": STR},
        "pprof": ANY,
    },
    "http2": {"disabled": BOOL},
    "h2c": {"enabled": BOOL},
    "ui": {"enabled": BOOL},  # spectroreg's web pages (not in Distribution)
}

LOG = {
    "level": STR,
    "formatter": STR,
    "fields": MapOf(ANY),
    "accesslog": {"disabled": BOOL},
    "hooks": ANY,
    "reportcaller": BOOL,
}

AUTH = {
    "htpasswd": {"realm": STR, "path": STR},
    "token": ANY,
    "silly": ANY,
}

REDIS = {
    "addr": STR,
    "username": STR,
    "password": STR,
    "db": INT,
    "dialtimeout": DURATION,
    "readtimeout": DURATION,
    "writetimeout": DURATION,
    "pool": {"maxidle": INT, "maxactive": INT, "idletimeout": DURATION},
    "tls": {"enabled": BOOL},
}

SCHEMA = {
    "version": STR,
    "loglevel": STR,  # Distribution 2.x's deprecated spelling of log.level
    "log": LOG,
    "storage": STORAGE,
    "auth": AUTH,
    "http": HTTP,
    "notifications": ANY,
    "redis": REDIS,
    "health": ANY,
    "catalog": {"maxentries": INT},
    "proxy": ANY,
    "validation": ANY,
    "middleware": ANY,
    "reporting": ANY,
    "compatibility": ANY,
}


def schema_at(path):
    """The schema node for key path C{path} (a tuple), or None when unknown."""
    node = SCHEMA
    for part in path:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, MapOf):
            node = node.value
        elif isinstance(node, ListOf):
            node = node.item
        elif node is ANY:
            return ANY
        else:
            return None
        if node is None:
            return None
    return node
