"""
The operations sections of the configuration, ``health`` and
``notifications``, where importers have always found them (each lives in
its module under L{spectroreg.config.sections}).
"""

from spectroreg.config.sections.health import (
    DEFAULT_CHECK_INTERVAL,
    DEFAULT_CHECK_TIMEOUT,
    FileCheckSettings,
    HealthSettings,
    HTTPCheckSettings,
    StorageCheckSettings,
    TCPCheckSettings,
    health_settings,
)
from spectroreg.config.sections.notifications import (
    DEFAULT_ENDPOINT_BACKOFF,
    DEFAULT_ENDPOINT_THRESHOLD,
    DEFAULT_ENDPOINT_TIMEOUT,
    DEFAULT_QUEUE_SIZE,
    EVENT_ACTIONS,
    EndpointSettings,
    NotificationSettings,
    notification_settings,
)

__all__ = [
    "DEFAULT_CHECK_INTERVAL", "DEFAULT_CHECK_TIMEOUT", "DEFAULT_ENDPOINT_BACKOFF", "DEFAULT_ENDPOINT_THRESHOLD",
    "DEFAULT_ENDPOINT_TIMEOUT", "DEFAULT_QUEUE_SIZE", "EVENT_ACTIONS", "EndpointSettings", "FileCheckSettings",
    "HTTPCheckSettings", "HealthSettings", "NotificationSettings", "StorageCheckSettings", "TCPCheckSettings",
    "health_settings", "notification_settings",
]
