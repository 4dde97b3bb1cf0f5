"""
The ``health`` section: checks that make the registry answer 503 while they
fail, read the way Distribution reads them (0 means the default).
"""

from dataclasses import dataclass
from typing import Mapping, Tuple

from spectroreg.config.addresses import check_http_url, split_host_port
from spectroreg.config.declare import BOOL, DURATION, INT, STR, free, key, section, sections
from spectroreg.config.sections.http import HEADERS, headers_settings

# Distribution's defaults (registry/handlers/app.go).
DEFAULT_CHECK_INTERVAL = 10.0
DEFAULT_CHECK_TIMEOUT = 10.0  # Distribution waits forever; a check must end

def _interval():
    return key(DURATION, DEFAULT_CHECK_INTERVAL)


def _threshold():
    return key(INT, 0, minimum=0)


@dataclass(frozen=True)
class StorageCheckSettings:
    enabled: bool = key(BOOL, False)
    interval: float = _interval()
    threshold: int = _threshold()


@dataclass(frozen=True)
class FileCheckSettings:
    file: str = key(STR, required=True)
    interval: float = _interval()


@dataclass(frozen=True)
class HTTPCheckSettings:
    uri: str = key(STR, required=True)
    headers: Mapping[str, Tuple[str, ...]] = free(HEADERS, factory=dict)
    statuscode: int = key(INT, 200, minimum=100, maximum=599)
    timeout: float = key(DURATION, DEFAULT_CHECK_TIMEOUT)
    interval: float = _interval()
    threshold: int = _threshold()


@dataclass(frozen=True)
class TCPCheckSettings:
    addr: str = key(STR, required=True)
    timeout: float = key(DURATION, DEFAULT_CHECK_TIMEOUT)
    interval: float = _interval()
    threshold: int = _threshold()


@dataclass(frozen=True)
class HealthSettings:
    storagedriver: StorageCheckSettings = section(StorageCheckSettings, factory=StorageCheckSettings)
    file: Tuple[FileCheckSettings, ...] = sections(FileCheckSettings)
    http: Tuple[HTTPCheckSettings, ...] = sections(HTTPCheckSettings)
    tcp: Tuple[TCPCheckSettings, ...] = sections(TCPCheckSettings)

    @property
    def any(self):
        return bool(self.storagedriver.enabled or self.file or self.http or self.tcp)


def _check(check, settings_class, item, where, **given):
    check.known(item, where)
    for name in ("timeout", "interval"):
        if hasattr(settings_class, name):
            given[name] = check.read_zero_is_default(item, where, name)
    return settings_class(**check.read_keys(settings_class, item, where, **given))


def health_settings(check, tree):
    """The checked C{health} section (L{HealthSettings})."""
    path = ("health",)
    section_values = check.mapping(tree.get("health"), path)
    check.known(section_values, path)
    sd_path = path + ("storagedriver",)
    storage = _check(check, StorageCheckSettings, check.mapping(section_values.get("storagedriver"), sd_path), sd_path)
    files = [_check(check, FileCheckSettings, item, where)
             for where, item in check.mappings(section_values, path, "file")]
    https = []
    for where, item in check.mappings(section_values, path, "http"):
        uri = check.read(item, where, "uri")
        check_http_url(check, where + ("uri",), uri)
        https.append(_check(check, HTTPCheckSettings, item, where, uri=uri,
                            headers=headers_settings(check, item, where)))
    tcps = []
    for where, item in check.mappings(section_values, path, "tcp"):
        addr = check.read(item, where, "addr")
        try:
            host, _ = split_host_port(addr)
        except ValueError as error:
            check.fail(where + ("addr",), str(error))
        if not host:
            check.fail(where + ("addr",), "expected host:port, got {!r}".format(addr))
        tcps.append(_check(check, TCPCheckSettings, item, where, addr=addr))
    return HealthSettings(storagedriver=storage, file=tuple(files), http=tuple(https), tcp=tuple(tcps))
