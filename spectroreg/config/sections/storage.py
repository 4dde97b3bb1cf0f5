"""
The ``storage`` section: exactly one driver (``inmemory``, ``filesystem``,
``s3``) with its parameters, next to the reserved keys (cache, delete,
redirect, maintenance, tag).
"""

from dataclasses import dataclass
from typing import Optional

from spectroreg.config.addresses import check_http_url
from spectroreg.config.messages import choices_text, close_match
from spectroreg.config.declare import ANY, BOOL, DURATION, INT, SIZE, STR, Leaf, key, section

MIB = 1024 * 1024
GIB = 1024 * MIB
S3_MIN_CHUNK = 5 * MIB
S3_MAX_CHUNK = 5 * GIB
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
# The shortest upload purging interval and age: purging lists every upload in
# storage, and at a nanosecond it would do nothing else.
MIN_PURGE_SECONDS = 1.0
# The shortest collection interval and grace period: a collection lists every
# blob and manifest, and no grace period would let it delete a blob pushed a
# moment before its manifest.
MIN_GC_SECONDS = 1.0


@dataclass(frozen=True)
class FilesystemSettings:
    rootdirectory: str = key(STR, "/var/lib/registry")
    maxthreads: int = key(INT, 100, minimum=1, digits_ok=True)


@dataclass(frozen=True)
class S3Settings:
    bucket: str = key(STR, required=True)
    region: str = key(STR, "us-east-1")
    accesskey: Optional[str] = key(STR)
    secretkey: Optional[str] = key(STR)
    regionendpoint: Optional[str] = key(STR)  # full URL, e.g. http://127.0.0.1:9000
    host: Optional[str] = key(STR)  # S3-compatible server host (with port and secure)
    port: Optional[int] = key(INT, None, minimum=1, maximum=65535, digits_ok=True)
    secure: bool = key(BOOL, True)  # https unless false
    skipverify: bool = key(BOOL, False)
    forcepathstyle: bool = key(BOOL, False)
    encrypt: bool = key(BOOL, False)
    keyid: Optional[str] = key(STR)
    chunksize: int = key(SIZE, 10 * MIB, minimum=S3_MIN_CHUNK, maximum=S3_MAX_CHUNK, digits_ok=True)
    multipartcopychunksize: int = key(
        SIZE, 32 * MIB, minimum=S3_MIN_CHUNK, maximum=S3_MAX_CHUNK, digits_ok=True
    )
    multipartcopymaxconcurrency: int = key(INT, 100, minimum=1, digits_ok=True)
    multipartcopythresholdsize: int = key(SIZE, 32 * MIB, minimum=0, maximum=S3_MAX_CHUNK, digits_ok=True)
    rootdirectory: str = key(STR, "")
    storageclass: str = key(STR, "STANDARD", choices=STORAGE_CLASSES, what="storage class", fold=str.upper)
    objectacl: str = key(STR, "private", choices=OBJECT_ACLS, what="object ACL")
    useragent: Optional[str] = key(STR)
    v4auth: bool = key(BOOL, True)
    sessiontoken: Optional[str] = key(STR)  # temporary credentials, with accesskey/secretkey

    OTHER_KEYS = {"usedualstack": Leaf(BOOL), "accelerate": Leaf(BOOL), "loglevel": Leaf(STR)}


@dataclass(frozen=True)
class UploadPurgingSettings:
    enabled: bool = key(BOOL, True)
    age: float = key(DURATION, 168 * 3600.0)
    interval: float = key(DURATION, 24 * 3600.0)
    dryrun: bool = key(BOOL, False)


@dataclass(frozen=True)
class GarbageCollectSettings:
    """``storage.maintenance.gc``: online garbage collection (ours; off by default)."""

    enabled: bool = key(BOOL, False)
    interval: float = key(DURATION, 24 * 3600.0)
    graceperiod: float = key(DURATION, 3600.0)
    deleteuntagged: bool = key(BOOL, False)
    dryrun: bool = key(BOOL, False)


SUPPORTED_DRIVERS = ("inmemory", "filesystem", "s3")
# Distribution's other drivers: recognised so that the error says "not supported".
UNSUPPORTED_DRIVERS = ("azure", "gcs", "swift", "oss", "s3-aws")


@dataclass(frozen=True)
class StorageSettings:
    driver: str  # one of SUPPORTED_DRIVERS
    filesystem: Optional[FilesystemSettings] = section(FilesystemSettings)  # set when driver == "filesystem"
    s3: Optional[S3Settings] = section(S3Settings)  # set when driver == "s3"
    # None | "inmemory" | "redis"
    blobdescriptor_cache: Optional[str] = key(
        STR, None, at="cache.blobdescriptor", choices=("inmemory", "redis"), what="blob descriptor cache"
    )
    delete_enabled: bool = key(BOOL, False, at="delete.enabled")
    redirect_disable: bool = key(BOOL, False, at="redirect.disable")
    uploadpurging: UploadPurgingSettings = section(
        UploadPurgingSettings, at="maintenance.uploadpurging", factory=UploadPurgingSettings
    )
    readonly: bool = key(BOOL, False, at="maintenance.readonly.enabled")
    gc: GarbageCollectSettings = section(GarbageCollectSettings, at="maintenance.gc", factory=GarbageCollectSettings)

    OTHER_KEYS = dict(
        {
            "inmemory": {},
            "cache.blobdescriptorsize": Leaf(INT, minimum=1),
            "tag.concurrencylimit": Leaf(INT, minimum=1),
        },
        **{driver: ANY for driver in UNSUPPORTED_DRIVERS},
    )


# Keys of the storage section that are not a driver.
STORAGE_RESERVED = ("cache", "delete", "redirect", "maintenance", "tag")


def storage_settings(check, tree):
    """The checked C{storage} section (L{StorageSettings})."""
    path = ("storage",)
    if tree.get("storage") is None:
        check.fail(path, "required: configure one storage driver ({})".format(choices_text(SUPPORTED_DRIVERS)))
    value = tree["storage"]
    if isinstance(value, str):
        value = {value: {}}
    section = check.mapping(value, path)
    driver = _driver_name(check, section, path)
    driver_path = path + (driver,)
    parameters = check.mapping(section[driver], driver_path)
    check.known(parameters, driver_path)
    filesystem = s3 = None
    if driver == "filesystem":
        filesystem = FilesystemSettings(**check.read_keys(FilesystemSettings, parameters, driver_path))
    elif driver == "s3":
        s3 = s3_settings(check, parameters, driver_path)
    for name in ("cache", "delete", "redirect", "tag"):
        check.known(check.mapping(section.get(name), path + (name,)), path + (name,))
    check.read_unkept(StorageSettings, section, path)
    uploadpurging, gc = _maintenance(check, section, path)
    return StorageSettings(
        **check.read_keys(
            StorageSettings, section, path, driver=driver, filesystem=filesystem, s3=s3,
            uploadpurging=uploadpurging, gc=gc,
        )
    )


def _driver_name(check, section, path):
    """The one driver configured: a supported one, or an error saying which are."""
    drivers = [key for key in section if key not in STORAGE_RESERVED]
    if not drivers:
        check.fail(path, "no storage driver configured (expected one of {})".format(choices_text(SUPPORTED_DRIVERS)))
    if len(drivers) > 1:
        check.fail(
            path + (drivers[1],),
            "exactly one storage driver is allowed, found {}".format(" and ".join(drivers)),
        )
    driver = drivers[0]
    if driver in UNSUPPORTED_DRIVERS:
        check.fail(
            path + (driver,),
            "the {} storage driver is not supported (spectroreg supports {})".format(
                driver, choices_text(SUPPORTED_DRIVERS)
            ),
        )
    if driver not in SUPPORTED_DRIVERS:
        close = close_match(driver, list(SUPPORTED_DRIVERS) + list(STORAGE_RESERVED))
        check.fail(
            path + (driver,),
            "unknown storage driver {!r} (expected one of {}{})".format(
                driver,
                choices_text(SUPPORTED_DRIVERS),
                "; did you mean {}?".format(close) if close else "",
            ),
        )
    return driver


def _maintenance(check, section, path):
    """C{storage.maintenance}: upload purging and garbage collection, with bounds while enabled."""
    maintenance_path = path + ("maintenance",)
    maintenance = check.mapping(section.get("maintenance"), maintenance_path)
    check.known(maintenance, maintenance_path)
    result = []
    for name, settings_class, bounded, least in (
        ("uploadpurging", UploadPurgingSettings, ("age", "interval"), MIN_PURGE_SECONDS),
        ("gc", GarbageCollectSettings, ("interval", "graceperiod"), MIN_GC_SECONDS),
    ):
        where = maintenance_path + (name,)
        values = check.mapping(maintenance.get(name), where)
        check.known(values, where)
        enabled = check.read(values, where, "enabled")
        given = {"enabled": enabled}
        for key_name in bounded:
            given[key_name] = check.read(values, where, key_name, minimum=least if enabled else 0.0)
        result.append(settings_class(**check.read_keys(settings_class, values, where, **given)))
    readonly_path = maintenance_path + ("readonly",)
    check.known(check.mapping(maintenance.get("readonly"), readonly_path), readonly_path)
    return result


def s3_settings(check, p, path):
    """The checked C{storage.s3} parameters (L{S3Settings})."""
    bucket = check.read(p, path, "bucket")
    secure = check.read(p, path, "secure")
    host = check.read(p, path, "host")
    if host is not None and "://" in host:
        check_http_url(check, path + ("host",), host, "a host name such as minio.example.com or an http(s) URL")
    elif host is not None and ("/" in host or any(c.isspace() for c in host)):
        check.fail(path + ("host",), "expected a host name such as minio.example.com, got {!r}".format(host))
    port = check.read(p, path, "port")
    if port is not None and host is None:
        check.warn(path + ("port",), "ignored without storage.s3.host")
    endpoint = check.read(p, path, "regionendpoint")
    if endpoint is not None:
        endpoint = endpoint.strip()
        if "://" not in endpoint:
            endpoint = ("https://" if secure else "http://") + endpoint
        check_http_url(check, path + ("regionendpoint",), endpoint, "an http(s) URL such as http://127.0.0.1:9000")
    region = check.read(p, path, "region", default=None)
    if region is None:
        if endpoint is None and host is None:
            check.fail(path + ("region",), "required (or set regionendpoint or host for an S3-compatible server)")
        region = S3Settings.region
    given = dict(bucket=bucket, secure=secure, host=host, port=port, regionendpoint=endpoint, region=region)
    given.update(_s3_credentials(check, p, path))
    check.read_unkept(S3Settings, p, path)
    return S3Settings(**check.read_keys(S3Settings, p, path, **given))


def _s3_credentials(check, p, path):
    """Both keys or neither; a KMS key id only with encryption."""
    accesskey = check.read(p, path, "accesskey")
    secretkey = check.read(p, path, "secretkey")
    if (accesskey is None) != (secretkey is None):
        missing = "secretkey" if secretkey is None else "accesskey"
        check.fail(
            path + (missing,),
            "required when {} is set (give both, or neither to use the environment's AWS credentials)".format(
                "accesskey" if missing == "secretkey" else "secretkey"
            ),
        )
    encrypt = check.read(p, path, "encrypt")
    keyid = check.read(p, path, "keyid")
    if keyid is not None and not encrypt:
        check.warn(path + ("keyid",), "ignored unless encrypt is true")
    storageclass = check.read(p, path, "storageclass")
    objectacl = check.read(p, path, "objectacl")
    return dict(
        accesskey=accesskey, secretkey=secretkey, encrypt=encrypt, keyid=keyid,
        storageclass=storageclass, objectacl=objectacl,
    )
