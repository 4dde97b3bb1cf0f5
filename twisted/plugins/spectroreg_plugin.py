"""
The ``spectroreg`` twistd plugin: ``twistd -n spectroreg --config=PATH``.

Kept tiny: every ``getPlugins()`` call imports this module, so the daemon
itself is imported only in ``makeService``.
"""

import os

from twisted.application.service import IServiceMaker
from twisted.plugin import IPlugin
from twisted.python import usage
from zope.interface import implementer


class Options(usage.Options):
    synopsis = "[--config=PATH]"
    longdesc = (
        "Run the spectroreg container registry. The config file defaults to "
        "$REGISTRY_CONFIGURATION_PATH."
    )
    optParameters = [
        ["config", "c", None, "config file (Distribution's YAML, version 0.1)"],
    ]

    def opt_version(self):
        """Print the spectroreg version and exit."""
        from spectroreg import __version__

        print("spectroreg " + __version__)
        raise SystemExit(0)

    def postOptions(self):
        if not self["config"]:
            self["config"] = os.environ.get("REGISTRY_CONFIGURATION_PATH") or None
        if not self["config"]:
            raise usage.UsageError(
                "no config file: give --config=PATH or set REGISTRY_CONFIGURATION_PATH"
            )


@implementer(IServiceMaker, IPlugin)
class RegistryServiceMaker:
    tapname = "spectroreg"
    description = "A container registry (Docker Registry HTTP API v2)."
    options = Options

    def makeService(self, options):
        from spectroreg.service import service_for_plugin

        return service_for_plugin(options)


serviceMaker = RegistryServiceMaker()
