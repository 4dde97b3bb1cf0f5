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
    """A C{treq.testing.StubTreq} whose Site uses L{RegistryRequest}."""
    from treq.testing import StubTreq

    client = StubTreq(root)
    if streaming:
        client._agent._serverFactory.requestFactory = RegistryRequest
    return client


__all__ = ["make_settings", "make_root", "make_registry", "stub_client", "make_api_resource"]
