"""The ``http`` section: listening address, URL prefix, headers, debug listener (TLS: L{tls})."""

import re
from dataclasses import dataclass
from typing import Mapping, Optional, Tuple

from spectroreg.config.addresses import check_http_url, split_host_port
from spectroreg.config.declare import ANY, BOOL, DURATION, INT, STR, Leaf, ListOf, MapOf, free, key, section
from spectroreg.config.sections.tls import TLSSettings, tls_settings

HTTP_NETWORKS = ("tcp", "unix")
MAX_WORKERS = 64
# Header name -> one value or a list of them, names matched case-insensitively.
HEADERS = MapOf(ListOf(Leaf(STR), scalar_ok=True), header_names=True)
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


@dataclass(frozen=True)
class DebugSettings:
    addr: Optional[str] = key(STR)
    prometheus_enabled: bool = key(BOOL, False, at="prometheus.enabled")
    prometheus_path: str = key(STR, "/metrics", at="prometheus.path")

    OTHER_KEYS = {"pprof": ANY}


@dataclass(frozen=True)
class HTTPSettings:
    addr: str = key(STR, ":5000")
    net: str = key(STR, "tcp", choices=HTTP_NETWORKS, what="network")
    prefix: str = key(STR, "", empty_ok=True)  # normalised: "" or "/something" without trailing slash
    host: Optional[str] = key(STR)  # external URL, e.g. https://registry.example.com
    secret: Optional[str] = key(STR)
    relativeurls: bool = key(BOOL, False)
    draintimeout: float = key(DURATION, 0.0)  # seconds
    # Processes serving http.addr (spectroreg's own key; see spectroreg.prefork).
    workers: int = key(INT, 1, minimum=1, maximum=MAX_WORKERS, digits_ok=True)
    # Header name (as written) -> values; applied to every response.
    headers: Mapping[str, Tuple[str, ...]] = free(HEADERS, factory=dict)
    tls: Optional[TLSSettings] = section(TLSSettings)
    debug: Optional[DebugSettings] = section(DebugSettings)
    ui_enabled: bool = key(BOOL, True, at="ui.enabled")  # spectroreg's web pages at / and <prefix>/ui/

    OTHER_KEYS = {"http2.disabled": Leaf(BOOL), "h2c.enabled": Leaf(BOOL)}


def http_settings(check, tree):
    """The checked C{http} section (L{HTTPSettings})."""
    path = ("http",)
    section_values = check.mapping(tree.get("http"), path)
    check.known(section_values, path)
    net = check.read(section_values, path, "net")
    addr = check.read(section_values, path, "addr")
    if net == "unix":
        if addr == HTTPSettings.addr and section_values.get("addr") is None:
            check.fail(path + ("addr",), "required with net: unix (the socket path)", at=path + ("net",))
    else:
        _check_listen_addr(check, path + ("addr",), addr)
    prefix = check.read(section_values, path, "prefix").strip()
    if prefix and not prefix.startswith("/"):
        prefix = "/" + prefix
    host = check.read(section_values, path, "host")
    if host is not None:
        check_http_url(check, path + ("host",), host, "an absolute URL such as https://registry.example.com")
    draintimeout = check.read(section_values, path, "draintimeout")
    given = dict(
        net=net, addr=addr, prefix=prefix.rstrip("/"), host=host.rstrip("/") if host else host,
        draintimeout=draintimeout, headers=headers_settings(check, section_values, path),
        tls=tls_settings(check, section_values, path), debug=_debug(check, section_values, path),
    )
    for name in ("http2", "h2c", "ui"):
        check.known(check.mapping(section_values.get(name), path + (name,)), path + (name,))
    check.read_unkept(HTTPSettings, section_values, path)
    return HTTPSettings(**check.read_keys(HTTPSettings, section_values, path, **given))


def _check_listen_addr(check, path, addr):
    try:
        split_host_port(addr)
    except ValueError as error:
        check.fail(path, str(error))


def _debug(check, section_values, path):
    if section_values.get("debug") is None:
        return None
    debug_path = path + ("debug",)
    debug_section = check.mapping(section_values.get("debug"), debug_path)
    check.known(debug_section, debug_path)
    debug_addr = check.read(debug_section, debug_path, "addr")
    if debug_addr is not None:
        _check_listen_addr(check, debug_path + ("addr",), debug_addr)
    prometheus_path = debug_path + ("prometheus",)
    prometheus = check.mapping(debug_section.get("prometheus"), prometheus_path)
    check.known(prometheus, prometheus_path)
    metrics_path = check.read(prometheus, prometheus_path, "path")
    if not metrics_path.startswith("/"):
        check.fail(prometheus_path + ("path",), "must start with /")
    debug = DebugSettings(
        addr=debug_addr,
        prometheus_enabled=check.read(prometheus, prometheus_path, "enabled"),
        prometheus_path=metrics_path,
    )
    if debug.prometheus_enabled and debug_addr is None:
        check.warn(prometheus_path + ("enabled",), "ignored without http.debug.addr (metrics are served there)")
    return debug


def headers_settings(check, section_values, path):
    """C{headers} of the section at C{path}: valid names, no line breaks, the last of a name wins."""
    headers_path = path + ("headers",)
    raw = check.mapping(section_values.get("headers"), headers_path)
    headers = {}
    seen = {}
    for name in raw:
        where = headers_path + (name,)
        if not _HEADER_NAME.fullmatch(name):
            check.fail(where, "invalid header name {!r}".format(name))
        values = check.strings(raw, headers_path, name)
        for value in values:
            if "\r" in value or "\n" in value:
                check.fail(where, "a header value must not contain a line break")
        if name.lower() in seen:
            check.warn(where, "same header as {}; the last one wins".format(seen[name.lower()]))
            del headers[seen[name.lower()]]
        seen[name.lower()] = name
        headers[name] = values
    return headers
