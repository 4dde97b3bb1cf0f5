"""
The Python packages spectroreg needs, and one line saying which of them the
running interpreter lacks and how to install them.

Run from a checkout (``python3 -m spectroreg``) with a Python that lacks
Twisted (pyenv, conda, a bare venv), ``import twisted`` still succeeds: the
checkout's ``twisted/plugins/`` (no ``__init__.py``, a namespace shared with
Twisted) makes ``twisted`` an empty namespace package, and the daemon died
later with ``No module named 'twisted.internet'``. Looking for the modules
themselves, before anything imports them, tells the truth.

    missing = missing_packages(REQUIRED)
    if missing:
        print(install_hint(missing, sys.executable))
"""

import importlib.util
import sys


class Requirement:
    """A module to find, and the PyPI requirement and Debian package that provide it."""

    def __init__(self, module, pypi, debian):
        self.module = module
        self.pypi = pypi
        self.debian = debian

    @property
    def name(self):
        """The distribution's name, e.g. C{Twisted} for C{Twisted[tls]>=22.4}."""
        for stop in "[<>=!~ ":
            if stop in self.pypi:
                return self.pypi[: self.pypi.index(stop)]
        return self.pypi


# The same as setup.py's install_requires and debian/control's Depends
# (tests/test_dependencies.py holds them together).
REQUIRED = (
    Requirement("twisted.internet", "Twisted[tls]>=22.4", "python3-twisted"),
    Requirement("yaml", "PyYAML>=5.4", "python3-yaml"),
    Requirement("bcrypt", "bcrypt>=3.2", "python3-bcrypt"),
    Requirement("service_identity", "service-identity>=18.1", "python3-service-identity"),
    Requirement("OpenSSL", "pyOpenSSL>=21.0", "python3-openssl"),
    Requirement("cryptography", "cryptography>=3.4", "python3-cryptography"),
    Requirement("acme", "acme>=1.21", "python3-acme"),
    Requirement("josepy", "josepy>=1.13", "python3-josepy"),
    Requirement("botocore", "botocore>=1.29", "python3-botocore"),
    Requirement("treq", "treq>=22.2", "python3-treq"),
    Requirement("prometheus_client", "prometheus-client>=0.16", "python3-prometheus-client"),
    Requirement("zope.interface", "zope.interface>=5.4", "python3-zope.interface"),
)

# What reading and printing a configuration needs (``spectroreg config``).
FOR_CONFIG = tuple(requirement for requirement in REQUIRED if requirement.module == "yaml")


def _found(module, find_spec):
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):
        # A parent that is missing or broken (find_spec imports parents).
        return False


def missing_packages(requirements, find_spec=importlib.util.find_spec):
    """The L{Requirement}s of C{requirements} whose module cannot be found (nothing is imported but parents)."""
    return [requirement for requirement in requirements if not _found(requirement.module, find_spec)]


def install_hint(missing, python=None):
    """One line: what this Python lacks and the commands that install it."""
    python = python or sys.executable or "python3"
    names = ", ".join(requirement.name for requirement in missing)
    pip = " ".join("'{}'".format(requirement.pypi) for requirement in missing)
    apt = " ".join(requirement.debian for requirement in missing)
    return (
        "this Python ({}) lacks {}: install with `{} -m pip install {}` (or `{} -m pip install .` "
        "in the source tree), or on Debian run it with /usr/bin/python3 after `apt-get install {}`".format(
            python, names, python, pip, python, apt
        )
    )
