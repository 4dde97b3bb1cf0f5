"""
The operations sections of the configuration: ``health`` (checks that make
the registry answer 503 while they fail) and ``notifications`` (webhook
endpoints), checked into typed settings the way Distribution reads them.
"""

from dataclasses import dataclass, field
from typing import Mapping, Tuple

from spectroreg.config.addresses import check_http_url, split_host_port

# Distribution's defaults (registry/handlers/app.go, notifications/endpoint.go).
DEFAULT_CHECK_INTERVAL = 10.0
DEFAULT_CHECK_TIMEOUT = 10.0  # Distribution waits forever; a check must end
DEFAULT_ENDPOINT_TIMEOUT = 1.0
DEFAULT_ENDPOINT_THRESHOLD = 10
DEFAULT_ENDPOINT_BACKOFF = 1.0
DEFAULT_QUEUE_SIZE = 1000  # spectroreg: events kept per endpoint before the oldest are dropped
EVENT_ACTIONS = ("pull", "push", "mount", "delete")


@dataclass(frozen=True)
class StorageCheckSettings:
    enabled: bool = False
    interval: float = DEFAULT_CHECK_INTERVAL
    threshold: int = 0


@dataclass(frozen=True)
class FileCheckSettings:
    file: str
    interval: float = DEFAULT_CHECK_INTERVAL


@dataclass(frozen=True)
class HTTPCheckSettings:
    uri: str
    headers: Mapping[str, Tuple[str, ...]] = field(default_factory=dict)
    statuscode: int = 200
    timeout: float = DEFAULT_CHECK_TIMEOUT
    interval: float = DEFAULT_CHECK_INTERVAL
    threshold: int = 0


@dataclass(frozen=True)
class TCPCheckSettings:
    addr: str
    timeout: float = DEFAULT_CHECK_TIMEOUT
    interval: float = DEFAULT_CHECK_INTERVAL
    threshold: int = 0


@dataclass(frozen=True)
class HealthSettings:
    storagedriver: StorageCheckSettings = field(default_factory=StorageCheckSettings)
    file: Tuple[FileCheckSettings, ...] = ()
    http: Tuple[HTTPCheckSettings, ...] = ()
    tcp: Tuple[TCPCheckSettings, ...] = ()

    @property
    def any(self):
        return bool(self.storagedriver.enabled or self.file or self.http or self.tcp)


@dataclass(frozen=True)
class EndpointSettings:
    name: str
    url: str
    headers: Mapping[str, Tuple[str, ...]] = field(default_factory=dict)
    timeout: float = DEFAULT_ENDPOINT_TIMEOUT
    threshold: int = DEFAULT_ENDPOINT_THRESHOLD
    backoff: float = DEFAULT_ENDPOINT_BACKOFF
    ignored_mediatypes: Tuple[str, ...] = ()
    ignored_actions: Tuple[str, ...] = ()
    disabled: bool = False
    queuesize: int = DEFAULT_QUEUE_SIZE


@dataclass(frozen=True)
class NotificationSettings:
    endpoints: Tuple[EndpointSettings, ...] = ()
    includereferences: bool = False

    @property
    def active(self):
        return tuple(endpoint for endpoint in self.endpoints if not endpoint.disabled)


_CHECK_KEYS = {
    "file": ("file", "interval"),
    "http": ("uri", "headers", "statuscode", "timeout", "interval", "threshold"),
    "tcp": ("addr", "timeout", "interval", "threshold"),
}
_ENDPOINT_KEYS = (
    "name", "disabled", "url", "headers", "timeout", "threshold", "backoff",
    "ignoredmediatypes", "ignore", "queuesize",
)


def _list_of_mappings(check, section, path, key):
    value = section.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        check.fail(path + (key,), "expected a list of mappings")
    items = []
    for index, item in enumerate(value):
        items.append((path + (key, index), check.mapping(item, path + (key, index))))
    return items


def _unknown(check, mapping, path, known):
    for key in mapping:
        if key not in known:
            check.warn(path + (key,), "unknown key, ignored")


def _headers(check, mapping, path):
    from spectroreg.config.sections.http import headers_settings

    return headers_settings(check, mapping, path)


def _interval(check, mapping, path):
    value = check.duration(mapping, path, "interval", DEFAULT_CHECK_INTERVAL)
    # As in Distribution, 0 means the default.
    return value or DEFAULT_CHECK_INTERVAL


def _timeout(check, mapping, path, default):
    return check.duration(mapping, path, "timeout", default) or default


def health_settings(check, tree):
    """The checked C{health} section (L{HealthSettings})."""
    path = ("health",)
    section = check.mapping(tree.get("health"), path)
    _unknown(check, section, path, ("storagedriver", "file", "http", "tcp"))
    sd_path = path + ("storagedriver",)
    sd = check.mapping(section.get("storagedriver"), sd_path)
    _unknown(check, sd, sd_path, ("enabled", "interval", "threshold"))
    storage = StorageCheckSettings(
        enabled=check.boolean(sd, sd_path, "enabled", False),
        interval=_interval(check, sd, sd_path),
        threshold=check.integer(sd, sd_path, "threshold", 0, minimum=0),
    )
    files = []
    for where, item in _list_of_mappings(check, section, path, "file"):
        _unknown(check, item, where, _CHECK_KEYS["file"])
        files.append(FileCheckSettings(
            file=check.string(item, where, "file", required=True),
            interval=_interval(check, item, where),
        ))
    https = []
    for where, item in _list_of_mappings(check, section, path, "http"):
        _unknown(check, item, where, _CHECK_KEYS["http"])
        uri = check.string(item, where, "uri", required=True)
        check_http_url(check, where + ("uri",), uri)
        https.append(HTTPCheckSettings(
            uri=uri,
            headers=_headers(check, item, where),
            statuscode=check.integer(item, where, "statuscode", 200, minimum=100, maximum=599),
            timeout=_timeout(check, item, where, DEFAULT_CHECK_TIMEOUT),
            interval=_interval(check, item, where),
            threshold=check.integer(item, where, "threshold", 0, minimum=0),
        ))
    tcps = []
    for where, item in _list_of_mappings(check, section, path, "tcp"):
        _unknown(check, item, where, _CHECK_KEYS["tcp"])
        addr = check.string(item, where, "addr", required=True)
        try:
            host, _ = split_host_port(addr)
        except ValueError as error:
            check.fail(where + ("addr",), str(error))
        if not host:
            check.fail(where + ("addr",), "expected host:port, got {!r}".format(addr))
        tcps.append(TCPCheckSettings(
            addr=addr,
            timeout=_timeout(check, item, where, DEFAULT_CHECK_TIMEOUT),
            interval=_interval(check, item, where),
            threshold=check.integer(item, where, "threshold", 0, minimum=0),
        ))
    return HealthSettings(storagedriver=storage, file=tuple(files), http=tuple(https), tcp=tuple(tcps))


def notification_settings(check, tree):
    """The checked C{notifications} section (L{NotificationSettings})."""
    path = ("notifications",)
    section = check.mapping(tree.get("notifications"), path)
    _unknown(check, section, path, ("endpoints", "events"))
    events_path = path + ("events",)
    events = check.mapping(section.get("events"), events_path)
    _unknown(check, events, events_path, ("includereferences",))
    endpoints = []
    names = set()
    for where, item in _list_of_mappings(check, section, path, "endpoints"):
        _unknown(check, item, where, _ENDPOINT_KEYS)
        name = check.string(item, where, "name", required=True)
        if name in names:
            check.fail(where + ("name",), "another endpoint is already named {!r}".format(name))
        names.add(name)
        disabled = check.boolean(item, where, "disabled", False)
        url = check.string(item, where, "url", required=True)
        check_http_url(check, where + ("url",), url)
        ignore_path = where + ("ignore",)
        ignore = check.mapping(item.get("ignore"), ignore_path)
        _unknown(check, ignore, ignore_path, ("mediatypes", "actions"))
        actions = check.strings(ignore, ignore_path, "actions")
        for action in actions:
            if action not in EVENT_ACTIONS:
                check.fail(
                    ignore_path + ("actions",),
                    "unknown action {!r} (expected {})".format(action, ", ".join(EVENT_ACTIONS)),
                )
        mediatypes = check.strings(item, where, "ignoredmediatypes") + check.strings(
            ignore, ignore_path, "mediatypes"
        )
        endpoints.append(EndpointSettings(
            name=name,
            url=url,
            headers=_headers(check, item, where),
            timeout=_timeout(check, item, where, DEFAULT_ENDPOINT_TIMEOUT),
            threshold=check.integer(item, where, "threshold", 0, minimum=0) or DEFAULT_ENDPOINT_THRESHOLD,
            backoff=check.duration(item, where, "backoff", DEFAULT_ENDPOINT_BACKOFF) or DEFAULT_ENDPOINT_BACKOFF,
            ignored_mediatypes=tuple(dict.fromkeys(mediatypes)),
            ignored_actions=tuple(dict.fromkeys(actions)),
            disabled=disabled,
            queuesize=check.integer(item, where, "queuesize", DEFAULT_QUEUE_SIZE, minimum=1),
        ))
    return NotificationSettings(
        endpoints=tuple(endpoints),
        includereferences=check.boolean(events, events_path, "includereferences", False),
    )
