"""
HTTP byte ranges: ``Range`` on blob GETs and ``Content-Range`` on PATCH.
"""

import re

_RANGE = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")
_CONTENT_RANGE = re.compile(r"^\s*(?:bytes[ =])?\s*(\d+)\s*-\s*(\d+)\s*(?:/\s*(?:\d+|\*))?\s*$")


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
    header = header.strip()
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or not spec:
        raise RangeNotSatisfiable(header)
    if "," in spec:
        # Multipart ranges are not worth serving for blobs; the whole blob is.
        return None
    match = _RANGE.match(spec)
    if match is None:
        raise RangeNotSatisfiable(header)
    first, last = match.groups()
    if first == "" and last == "":
        raise RangeNotSatisfiable(header)
    if first == "":
        suffix = int(last)
        if suffix == 0:
            raise RangeNotSatisfiable(header)
        suffix = min(suffix, size)
        return size - suffix, suffix
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if start >= size or (last != "" and int(last) < start):
        raise RangeNotSatisfiable(header)
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
    match = _CONTENT_RANGE.match(header)
    if match is None:
        raise ValueError(header)
    start, end = int(match.group(1)), int(match.group(2))
    if end < start:
        raise ValueError(header)
    return start, end
