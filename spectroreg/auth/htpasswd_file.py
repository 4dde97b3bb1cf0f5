"""
The htpasswd file format, as pure functions (no I/O).

Only bcrypt hashes (``$2a$``, ``$2b$``, ``$2y$``) are accepted, like
Distribution. Lines with any other hash (Apache MD5 ``$apr1$``, ``{SHA}``,
crypt, plain text) are refused with a warning that names the file line: such
a user cannot log in, and the administrator is told why.
"""

import re
from dataclasses import dataclass
from typing import Dict, Tuple

# $2?$ + two-digit cost + 22 characters of salt + 31 of hash, bcrypt's base64.
_BCRYPT = re.compile(rb"\$2[aby]\$(?P<cost>[0-9]{2})\$[./A-Za-z0-9]{53}")

_KNOWN_FORMATS = (
    (b"$apr1$", "Apache MD5 ($apr1$)"),
    (b"{SHA}", "SHA-1 ({SHA})"),
    (b"$1$", "MD5-crypt ($1$)"),
    (b"$5$", "SHA-256-crypt ($5$)"),
    (b"$6$", "SHA-512-crypt ($6$)"),
    (b"$2x$", "bcrypt $2x$ (buggy variant)"),
    (b"$argon2", "argon2"),
)

# bcrypt only looks at the first 72 bytes of a password (3.2 truncates
# silently, 5.0 raises). We refuse longer passwords outright on every version.
MAX_PASSWORD_BYTES = 72


@dataclass(frozen=True)
class HtpasswdEntries:
    """The users of one htpasswd file and what was wrong with it."""

    users: Dict[str, bytes]  # user name -> bcrypt hash (bytes)
    warnings: Tuple[str, ...]


def describe_format(hashed):
    """A human name for the hash format of C{hashed} (bytes)."""
    for prefix, name in _KNOWN_FORMATS:
        if hashed.startswith(prefix):
            return name
    if hashed.startswith(b"$2"):
        return "malformed bcrypt"
    if hashed.startswith(b"$"):
        return "unknown ({}...)".format(hashed[:4].decode("ascii", "replace"))
    if len(hashed) == 13:
        return "DES-crypt or plain text"
    return "plain text or unknown"


def bcrypt_cost(hashed):
    """The cost factor of a valid bcrypt hash, or None."""
    match = _BCRYPT.fullmatch(hashed)
    return int(match.group("cost")) if match else None


def parse_htpasswd(data, filename="htpasswd"):
    """
    Parse the contents of an htpasswd file.

    @param data: the file's bytes.
    @param filename: used in warnings (``FILE:LINE``).
    @return: L{HtpasswdEntries}. Blank lines and ``#`` comments are skipped;
        a later line for the same user replaces the earlier one (as in
        Distribution), with a warning.
    """
    users = {}
    seen_at = {}
    warnings = []
    for number, raw in enumerate(data.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(b"#"):
            continue
        where = "{}:{}".format(filename, number)
        user, sep, hashed = line.partition(b":")
        user_text = user.decode("utf-8", "replace").strip()
        if not sep or not user_text:
            warnings.append("{}: not a user:hash line; ignored".format(where))
            continue
        hashed = hashed.strip()
        if _BCRYPT.fullmatch(hashed) is None:
            warnings.append(
                "{}: user {!r} has a {} password hash; only bcrypt ($2a$, $2b$, $2y$) "
                "is accepted, so this user cannot log in (re-create it with "
                "'htpasswd -B')".format(where, user_text, describe_format(hashed))
            )
            # A refused line also cancels an earlier valid line for the same
            # user: the administrator's latest intent was to change it.
            users.pop(user_text, None)
            continue
        if user_text in seen_at:
            warnings.append(
                "{}: user {!r} already defined at line {}; the later line wins".format(
                    where, user_text, seen_at[user_text]
                )
            )
        seen_at[user_text] = number
        users[user_text] = hashed
    return HtpasswdEntries(users=users, warnings=tuple(warnings))
