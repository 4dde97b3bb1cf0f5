"""
The ``redis`` section (Distribution's keys): where the shared blob
descriptor cache lives (``storage.cache.blobdescriptor: redis``).
"""

from dataclasses import dataclass
from typing import Optional


# Distribution gives no timeouts (Go's waits forever); a cache must not
# make a request wait longer than storage would.
DEFAULT_TIMEOUT = 1.0


@dataclass(frozen=True)
class RedisSettings:
    addr: Optional[str] = None  # host:port
    username: Optional[str] = None
    password: Optional[str] = None
    db: int = 0
    dialtimeout: float = DEFAULT_TIMEOUT
    readtimeout: float = DEFAULT_TIMEOUT
    writetimeout: float = DEFAULT_TIMEOUT
    maxidle: int = 16
    maxactive: int = 64
    idletimeout: float = 300.0
    tls: bool = False


def redis_settings(check, tree, blobdescriptor):
    """
    Check the ``redis`` section (keys: L{spectroreg.config.schema.REDIS})
    into L{RedisSettings}; C{blobdescriptor} is
    ``storage.cache.blobdescriptor``, which needs an address when ``redis``.
    """
    path = ("redis",)
    section = check.mapping(tree.get("redis"), path)
    if blobdescriptor == "redis" and not section.get("addr"):
        check.fail(path + ("addr",), "required when storage.cache.blobdescriptor is redis (host:port)")
    defaults = RedisSettings()
    pool = check.mapping(section.get("pool"), path + ("pool",))
    tls = check.mapping(section.get("tls"), path + ("tls",))
    return RedisSettings(
        addr=check.string(section, path, "addr"),
        username=check.string(section, path, "username"),
        password=check.string(section, path, "password"),
        db=check.integer(section, path, "db", 0, minimum=0),
        dialtimeout=check.duration(section, path, "dialtimeout", defaults.dialtimeout, minimum=0.001),
        readtimeout=check.duration(section, path, "readtimeout", defaults.readtimeout, minimum=0.001),
        writetimeout=check.duration(section, path, "writetimeout", defaults.writetimeout, minimum=0.001),
        maxidle=check.integer(pool, path + ("pool",), "maxidle", defaults.maxidle, minimum=0),
        maxactive=check.integer(pool, path + ("pool",), "maxactive", defaults.maxactive, minimum=0),
        idletimeout=check.duration(pool, path + ("pool",), "idletimeout", defaults.idletimeout),
        tls=check.boolean(tls, path + ("tls",), "enabled", False),
    )
