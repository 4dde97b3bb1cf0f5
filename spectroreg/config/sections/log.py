"""The ``log`` section (and Distribution 2.x's top-level ``loglevel``)."""

from dataclasses import dataclass
from typing import Any, Mapping

from spectroreg.config.declare import ANY, BOOL, STR, Leaf, MapOf, free, key

LOG_LEVELS = ("error", "warn", "info", "debug")
LOG_FORMATTERS = ("text", "json", "logstash")


@dataclass(frozen=True)
class LogSettings:
    level: str = key(STR, "info", choices=LOG_LEVELS, what="level")
    formatter: str = key(STR, "text", choices=LOG_FORMATTERS, what="formatter")
    fields: Mapping[str, Any] = free(MapOf(ANY), factory=dict)
    accesslog_disabled: bool = key(BOOL, False, at="accesslog.disabled")

    OTHER_KEYS = {"hooks": ANY, "reportcaller": Leaf(BOOL)}


def log_settings(check, tree):
    """The checked C{log} section; ``loglevel`` stands in for ``log.level`` (with a warning)."""
    path = ("log",)
    section = check.mapping(tree.get("log"), path)
    check.known(section, path)
    level = check.read(section, path, "level", default=None)
    if level is None and tree.get("loglevel") is not None:
        level = check.read(tree, (), "loglevel")
        check.warn(("loglevel",), "deprecated; use log.level")
    formatter = check.read(section, path, "formatter")
    fields = check.mapping(section.get("fields"), path + ("fields",))
    accesslog = check.mapping(section.get("accesslog"), path + ("accesslog",))
    check.known(accesslog, path + ("accesslog",))
    check.read_unkept(LogSettings, section, path)
    return LogSettings(
        **check.read_keys(
            LogSettings, section, path,
            level=level or LogSettings.level, formatter=formatter, fields=dict(fields),
        )
    )
