"""The ``auth`` section: at most one provider."""

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from spectroreg.config.messages import choices_text
from spectroreg.config.declare import ANY, STR, key, section


@dataclass(frozen=True)
class HtpasswdSettings:
    realm: str = key(STR, required=True)
    path: str = key(STR, required=True)


@dataclass(frozen=True)
class AuthSettings:
    provider: str  # one of AUTH_PROVIDERS
    htpasswd: Optional[HtpasswdSettings] = section(HtpasswdSettings)
    # Parameters of providers not implemented yet, kept as given.
    parameters: Mapping[str, Any] = field(default_factory=dict)

    OTHER_KEYS = {"token": ANY, "silly": ANY}


# Every provider Distribution knows; only those with settings of their own
# (htpasswd) are implemented, the others are read and refused when the daemon
# is assembled.
AUTH_PROVIDERS = ("htpasswd", "token", "silly")


def auth_settings(check, tree):
    """The checked C{auth} section (L{AuthSettings}), or None without one."""
    path = ("auth",)
    value = tree.get("auth")
    if value is None:
        return None
    if isinstance(value, str):
        value = {value: {}}
    section_values = check.mapping(value, path)
    providers = list(section_values)
    if not providers:
        return None
    if len(providers) > 1:
        check.fail(
            path + (providers[1],),
            "at most one auth provider is allowed, found {}".format(" and ".join(providers)),
        )
    provider = providers[0]
    provider_path = path + (provider,)
    if provider not in AUTH_PROVIDERS:
        check.fail(
            provider_path,
            "unknown auth provider {!r} (expected {})".format(provider, choices_text(AUTH_PROVIDERS)),
        )
    parameters = check.mapping(section_values[provider], provider_path)
    if provider == "htpasswd":
        check.known(parameters, provider_path)
        htpasswd = HtpasswdSettings(**check.read_keys(HtpasswdSettings, parameters, provider_path))
        return AuthSettings(provider="htpasswd", htpasswd=htpasswd)
    return AuthSettings(provider=provider, parameters=dict(parameters))
