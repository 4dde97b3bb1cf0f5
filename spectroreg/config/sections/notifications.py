"""The ``notifications`` section: webhook endpoints, read the way Distribution reads them."""

from dataclasses import dataclass
from typing import Mapping, Tuple

from spectroreg.config.addresses import check_http_url
from spectroreg.config.declare import BOOL, DURATION, INT, STR, STRINGS, declared, free, key, sections
from spectroreg.config.sections.http import HEADERS, headers_settings

# Distribution's defaults (notifications/endpoint.go).
DEFAULT_ENDPOINT_TIMEOUT = 1.0
DEFAULT_ENDPOINT_THRESHOLD = 10
DEFAULT_ENDPOINT_BACKOFF = 1.0
DEFAULT_QUEUE_SIZE = 1000  # spectroreg: events kept per endpoint before the oldest are dropped
EVENT_ACTIONS = ("pull", "push", "mount", "delete")


@dataclass(frozen=True)
class EndpointSettings:
    name: str = key(STR, required=True)
    url: str = key(STR, required=True)
    headers: Mapping[str, Tuple[str, ...]] = free(HEADERS, factory=dict)
    timeout: float = key(DURATION, DEFAULT_ENDPOINT_TIMEOUT)
    threshold: int = key(INT, DEFAULT_ENDPOINT_THRESHOLD, minimum=0)
    backoff: float = key(DURATION, DEFAULT_ENDPOINT_BACKOFF)
    # ignoredmediatypes and ignore.mediatypes, merged.
    ignored_mediatypes: Tuple[str, ...] = key(STRINGS, (), at="ignoredmediatypes")
    ignored_actions: Tuple[str, ...] = key(STRINGS, (), at="ignore.actions")
    disabled: bool = key(BOOL, False)
    queuesize: int = key(INT, DEFAULT_QUEUE_SIZE, minimum=1)

    OTHER_KEYS = {"ignore.mediatypes": declared(STRINGS, ())}


@dataclass(frozen=True)
class NotificationSettings:
    endpoints: Tuple[EndpointSettings, ...] = sections(EndpointSettings)
    includereferences: bool = key(BOOL, False, at="events.includereferences")

    @property
    def active(self):
        return tuple(endpoint for endpoint in self.endpoints if not endpoint.disabled)


def notification_settings(check, tree):
    """The checked C{notifications} section (L{NotificationSettings})."""
    path = ("notifications",)
    section_values = check.mapping(tree.get("notifications"), path)
    check.known(section_values, path)
    events_path = path + ("events",)
    events = check.mapping(section_values.get("events"), events_path)
    check.known(events, events_path)
    endpoints = []
    names = set()
    for where, item in check.mappings(section_values, path, "endpoints"):
        check.known(item, where)
        name = check.read(item, where, "name")
        if name in names:
            check.fail(where + ("name",), "another endpoint is already named {!r}".format(name))
        names.add(name)
        endpoints.append(_endpoint(check, item, where, name))
    return NotificationSettings(
        endpoints=tuple(endpoints),
        includereferences=check.read(events, events_path, "includereferences"),
    )


def _endpoint(check, item, where, name):
    disabled = check.read(item, where, "disabled")
    url = check.read(item, where, "url")
    check_http_url(check, where + ("url",), url)
    ignore_path = where + ("ignore",)
    ignore = check.mapping(item.get("ignore"), ignore_path)
    check.known(ignore, ignore_path)
    actions = check.read(ignore, ignore_path, "actions")
    for action in actions:
        if action not in EVENT_ACTIONS:
            check.fail(
                ignore_path + ("actions",),
                "unknown action {!r} (expected {})".format(action, ", ".join(EVENT_ACTIONS)),
            )
    mediatypes = check.read(item, where, "ignoredmediatypes") + check.read(ignore, ignore_path, "mediatypes")
    given = dict(
        name=name, url=url, disabled=disabled, headers=headers_settings(check, item, where),
        ignored_mediatypes=tuple(dict.fromkeys(mediatypes)), ignored_actions=tuple(dict.fromkeys(actions)),
    )
    for zero_means_default in ("timeout", "threshold", "backoff"):
        given[zero_means_default] = check.read_zero_is_default(item, where, zero_means_default)
    return EndpointSettings(**check.read_keys(EndpointSettings, item, where, **given))

