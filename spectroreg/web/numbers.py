"""
Decimal numbers from requests (``Range``, ``Content-Range``, ``n``), read
the way Go's ``strconv.ParseInt(s, 10, 64)`` reads them for Distribution:
ASCII digits only, at most a signed 64-bit value.

Python's ``int()`` is far more lenient (``" 1_0"``, ``"+5"``, Arabic-Indic
digits) and raises on strings of more than 4300 digits; neither belongs
on client input.
"""

INT64_MAX = 2 ** 63 - 1

_DIGITS = frozenset("0123456789")


def parse_decimal(text):
    """
    The value of C{text} (str) when it is one or more ASCII digits and at
    most L{INT64_MAX}; else None.
    """
    if not isinstance(text, str) or not text or not _DIGITS.issuperset(text):
        return None
    stripped = text.lstrip("0") or "0"
    if len(stripped) > len(str(INT64_MAX)):
        return None
    value = int(stripped)
    return value if value <= INT64_MAX else None
