"""Listening addresses as Go writes them: ``:5000``, ``host:5000``, ``[::1]:5000``."""

from urllib.parse import urlsplit

from spectroreg.config.durations import shorten


def split_host_port(addr):
    """
    C{(host, port)} for a Go-style TCP address; host is ``""`` for all
    interfaces, without brackets for IPv6.

    @raise ValueError: not such an address (the message says why).
    """
    if not isinstance(addr, str) or not addr:
        raise ValueError("empty address; expected e.g. :5000 or 127.0.0.1:5000")
    if addr.startswith("["):
        end = addr.find("]")
        if end < 0 or addr[end + 1 : end + 2] != ":":
            raise ValueError(
                "invalid address {}; an IPv6 address is written [::1]:5000".format(shorten(addr))
            )
        host, port = addr[1:end], addr[end + 2 :]
        if not host:
            raise ValueError("invalid address {}: empty IPv6 host".format(shorten(addr)))
    else:
        host, sep, port = addr.rpartition(":")
        if not sep:
            raise ValueError("missing port in address {}; expected e.g. :5000".format(shorten(addr)))
        if ":" in host:
            raise ValueError(
                "invalid address {}; an IPv6 address is written [::1]:5000".format(shorten(addr))
            )
    if any(character.isspace() for character in host):
        raise ValueError("invalid host in address {}".format(shorten(addr)))
    # The length first: int() refuses strings of over 4300 digits.
    if not port.isdigit() or len(port.lstrip("0")) > 5 or int(port) > 65535:
        raise ValueError("invalid port {} in address {}; expected 0-65535".format(shorten(port), shorten(addr)))
    return host, int(port)


def join_host_port(host, port):
    """The Go-style address of C{host} and C{port}: the inverse of L{split_host_port}."""
    return "[{}]:{}".format(host, port) if ":" in host else "{}:{}".format(host, port)


def check_http_url(check, path, value, expected="an http(s) URL"):
    """Fail C{check} at C{path} unless C{value} is an absolute http(s) URL with a host."""
    try:
        parts = urlsplit(value)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok:
        check.fail(path, "expected {}, got {!r}".format(expected, value))
