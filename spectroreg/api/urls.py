"""
Upload URLs carry ``_state`` when ``http.secret`` is configured: a token
signed with it, in Distribution's format (see L{upload_state}), so an
upload id alone is not enough to write to an upload and an upload can move
between spectroreg and Distribution instances sharing a root and a secret.
The token carries the upload's size, so the URL changes with each response.

The URLs themselves are built by L{spectroreg.web.urls.URLBuilder}.
"""

import base64
import binascii
import hashlib
import hmac
import json

from spectroreg.registry.uploads import format_rfc3339


def upload_state(secret, name, upload_id, offset=0, started_at=None):
    """
    The ``_state`` token of an upload URL, or None without a secret.

    Distribution's format, so an upload can move between spectroreg and
    Distribution sharing a root and ``http.secret``: URL-safe base64 (with
    padding) of the HMAC-SHA256 of a JSON message followed by the message,
    ``{"Name","UUID","Offset","StartedAt"}`` as Go marshals it. Distribution
    refuses (and cancels) an upload whose size is not the token's
    ``Offset``, so the token changes with every response and C{offset} must
    be the upload's size. C{started_at}: seconds since the epoch, or None.
    """
    if not secret:
        return None
    message = json.dumps({
        "Name": name,
        "UUID": upload_id,
        "Offset": int(offset),
        "StartedAt": format_rfc3339(started_at) if started_at is not None else _GO_ZERO_TIME,
    }, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    mac = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac + message).decode("ascii")


# Go's zero time.Time, as json.Marshal writes it.
_GO_ZERO_TIME = "0001-01-01T00:00:00Z"


def _legacy_upload_state(secret, name, upload_id):
    """The token of earlier spectroreg releases (still accepted)."""
    mac = hmac.new(secret.encode("utf-8"), "{}\0{}".format(name, upload_id).encode("utf-8"), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()[:18])


def read_upload_state(secret, state):
    """
    The message of a Distribution-format token, a dict, if its HMAC under
    C{secret} is right; else None.
    """
    if not state or len(state) > _MAX_STATE:
        return None
    raw = state.encode("utf-8", "replace")
    try:
        decoded = base64.urlsafe_b64decode(raw)
    except (binascii.Error, ValueError):
        return None
    # Python skips characters outside the alphabet; Go refuses them.
    if base64.urlsafe_b64encode(decoded) != raw:
        return None
    if len(decoded) <= hashlib.sha256().digest_size:
        return None
    mac, message = decoded[:32], decoded[32:]
    expected = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        return None
    try:
        fields = json.loads(message.decode("utf-8"))
    except ValueError:
        return None
    return fields if isinstance(fields, dict) else None


# Far above any real token (a repository name is at most 255 characters).
_MAX_STATE = 4096


def check_upload_state(secret, name, upload_id, state):
    """
    Whether C{state} is a token for this upload: Distribution's format (as
    issued by spectroreg or Distribution) naming this repository and upload,
    or the format of earlier spectroreg releases. Always true without a
    secret. The token's ``Offset`` is not compared with the upload's size:
    the upload's stored size is what counts, and a client resuming from a
    stale URL gets the usual ``Range`` answers.
    """
    if not secret:
        return True
    if state is None:
        return False
    fields = read_upload_state(secret, state)
    if fields is not None:
        return fields.get("Name") == name and fields.get("UUID") == upload_id
    # As bytes: compare_digest refuses str holding anything but ASCII, and
    # the token comes from the query string as the client sent it.
    return hmac.compare_digest(_legacy_upload_state(secret, name, upload_id), state.encode("utf-8", "replace"))
