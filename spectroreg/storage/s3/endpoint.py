"""
Where requests for a bucket go: scheme, host, port and addressing style.

Pure logic, table-tested: ``endpoint_from_settings`` turns ``storage.s3``
(``regionendpoint``, or the ``host``/``port``/``secure`` of S3-compatible
servers, or AWS from ``region``) into an ``Endpoint`` that builds URLs.
"""

import re
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple
from urllib.parse import quote, urlsplit

# Virtual-hosted addressing needs a bucket name that is a DNS label (and,
# over TLS, has no dot: the certificate is for *.s3.<region>.amazonaws.com).
_DNS_BUCKET = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")


def quote_key(key):
    """Percent-encode an object key for a URL path, as SigV4 wants it."""
    return quote(key, safe="/~")


def encode_query(pairs):
    """
    A canonical query string from C{(name, value)} pairs, C{value} None for
    a bare sub-resource (C{?uploads}).
    """
    parts = []
    for name, value in pairs:
        name = quote(name, safe="-_.~")
        if value is None:
            parts.append(name)
        else:
            parts.append("{}={}".format(name, quote(str(value), safe="-_.~")))
    return "&".join(parts)


@dataclass(frozen=True)
class Endpoint:
    scheme: str  # "http" | "https"
    host: str
    port: Optional[int]
    path_style: bool
    base_path: str = ""  # a path prefix of regionendpoint, without trailing "/"

    def netloc(self, bucket=None):
        host = self.host
        if bucket is not None and not self.path_style:
            host = "{}.{}".format(bucket, host)
        if ":" in host and not host.startswith("["):
            host = "[{}]".format(host)
        default = 443 if self.scheme == "https" else 80
        if self.port is None or self.port == default:
            return host
        return "{}:{}".format(host, self.port)

    def url(self, bucket, key=None, query: Sequence[Tuple[str, Optional[str]]] = ()):
        """The URL of C{key} in C{bucket} (the bucket itself when C{key} is None)."""
        if self.path_style:
            path = "{}/{}".format(self.base_path, bucket)
            if key is not None:
                path += "/" + quote_key(key)
        else:
            path = self.base_path + "/" + (quote_key(key) if key is not None else "")
        url = "{}://{}{}".format(self.scheme, self.netloc(bucket), path)
        if query:
            url += "?" + encode_query(query)
        return url


def aws_host(region):
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return "s3.{}.{}".format(region, suffix)


def endpoint_from_settings(settings):
    """
    The L{Endpoint} for an L{S3Settings}.

    ``regionendpoint`` wins, then ``host`` (with ``port`` and ``secure``),
    then AWS for ``region``. An explicit endpoint means path-style
    addressing, as Distribution 2.8 does; AWS uses virtual-hosted
    addressing unless ``forcepathstyle`` or the bucket name rules it out.
    """
    secure = settings.secure
    if settings.regionendpoint:
        raw = settings.regionendpoint.strip()
        if "://" not in raw:
            raw = ("https://" if secure else "http://") + raw
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("storage.s3.regionendpoint: not an http(s) URL: {!r}".format(
                settings.regionendpoint))
        return Endpoint(parts.scheme, parts.hostname, parts.port, True,
                        parts.path.rstrip("/"))
    scheme = "https" if secure else "http"
    if settings.host:
        host = settings.host.strip()
        port = settings.port
        if "://" in host:
            parts = urlsplit(host)
            scheme = parts.scheme or scheme
            host = parts.hostname
            port = port or parts.port
        elif port is None and host.count(":") == 1:
            host, _, given = host.partition(":")
            port = int(given)
        return Endpoint(scheme, host, port, True)
    path_style = settings.forcepathstyle or not _DNS_BUCKET.fullmatch(settings.bucket) or (
        scheme == "https" and "." in settings.bucket)
    return Endpoint(scheme, aws_host(settings.region), None, path_style)
