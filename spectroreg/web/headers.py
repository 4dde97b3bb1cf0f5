"""
Request headers as text.

Twisted hands out a header asked for by a ``str`` name decoded as UTF-8,
and raises ``UnicodeDecodeError`` on any other byte: one byte from a client
was a 500. Headers are read here by their ``bytes`` name and decoded on our
terms: printable ASCII (and tabs) only, since every header we parse
(``Range``, ``Content-Range``, ``Content-Type``, ``Host``, ``X-Forwarded-*``,
``Forwarded``) is ASCII by its grammar. A caller decides what a malformed
value means: a 416 for ``Range``, a 400 for a manifest's ``Content-Type``,
or ignoring it (the host and scheme headers URLs are built from).
"""

import re


class MalformedHeader(ValueError):
    """A header holds bytes no header we parse may hold."""

    def __init__(self, name):
        super().__init__("malformed {} header".format(name))
        self.name = name


_TEXT = re.compile(rb"[\t\x20-\x7e]*")

# RFC 3986 reg-name / IPv4 (with the sub-delims) or an IP literal, and a port.
_HOST = re.compile(r"(?:[A-Za-z0-9._~%!$&'()*+,;=-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?", re.ASCII)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,31}", re.ASCII)


# The bytes Go's HTTP server accepts in a Host header (httpguts.ValidHostHeader).
_HOST_BYTES = re.compile(rb"[A-Za-z0-9!$%&'()*+,\-.:;=\[\]_~]*")


def is_valid_host_header(value):
    """Whether C{value} (bytes) is a Host header Go's server would take (else 400)."""
    return _HOST_BYTES.fullmatch(value) is not None


def _name(name):
    return name if isinstance(name, bytes) else name.encode("ascii")


def raw_header(request, name):
    """The last value of header C{name} (bytes), or None."""
    values = request.requestHeaders.getRawHeaders(_name(name))
    if not values:
        return None
    return values[-1]


def decode_header(value, name="header"):
    """
    C{value} (bytes) as str.

    @raise MalformedHeader: it holds a control character or a byte
        outside ASCII.
    """
    if _TEXT.fullmatch(value) is None:
        raise MalformedHeader(name if isinstance(name, str) else name.decode("ascii"))
    return value.decode("ascii")


def header_text(request, name):
    """
    Header C{name} as str, or None when absent.

    @raise MalformedHeader: see L{decode_header}.
    """
    value = raw_header(request, name)
    if value is None:
        return None
    return decode_header(value, name)


def header_text_or_none(request, name):
    """Header C{name} as str; None when absent or malformed (ignored)."""
    try:
        return header_text(request, name)
    except MalformedHeader:
        return None


def is_host(value):
    """Whether C{value} (str) is a host, optionally with a port, fit for a URL."""
    return isinstance(value, str) and len(value) <= 1024 and _HOST.fullmatch(value) is not None


def is_scheme(value):
    """Whether C{value} (str) is a URL scheme."""
    return isinstance(value, str) and _SCHEME.fullmatch(value) is not None
