"""
The registry's own web pages: server-rendered HTML to browse repositories,
tags and manifests (and delete them, when deletes are enabled), served at
``<prefix>/ui/`` and at ``/`` for browsers. See docs/ui.md.
"""

from spectroreg.ui.resource import WebUI


def make_ui(registry, settings, authenticator=None, reactor=None, events=None):
    """
    The pages' resource, or None when ``http.ui.enabled`` is false.

    @param registry: L{spectroreg.registry.Registry}.
    @param settings: L{spectroreg.config.settings.Settings}.
    @param authenticator: the API's authenticator (None: open registry).
    @param events: L{spectroreg.ops.interfaces.IRegistryEvents} told of deletes, or None.
    """
    if not getattr(settings.http, "ui_enabled", True):
        return None
    return WebUI(registry, settings, authenticator, reactor, events=events)


__all__ = ["make_ui", "WebUI"]
