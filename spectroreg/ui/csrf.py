"""
Protection of the page's delete form against cross-site requests.

A browser sends Basic credentials with any request to the registry, also
one a foreign page makes it send, so credentials alone do not show that
the user meant to delete. A delete must carry a token that only a page of
ours can have shown: an HMAC, under a key derived from ``http.secret`` (or
a random key of this process), of the user name and the time it was
issued; it is valid for L{TOKEN_LIFETIME} seconds and only for that user.
A foreign page cannot read our pages (same-origin policy), so it cannot
know the token. In addition a request whose ``Origin`` is another origin,
or whose ``Sec-Fetch-Site`` says ``cross-site``/``same-site``, is refused
before the token is even looked at.
"""

import hashlib
import hmac
import os

TOKEN_LIFETIME = 12 * 3600
_PURPOSE = b"spectroreg-ui-delete"


def token_key(secret):
    """The HMAC key: from C{secret} (``http.secret``) or random for this process."""
    if secret:
        return hashlib.sha256(b"spectroreg-ui\0" + secret.encode("utf-8")).digest()
    return os.urandom(32)


def _mac(key, user, issued):
    message = b"\0".join([_PURPOSE, (user or "").encode("utf-8"), str(issued).encode("ascii")])
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def issue_token(key, user, now):
    """A token for C{user} (str or None) at time C{now} (seconds)."""
    issued = int(now)
    return "{}.{}".format(issued, _mac(key, user, issued))


def check_token(key, user, token, now):
    """Whether C{token} was issued by L{issue_token} for C{user} and is still valid."""
    if not token or not isinstance(token, str) or len(token) > 200:
        return False
    issued, sep, mac = token.partition(".")
    if not sep or not issued.isdigit():
        return False
    issued = int(issued)
    if not (now - TOKEN_LIFETIME <= issued <= now + 60):
        return False
    return hmac.compare_digest(mac, _mac(key, user, issued))


def cross_site(origin, fetch_site, host, secure):
    """
    Whether the request's own headers say it comes from another site.

    @param origin: the ``Origin`` header (str) or None.
    @param fetch_site: the ``Sec-Fetch-Site`` header (str) or None.
    @param host: the ``Host`` header the request was sent to (str).
    @param secure: whether it came over TLS.
    """
    if fetch_site is not None and fetch_site.strip().lower() not in ("same-origin", "none"):
        return True
    if origin is None:
        return False
    expected = "{}://{}".format("https" if secure else "http", (host or "").lower())
    return origin.strip().lower() != expected


__all__ = ["TOKEN_LIFETIME", "token_key", "issue_token", "check_token", "cross_site"]
