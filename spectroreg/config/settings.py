"""
Typed, validated settings: what the rest of spectroreg reads.

``spectroreg.config.load`` turns Distribution's YAML (plus ``REGISTRY_*``
overrides) into these objects; nothing else in the daemon looks at raw
config dictionaries. Every value here is already checked and normalised:
durations are seconds (float), sizes are ints, optional sections are None
when absent.

Each section's classes live in its module under
L{spectroreg.config.sections}, where their fields declare the keys; they are
gathered here for the rest of the daemon.
"""

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Tuple

from spectroreg.config.sections.auth import AuthSettings, HtpasswdSettings
from spectroreg.config.sections.catalog import CatalogSettings
from spectroreg.config.sections.health import HealthSettings
from spectroreg.config.sections.http import DebugSettings, HTTPSettings
from spectroreg.config.sections.log import LogSettings
from spectroreg.config.sections.notifications import NotificationSettings
from spectroreg.config.sections.redis import RedisSettings
from spectroreg.config.sections.storage import (
    FilesystemSettings,
    GarbageCollectSettings,
    S3Settings,
    StorageSettings,
    UploadPurgingSettings,
)
from spectroreg.config.sections.tls import LETSENCRYPT_PRODUCTION, LetsEncryptSettings, TLSSettings

__all__ = [
    "AuthSettings", "CatalogSettings", "DebugSettings", "FilesystemSettings", "GarbageCollectSettings",
    "HTTPSettings", "HealthSettings", "HtpasswdSettings", "LETSENCRYPT_PRODUCTION", "LetsEncryptSettings",
    "LogSettings", "NotificationSettings", "RedisSettings", "S3Settings", "Settings", "StorageSettings",
    "TLSSettings", "UploadPurgingSettings",
]


@dataclass(frozen=True)
class Settings:
    version: str
    log: LogSettings
    storage: StorageSettings
    http: HTTPSettings
    auth: Optional[AuthSettings] = None
    catalog: CatalogSettings = field(default_factory=CatalogSettings)
    notifications: NotificationSettings = field(default_factory=NotificationSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    # Sections parsed and checked for shape but not acted on yet, kept as given.
    proxy: Mapping[str, Any] = field(default_factory=dict)
    validation: Mapping[str, Any] = field(default_factory=dict)
    middleware: Mapping[str, Any] = field(default_factory=dict)
    # Where the settings came from (file path or None), for messages.
    source: Optional[str] = None
    # Warnings produced while loading (unknown keys, keys read but not acted on).
    warnings: Tuple[str, ...] = ()
    # The file's bytes as they were read: worker processes load these, not
    # the file as it may be later (see spectroreg.prefork).
    source_data: Optional[bytes] = field(default=None, repr=False, compare=False)
