"""
Typed, validated settings: what the rest of spectroreg reads.

``spectroreg.config.load`` turns Distribution's YAML (plus ``REGISTRY_*``
overrides) into these objects; nothing else in the daemon looks at raw
config dictionaries. Every value here is already checked and normalised:
durations are seconds (float), sizes are ints, optional sections are None
when absent.
"""

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Tuple

from spectroreg.config.operations import HealthSettings, NotificationSettings
from spectroreg.config.redis_settings import RedisSettings

LETSENCRYPT_PRODUCTION = "https://acme-v02.api.letsencrypt.org/directory"


@dataclass(frozen=True)
class LogSettings:
    level: str = "info"  # error | warn | info | debug
    formatter: str = "text"  # text | json | logstash
    fields: Mapping[str, Any] = field(default_factory=dict)
    accesslog_disabled: bool = False


@dataclass(frozen=True)
class FilesystemSettings:
    rootdirectory: str = "/var/lib/registry"
    maxthreads: int = 100


@dataclass(frozen=True)
class S3Settings:
    bucket: str
    region: str = "us-east-1"
    accesskey: Optional[str] = None
    secretkey: Optional[str] = None
    regionendpoint: Optional[str] = None  # full URL, e.g. http://127.0.0.1:9000
    host: Optional[str] = None  # S3-compatible server host (with port and secure)
    port: Optional[int] = None
    secure: bool = True  # https unless false
    skipverify: bool = False
    forcepathstyle: bool = False
    encrypt: bool = False
    keyid: Optional[str] = None
    chunksize: int = 10 * 1024 * 1024
    multipartcopychunksize: int = 32 * 1024 * 1024
    multipartcopymaxconcurrency: int = 100
    multipartcopythresholdsize: int = 32 * 1024 * 1024
    rootdirectory: str = ""
    storageclass: str = "STANDARD"
    objectacl: str = "private"
    useragent: Optional[str] = None
    v4auth: bool = True
    sessiontoken: Optional[str] = None  # temporary credentials, with accesskey/secretkey


@dataclass(frozen=True)
class UploadPurgingSettings:
    enabled: bool = True
    age: float = 168 * 3600.0
    interval: float = 24 * 3600.0
    dryrun: bool = False


@dataclass(frozen=True)
class GarbageCollectSettings:
    """``storage.maintenance.gc``: online garbage collection (ours; off by default)."""

    enabled: bool = False
    interval: float = 24 * 3600.0
    graceperiod: float = 3600.0
    deleteuntagged: bool = False
    dryrun: bool = False


@dataclass(frozen=True)
class StorageSettings:
    driver: str  # "inmemory" | "filesystem" | "s3"
    filesystem: Optional[FilesystemSettings] = None  # set when driver == "filesystem"
    s3: Optional[S3Settings] = None  # set when driver == "s3"
    blobdescriptor_cache: Optional[str] = None  # None | "inmemory" | "redis"
    delete_enabled: bool = False
    redirect_disable: bool = False
    uploadpurging: UploadPurgingSettings = field(default_factory=UploadPurgingSettings)
    readonly: bool = False
    gc: GarbageCollectSettings = field(default_factory=GarbageCollectSettings)


@dataclass(frozen=True)
class LetsEncryptSettings:
    cachefile: str  # a directory (Go autocert's DirCache layout)
    hosts: Tuple[str, ...]
    email: Optional[str] = None
    directoryurl: str = LETSENCRYPT_PRODUCTION
    # spectroreg extensions (Distribution ignores them):
    challenges: Tuple[str, ...] = ("tls-alpn-01", "http-01")
    httpaddr: Optional[str] = ":80"  # plain HTTP listener for HTTP-01 + redirect; None: none


@dataclass(frozen=True)
class TLSSettings:
    certificate: Optional[str] = None
    key: Optional[str] = None
    clientcas: Tuple[str, ...] = ()
    # Distribution v3 names: request-client-cert, require-any-client-cert,
    # verify-client-cert-if-given, require-and-verify-client-cert (the default when
    # clientcas is set).
    clientauth: Optional[str] = None
    minimumtls: str = "tls1.2"  # tls1.0 | tls1.1 | tls1.2 | tls1.3
    ciphersuites: Tuple[str, ...] = ()  # Go names, as written in the config
    letsencrypt: Optional[LetsEncryptSettings] = None


@dataclass(frozen=True)
class DebugSettings:
    addr: Optional[str] = None
    prometheus_enabled: bool = False
    prometheus_path: str = "/metrics"


@dataclass(frozen=True)
class HTTPSettings:
    addr: str = ":5000"
    net: str = "tcp"  # tcp | unix
    prefix: str = ""  # normalised: "" or "/something" without trailing slash
    host: Optional[str] = None  # external URL, e.g. https://registry.example.com
    secret: Optional[str] = None
    relativeurls: bool = False
    draintimeout: float = 0.0  # seconds
    # Header name (as written) -> values; applied to every response.
    headers: Mapping[str, Tuple[str, ...]] = field(default_factory=dict)
    tls: Optional[TLSSettings] = None
    debug: Optional[DebugSettings] = None
    ui_enabled: bool = True  # http.ui.enabled: the web pages at / and <prefix>/ui/


@dataclass(frozen=True)
class HtpasswdSettings:
    realm: str
    path: str


@dataclass(frozen=True)
class AuthSettings:
    provider: str  # "htpasswd" | "token" | "silly"
    htpasswd: Optional[HtpasswdSettings] = None
    # Parameters of providers not implemented yet, kept as given.
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CatalogSettings:
    maxentries: int = 1000


@dataclass(frozen=True)
class Settings:
    version: str
    log: LogSettings
    storage: StorageSettings
    http: HTTPSettings
    auth: Optional[AuthSettings] = None
    catalog: CatalogSettings = field(default_factory=CatalogSettings)
    notifications: NotificationSettings = field(default_factory=NotificationSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    # Sections parsed and checked for shape but not acted on yet, kept as given.
    proxy: Mapping[str, Any] = field(default_factory=dict)
    validation: Mapping[str, Any] = field(default_factory=dict)
    middleware: Mapping[str, Any] = field(default_factory=dict)
    # Where the settings came from (file path or None), for messages.
    source: Optional[str] = None
    # Warnings produced while loading (unknown keys, keys read but not acted on).
    warnings: Tuple[str, ...] = ()
