"""
Test helpers for the API: a minimal root with a ``v2`` child (the real root
with ``/``, prefix, headers and access log belongs to ``spectroreg.web``),
default settings, and an in-memory HTTP client that uses
L{RegistryRequest} like the daemon's Site.
"""

from twisted.web import resource

from spectroreg.api import make_api_resource
from spectroreg.api.request import RegistryRequest
from spectroreg.config.settings import HTTPSettings, LogSettings, Settings, StorageSettings
from spectroreg.registry import Registry
from spectroreg.web.channel import RequestLineChannel
from spectroreg.web.site import WalkOnceSite


def make_settings(storage=None, http=None, **kwargs):
    return Settings(
        version="0.1",
        log=LogSettings(),
        storage=storage or StorageSettings(driver="inmemory", delete_enabled=True),
        http=http or HTTPSettings(),
        **kwargs
    )


def make_root(api, prefix=()):
    """A root resource holding C{api} as ``[<prefix>/]v2``."""
    root = resource.Resource()
    parent = root
    for segment in prefix:
        child = resource.Resource()
        parent.putChild(segment, child)
        parent = child
    parent.putChild(b"v2", api)
    return root


def make_registry(settings=None, driver=None, reactor=None):
    from spectroreg.storage.base import ValidatingDriver
    from spectroreg.storage.inmemory import InMemoryDriver

    settings = settings or make_settings()
    if driver is None:
        driver = ValidatingDriver(InMemoryDriver(reactor=reactor))
    return Registry(driver, settings.storage, reactor=reactor)


def stub_client(root, streaming=True):
    """
    A C{treq.testing.StubTreq}; with C{streaming}, its Site is, as the
    daemon's, one that walks the tree once per request, with
    L{RegistryRequest}s on channels that hand them their request line.
    """
    from treq.testing import StubTreq

    client = StubTreq(root)
    if streaming:
        from twisted.internet.testing import MemoryReactorClock

        # A reactor of its own for the Site's timeouts, never run (as treq's).
        site = WalkOnceSite(root, requestFactory=RegistryRequest, reactor=MemoryReactorClock())
        site.protocol = RequestLineChannel
        # treq offers no way to choose the Site of its in-memory server.
        client._agent._serverFactory = site
    return client


__all__ = ["make_settings", "make_root", "make_registry", "stub_client", "make_api_resource"]
