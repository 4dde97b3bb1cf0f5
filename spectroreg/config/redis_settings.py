"""The ``redis`` section's settings, where importers have always found them."""

from spectroreg.config.sections.redis import DEFAULT_TIMEOUT, RedisSettings, redis_settings

__all__ = ["DEFAULT_TIMEOUT", "RedisSettings", "redis_settings"]
