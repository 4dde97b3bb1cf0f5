"""
Go-style durations (``60s``, ``168h``, ``1h30m``, ``1.5s``, ``300ms``), as
Distribution's configuration writes them.

The grammar is Go's ``time.ParseDuration``: an optional sign, then one or more
decimal numbers each followed by a unit (``ns``, ``us``/``µs``, ``ms``, ``s``,
``m``, ``h``); a lone ``0`` needs no unit.
"""

import re

# Nanoseconds per unit, as Go counts them.
_UNITS = {
    "ns": 1,
    "us": 1000,
    "\u00b5s": 1000,  # micro sign
    "\u03bcs": 1000,  # Greek mu
    "ms": 1000 ** 2,
    "s": 1000 ** 3,
    "m": 60 * 1000 ** 3,
    "h": 3600 * 1000 ** 3,
}

# Go's time.Duration is an int64 of nanoseconds: about 292 years.
MAX_NANOSECONDS = 2 ** 63 - 1
MAX_SECONDS = MAX_NANOSECONDS / 1e9
MAX_TEXT = "2562047h47m16.854775807s"

_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?([a-z\u00b5\u03bc]+)")


def shorten(text, limit=40):
    """C{repr(text)}, cut to C{limit} characters with its length when longer (for messages)."""
    if len(text) <= limit:
        return repr(text)
    return "{!r}... ({} characters)".format(text[:limit], len(text))


def parse_duration(text):
    """
    Seconds (a float) for the Go duration C{text}.

    Counted in whole nanoseconds as Go counts them, so a value Go refuses for
    overflowing its int64 of nanoseconds is refused here too, however many
    digits it has.

    @raise ValueError: C{text} is not a Go duration; the message says what is
        wrong but not where the value came from (the caller knows that).
    """
    if not isinstance(text, str):
        raise ValueError("expected a duration such as 60s or 1h30m, got {}".format(shorten(str(text))))
    original = text
    text = text.strip()
    sign = 1
    if text[:1] in ("+", "-"):
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if text == "0":
        return 0.0
    if not text:
        raise ValueError("empty duration; expected e.g. 60s or 1h30m")
    total = 0
    position = 0
    while position < len(text):
        match = _PART.match(text, position)
        if match is None or match.group(1) + (match.group(2) or "") == "":
            raise ValueError(
                "invalid duration {}; expected e.g. 60s, 1h30m, 300ms".format(shorten(original))
            )
        whole, fraction, unit = match.groups()
        if unit not in _UNITS:
            raise ValueError(
                "unknown unit {} in duration {}; use ns, us, ms, s, m or h".format(
                    shorten(unit), shorten(original)
                )
            )
        scale = _UNITS[unit]
        whole = whole.lstrip("0")
        # Checked before int(): Python refuses to convert over 4300 digits.
        if len(whole) > len(str(MAX_NANOSECONDS)):
            total = MAX_NANOSECONDS + 1
            break
        total += int(whole or "0") * scale
        # Digits past the nanosecond change nothing (Go drops them too).
        fraction = (fraction or "")[:len(str(scale))]
        if fraction:
            total += int(fraction) * scale // 10 ** len(fraction)
        if total > MAX_NANOSECONDS:
            break
        position = match.end()
    if total > MAX_NANOSECONDS:
        raise ValueError(
            "duration {} is out of range (at most {})".format(shorten(original), MAX_TEXT)
        )
    return sign * total / 1e9


def format_duration(seconds):
    """A Go-style spelling of C{seconds} (for messages and documentation)."""
    if seconds == 0:
        return "0s"
    parts = []
    rest = float(seconds)
    sign = "-" if rest < 0 else ""
    rest = abs(rest)
    hours, rest = divmod(rest, 3600.0)
    minutes, rest = divmod(rest, 60.0)
    if hours:
        parts.append("{}h".format(int(hours)))
    if minutes:
        parts.append("{}m".format(int(minutes)))
    if rest:
        parts.append("{:g}s".format(rest))
    return sign + "".join(parts)
