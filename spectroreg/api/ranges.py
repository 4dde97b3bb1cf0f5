"""
HTTP byte ranges: ``Range`` on blob GETs and ``Content-Range`` on PATCH.

Numbers are read as Go reads them (L{spectroreg.web.numbers}): a value
that is not a 64-bit count makes the header malformed, never a 500.
"""

import re

from spectroreg.web.numbers import parse_decimal

# ASCII only: Python's \d and \s also match other scripts' digits and spaces.
_RANGE = re.compile(r"[ \t]*([0-9]*)[ \t]*-[ \t]*([0-9]*)[ \t]*", re.ASCII)
_CONTENT_RANGE = re.compile(
    r"[ \t]*(?:bytes[ =])?[ \t]*([0-9]+)[ \t]*-[ \t]*([0-9]+)[ \t]*(?:/[ \t]*(?:[0-9]+|\*))?[ \t]*", re.ASCII)


class RangeNotSatisfiable(Exception):
    """The Range cannot be served (416)."""


def parse_range(header, size):
    """
    Parse a ``Range`` header against a blob of C{size} bytes.

    @param header: the header value (str) or None.
    @return: None for the whole blob, else (offset, length).
    @raise RangeNotSatisfiable: malformed or outside the blob.
    """
    if header is None:
        return None
    header = header.strip(" \t")
    unit, _, spec = header.partition("=")
    if unit.strip(" \t").lower() != "bytes" or not spec:
        raise RangeNotSatisfiable(header)
    if "," in spec:
        # Multipart ranges are not worth serving for blobs; the whole blob is.
        return None
    match = _RANGE.fullmatch(spec)
    if match is None:
        raise RangeNotSatisfiable(header)
    first, last = match.groups()
    if first == "" and last == "":
        raise RangeNotSatisfiable(header)
    if first == "":
        suffix = parse_decimal(last)
        if suffix is None or suffix == 0:
            raise RangeNotSatisfiable(header)
        suffix = min(suffix, size)
        return size - suffix, suffix
    start = parse_decimal(first)
    end = None if last == "" else parse_decimal(last)
    if start is None or (last != "" and end is None):
        raise RangeNotSatisfiable(header)
    if start >= size or (end is not None and end < start):
        raise RangeNotSatisfiable(header)
    end = size - 1 if end is None else min(end, size - 1)
    return start, end - start + 1


def parse_content_range(header):
    """
    Parse a PATCH ``Content-Range`` (``<start>-<end>``, inclusive; also
    accepts ``bytes <start>-<end>/<total>``).

    @return: (start, end), or None when the header is absent.
    @raise ValueError: malformed.
    """
    if header is None:
        return None
    match = _CONTENT_RANGE.fullmatch(header)
    if match is None:
        raise ValueError(header)
    start, end = parse_decimal(match.group(1)), parse_decimal(match.group(2))
    if start is None or end is None or end < start:
        raise ValueError(header)
    return start, end
