"""
Building ``Location`` and ``Link`` URLs the way Distribution does.

- ``http.host`` set: absolute URLs under that URL (its path is the root;
  ``http.prefix`` is not added, as in Distribution).
- else ``http.relativeurls``: paths only (including the prefix the request
  came in on; Distribution drops it there, which breaks prefixed setups).
- else absolute URLs from the request: scheme from ``X-Forwarded-Proto``,
  else ``Forwarded: proto=``, else the connection; host from
  ``X-Forwarded-Host``, else ``Forwarded: host=``, else ``Host``; plus
  ``X-Forwarded-Port`` when the host has no port.

Upload URLs carry ``_state`` when ``http.secret`` is configured: a token
signed with it, in Distribution's format (see L{upload_state}), so an
upload id alone is not enough to write to an upload and an upload can move
between spectroreg and Distribution instances sharing a root and a secret.
The token carries the upload's size, so the URL changes with each response.
"""

import base64
import binascii
import hashlib
import hmac
import json
from urllib.parse import quote, urlencode, urlsplit

from spectroreg.registry.uploads import format_rfc3339
from spectroreg.web.headers import header_text_or_none, is_host, is_scheme


def _header(request, name):
    # A value that is not ASCII text is ignored, like an absent one.
    return header_text_or_none(request, name)


def _forwarded(request):
    """proto and host from the first element of a ``Forwarded`` header."""
    value = _header(request, "forwarded")
    proto = host = None
    if value:
        first = value.split(",", 1)[0]
        for pair in first.split(";"):
            key, _, item = pair.strip().partition("=")
            item = item.strip().strip('"')
            if key.lower() == "proto" and is_scheme(item):
                proto = item
            elif key.lower() == "host" and is_host(item):
                host = item
    return proto, host


def _first(value, valid):
    """The first of a comma-separated list of values, as proxies append, if C{valid}."""
    if not value:
        return None
    first = value.split(",", 1)[0].strip()
    return first if valid(first) else None


def _is_port(value):
    return len(value) <= 5 and value.isdigit() and value.isascii()


def _has_port(host):
    if host.startswith("["):
        return "]:" in host
    return ":" in host


def base_path(request):
    """The path the request reached ``/v2`` on, e.g. ``/prefix/v2``."""
    segments = [s.decode("utf-8", "replace") if isinstance(s, bytes) else s for s in request.prepath]
    return "/" + "/".join(quote(s, safe="") for s in segments)


class URLBuilder:
    """URLs for one request."""

    def __init__(self, request, http_settings):
        self._request = request
        self._settings = http_settings
        self.root = self._root()

    def _root(self):
        settings = self._settings
        if settings is not None and settings.host:
            parts = urlsplit(settings.host)
            path = parts.path.rstrip("/")
            if settings.relativeurls:
                return path + "/v2"
            return "{}://{}{}/v2".format(parts.scheme or "https", parts.netloc, path)
        path = base_path(self._request)
        if settings is not None and settings.relativeurls:
            return path
        # Distribution's order: X-Forwarded-* first, then Forwarded.
        forwarded_proto, forwarded_host = _forwarded(self._request)
        proto = _first(_header(self._request, "x-forwarded-proto"), is_scheme) or forwarded_proto
        host = _first(_header(self._request, "x-forwarded-host"), is_host) or forwarded_host
        if not proto:
            proto = "https" if self._request.isSecure() else "http"
        if not host:
            host = _header(self._request, "host")
            if not is_host(host):
                host = None
        if not host:
            address = self._request.getHost()
            if getattr(address, "port", None) is None:
                host = "localhost"  # a unix socket: no address to name
            else:
                literal = "[{}]" if ":" in address.host else "{}"
                host = (literal + ":{}").format(address.host, address.port)
        port = _first(_header(self._request, "x-forwarded-port"), _is_port)
        if port and not _has_port(host):
            host = "{}:{}".format(host, port)
        return "{}://{}{}".format(proto, host, path)

    def url(self, *parts, query=None):
        url = self.root + "/" + "/".join(parts)
        if query:
            url += "?" + urlencode(query)
        return url

    def path(self, *parts, query=None):
        """Like L{url}, but only the path (for ``Link`` headers)."""
        url = self.url(*parts, query=query)
        split = urlsplit(url)
        return split.path + ("?" + split.query if split.query else "")


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
