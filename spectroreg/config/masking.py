"""
Secrets hidden from the printed effective configuration.

Masked: any key named ``secret``, ``secretkey``, ``sessiontoken`` or whose name
contains ``password`` or ``passwd`` (``http.secret``, ``storage.s3.secretkey``,
``redis.password``, ``proxy.password``, ...); every key ending in ``key`` or
``secret`` under ``auth.token``; values of ``Authorization`` headers
(notification endpoints); the password part of URLs with credentials. The S3
``accesskey`` is an identifier, not a secret: only its last four characters are
shown, as the AWS tools do. Empty values stay visible so "not set" shows.
"""

import re

MASK = "********"
_SECRET_NAMES = frozenset(["secret", "secretkey", "sessiontoken", "token", "apikey", "api-key"])
_URL_CREDENTIALS = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://[^/@:]*):[^/@]*@")


def _is_secret(path, name):
    lowered = name.lower()
    if lowered in _SECRET_NAMES or "password" in lowered or "passwd" in lowered:
        return True
    if lowered.endswith("secret") or lowered.endswith("secretkey"):
        return True
    if path[:2] == ("auth", "token") and lowered.endswith("key"):
        return True
    return False


def mask(value, path=()):
    """A copy of configuration tree C{value} with secrets replaced by L{MASK}."""
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            name = str(key)
            child = path + (name,)
            if item in (None, "") or isinstance(item, dict):
                result[key] = mask(item, child)
            elif name.lower() == "authorization":
                result[key] = [MASK] * len(item) if isinstance(item, list) else MASK
            elif _is_secret(path, name) and not isinstance(item, list):
                result[key] = MASK
            elif name.lower() == "accesskey" and isinstance(item, str):
                result[key] = MASK + item[-4:] if len(item) > 8 else MASK
            else:
                result[key] = mask(item, child)
        return result
    if isinstance(value, list):
        return [mask(item, path) for item in value]
    if isinstance(value, str):
        return _URL_CREDENTIALS.sub(lambda match: match.group(1) + ":" + MASK + "@", value)
    return value
