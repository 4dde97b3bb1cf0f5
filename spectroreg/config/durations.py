"""
Go-style durations (``60s``, ``168h``, ``1h30m``, ``1.5s``, ``300ms``), as
Distribution's configuration writes them.

The grammar is Go's ``time.ParseDuration``: an optional sign, then one or more
decimal numbers each followed by a unit (``ns``, ``us``/``µs``, ``ms``, ``s``,
``m``, ``h``); a lone ``0`` needs no unit.
"""

import re

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,  # micro sign
    "\u03bcs": 1e-6,  # Greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}

_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)([a-z\u00b5\u03bc]+)")


def parse_duration(text):
    """
    Seconds (a float) for the Go duration C{text}.

    @raise ValueError: C{text} is not a Go duration; the message says what is
        wrong but not where the value came from (the caller knows that).
    """
    if not isinstance(text, str):
        raise ValueError("expected a duration such as 60s or 1h30m, got {!r}".format(text))
    original = text
    text = text.strip()
    sign = 1.0
    if text[:1] in ("+", "-"):
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    if not text:
        raise ValueError("empty duration; expected e.g. 60s or 1h30m")
    total = 0.0
    position = 0
    while position < len(text):
        match = _PART.match(text, position)
        if match is None or match.group(1) in ("", "."):
            raise ValueError(
                "invalid duration {!r}; expected e.g. 60s, 1h30m, 300ms".format(original)
            )
        number, unit = match.groups()
        if unit not in _UNITS:
            raise ValueError(
                "unknown unit {!r} in duration {!r}; use ns, us, ms, s, m or h".format(
                    unit, original
                )
            )
        total += float(number) * _UNITS[unit]
        position = match.end()
    return sign * total


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
