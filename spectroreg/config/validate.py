"""
Check a configuration tree (YAML plus overrides) and build the typed
``settings`` objects from it, one section module at a time
(L{spectroreg.config.sections}).

Every problem is a ConfigError whose one line starts with where the value came
from (``file:line`` or the variable) and the key path.
"""

from spectroreg.config import settings as s
from spectroreg.config.checker import Checker
from spectroreg.config.errors import ConfigError
from spectroreg.config.schema import SCHEMA
from spectroreg.config.sections.auth import auth_settings
from spectroreg.config.sections.catalog import catalog_settings
from spectroreg.config.sections.health import health_settings
from spectroreg.config.sections.http import http_settings
from spectroreg.config.sections.log import log_settings
from spectroreg.config.sections.notifications import notification_settings
from spectroreg.config.sections.redis import redis_settings
from spectroreg.config.sections.storage import storage_settings
from spectroreg.config.unimplemented import NOT_ACTED_ON

_MISSING = object()


def build_settings(tree, provenance, warnings, source):
    """Validate C{tree} (a dict) and return L{settings.Settings}."""
    check = Checker(provenance, warnings)
    if not isinstance(tree, dict):
        raise ConfigError(
            "{}: the configuration must be a mapping of sections (version, storage, http, ...)".format(
                provenance.where(())
            )
        )
    check.known(tree, (), SCHEMA)
    version = _version(check, tree)
    log = log_settings(check, tree)
    storage = storage_settings(check, tree)
    http = http_settings(check, tree)
    _check_workers(check, http, storage)
    auth = auth_settings(check, tree)
    catalog = catalog_settings(check, tree)
    kept = {
        "health": health_settings(check, tree),
        "notifications": notification_settings(check, tree),
        "redis": redis_settings(check, tree, storage.blobdescriptor_cache),
    }
    for name in ("proxy", "validation", "middleware"):
        kept[name] = dict(check.mapping(tree.get(name), (name,)))
    for name in ("reporting", "compatibility"):
        check.mapping(tree.get(name), (name,))
    _not_acted_on(check, tree)
    return s.Settings(
        version=version,
        log=log,
        storage=storage,
        http=http,
        auth=auth,
        catalog=catalog,
        source=source,
        warnings=tuple(warnings),
        **kept,
    )


def _check_workers(check, http, storage):
    """What cannot be shared by several worker processes (C{http.workers} > 1)."""
    if http.workers <= 1:
        return
    path = ("http", "workers")
    if storage.driver == "inmemory":
        check.fail(path, "{}: inmemory storage lives in one process, so one worker can serve it; "
                         "use filesystem or s3 storage, or workers: 1".format(http.workers))
    if http.tls is not None and http.tls.letsencrypt is not None:
        check.fail(path, "{}: not with http.tls.letsencrypt (certificates are obtained and renewed "
                         "in one process); use certificate and key files, or workers: 1".format(http.workers))


def _version(check, tree):
    if tree.get("version") is None:
        check.fail(("version",), "required; write version: 0.1")
    value = check.string(tree, (), "version", empty_ok=True)
    # `version: 0.1` is the float 0.1 in YAML; its literal text is kept.
    if value.strip() != "0.1":
        check.fail(("version",), "unsupported version {!r} (expected 0.1)".format(value))
    return "0.1"


def _not_acted_on(check, tree):
    for entry, reason in NOT_ACTED_ON.items():
        key, _, wanted = entry.partition("=")
        path = tuple(key.split("."))
        node = tree
        for part in path:
            node = node.get(part, _MISSING) if isinstance(node, dict) else _MISSING
            if node is _MISSING:
                break
        if node is _MISSING:
            continue
        if wanted and (isinstance(node, (dict, list)) or str(node).lower() != wanted.lower()):
            continue
        check.warn(path, "read but not acted on yet: " + reason)
