"""
The HTTP API: ``make_api_resource`` builds the resource served as
``<prefix>/v2``; ``RegistryRequest`` is the Site's request factory that
streams upload bodies into storage.
"""

from spectroreg.api.request import RegistryRequest
from spectroreg.api.resource import RegistryAPI


def make_api_resource(registry, settings, authenticator=None, reactor=None, metrics=None, events=None):
    """
    The ``/v2`` resource.

    @param registry: L{spectroreg.registry.Registry}.
    @param settings: L{spectroreg.config.settings.Settings} (``http`` and
        ``catalog`` are read).
    @param authenticator: L{spectroreg.auth.interfaces.IAuthenticator} or
        None for an open registry.
    @param metrics: an L{spectroreg.ops.interfaces.IRequestObserver} or None.
    @param events: an L{spectroreg.ops.interfaces.IRegistryEvents} or None.
    @return: an C{IResource}.
    """
    return RegistryAPI(registry, settings, authenticator, reactor, metrics=metrics, events=events)


__all__ = ["make_api_resource", "RegistryRequest", "RegistryAPI"]
