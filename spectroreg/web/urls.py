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

Used by the API (``Location``, ``Link``) and by notifications (the URL of
an event's target).
"""


from urllib.parse import quote, urlencode, urlsplit

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
