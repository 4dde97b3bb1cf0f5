"""
A response's head as bytes, for the channel.

Twisted 22.4's request hands its channel the headers as a list of pairs,
and the channel copies them into a new C{Headers} (lower-casing,
checking and sanitising each name and value again) to spell each name in
its canonical capitalisation, on every response. Here the head is made in
one pass, to the same bytes: values with their line breaks turned into
spaces as Twisted does, names grouped as a C{Headers} groups them, each
name spelt as Twisted's C{Headers} spells it, which is worked out once per
name (and kept in a bounded map: names come from the registry and its
configuration, not from clients).
"""

from twisted.web.http_headers import Headers

from spectroreg.bounded import LRU

_SPELLINGS = LRU(512)


def _sanitized(value):
    return b" ".join(value.splitlines())


def _bytes(text, encoding):
    return text.encode(encoding) if isinstance(text, str) else text


def spelling(name):
    """
    How Twisted writes header C{name} (lower-case bytes, sanitised) in a
    response: its canonical capitalisation.
    """
    spelt = _SPELLINGS.peek(name)
    if spelt is None:
        try:
            spelt = next(iter(Headers({name: [b""]}).getAllRawHeaders()))[0]
        except ValueError:
            # A name Twisted 26 refuses (it never makes such a head itself).
            return name
        _SPELLINGS.put(name, spelt)
    return spelt


def _grouped(headers):
    # As a Headers groups them: by lower-case name, in order of first use.
    grouped = {}
    for name, value in headers:
        if name.__class__ is not bytes or value.__class__ is not bytes:
            name, value = _bytes(name, "iso-8859-1"), _bytes(value, "utf8")
        key = name.lower()
        values = grouped.get(key)
        if values is None:
            grouped[key] = [value]
        else:
            values.append(value)
    return grouped


def _header_lines(grouped):
    lines = []
    for key, values in grouped.items():
        name = spelling(key)
        for value in values:
            lines.append(name + b": " + value + b"\r\n")
    return lines


def response_head(version, code, reason, headers):
    """
    The bytes of a response head: the status line, C{headers} (pairs of
    name and value, bytes or str) and the blank line, as a list of bytes.
    """
    if not isinstance(headers, list):
        headers = list(headers)
    status = version + b" " + code + b" " + reason + b"\r\n"
    lines = _header_lines(_grouped(headers))
    fields = b"".join(lines)
    # Each line ends with the one line break it should hold: no name or
    # value held one.
    if fields.count(b"\n") == len(lines) and fields.count(b"\r") == len(lines):
        return [status, fields, b"\r\n"]
    # Rare: each name and value sanitised, then grouped again.
    sanitised = [(_sanitized(_bytes(n, "iso-8859-1")), _sanitized(_bytes(v, "utf8"))) for n, v in headers]
    return [status] + _header_lines(_grouped(sanitised)) + [b"\r\n"]
