"""
Configuration keys spectroreg reads and checks but does not act on yet.

Each entry produces one warning when the key is present in the effective
configuration. A key is a dotted path; ``path=value`` matches only when the
key has that (scalar) value. Remove an entry when its feature lands.
"""

NOT_ACTED_ON = {
    "proxy": "pull-through cache (proxy) mode is not implemented yet",
    "validation": "manifest validation rules (urls allow/deny, indexes) are not applied yet",
    "middleware": "registry, repository and storage middleware is not implemented yet",
    "reporting": "bugsnag/newrelic reporting is not implemented",
    "compatibility": "schema1 manifests are not supported",
    "log.hooks": "log hooks (mail) are not implemented",
    "log.reportcaller": "caller reporting in log lines is not implemented",
    "http.debug.pprof": "Go's profiler has no counterpart here",
    "http.http2": "HTTP/2 settings are not applied",
    "http.h2c": "cleartext HTTP/2 (h2c) is not implemented",
    "storage.cache.blobdescriptorsize": "the blob descriptor cache size is not applied yet",
    "storage.tag": "tag lookup concurrency settings are not applied yet",
    "storage.s3.usedualstack": "S3 dual-stack endpoints are not implemented",
    "storage.s3.accelerate": "S3 transfer acceleration is not implemented",
    "storage.s3.loglevel": "the S3 client's own log level is not applied",
    "auth.token": "token authentication is not implemented yet",
    "auth.silly": "silly authentication is not implemented yet",
}
