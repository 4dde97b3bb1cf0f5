"""Wording shared by configuration messages: values described, choices listed, near misses."""

from spectroreg.config.durations import shorten

MIB = 1024 * 1024


def choices_text(values):
    return ", ".join(values)


def describe(value, raw=None):
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean ({})".format(raw if raw is not None else str(value).lower())
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, (int, float)):
        return "a number ({})".format(raw if raw is not None else value)
    return shorten(str(raw if raw is not None else value))


def size_text(number):
    if number >= MIB and number % MIB == 0:
        return "{} ({} MiB)".format(number, number // MIB)
    return str(number)


def close_match(word, candidates):
    # difflib only on the (rare) unknown-key path: it costs import time.
    import difflib

    lowered = {candidate.lower(): candidate for candidate in candidates}
    found = difflib.get_close_matches(str(word).lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[found[0]] if found else None


# -- sections ----------------------------------------------------------------

