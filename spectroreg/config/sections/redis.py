"""
The ``redis`` section (Distribution's keys): where the shared blob
descriptor cache lives (``storage.cache.blobdescriptor: redis``).
"""

from dataclasses import dataclass
from typing import Optional

from spectroreg.config.declare import BOOL, DURATION, INT, STR, key

# Distribution gives no timeouts (Go's waits forever); a cache must not
# make a request wait longer than storage would.
DEFAULT_TIMEOUT = 1.0


@dataclass(frozen=True)
class RedisSettings:
    addr: Optional[str] = key(STR)  # host:port
    username: Optional[str] = key(STR)
    password: Optional[str] = key(STR)
    db: int = key(INT, 0, minimum=0)
    dialtimeout: float = key(DURATION, DEFAULT_TIMEOUT, minimum=0.001)
    readtimeout: float = key(DURATION, DEFAULT_TIMEOUT, minimum=0.001)
    writetimeout: float = key(DURATION, DEFAULT_TIMEOUT, minimum=0.001)
    maxidle: int = key(INT, 16, at="pool.maxidle", minimum=0)
    maxactive: int = key(INT, 64, at="pool.maxactive", minimum=0)
    idletimeout: float = key(DURATION, 300.0, at="pool.idletimeout")
    tls: bool = key(BOOL, False, at="tls.enabled")


def redis_settings(check, tree, blobdescriptor):
    """
    The checked ``redis`` section (L{RedisSettings}); C{blobdescriptor} is
    ``storage.cache.blobdescriptor``, which needs an address when ``redis``.
    """
    path = ("redis",)
    section_values = check.mapping(tree.get("redis"), path)
    check.known(section_values, path)
    for name in ("pool", "tls"):
        check.known(check.mapping(section_values.get(name), path + (name,)), path + (name,))
    if blobdescriptor == "redis" and not section_values.get("addr"):
        check.fail(path + ("addr",), "required when storage.cache.blobdescriptor is redis (host:port)")
    return RedisSettings(**check.read_keys(RedisSettings, section_values, path))
