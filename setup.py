"""Packaging metadata for spectroreg."""

import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def _version():
    with open(os.path.join(HERE, "spectroreg", "__init__.py"), encoding="utf-8") as f:
        return re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)


def _long_description():
    path = os.path.join(HERE, "README.md")
    if not os.path.exists(path):
        return ""
    with open(path, encoding="utf-8") as f:
        return f.read()


setup(
    name="spectroreg",
    version=_version(),
    description="A container registry daemon on Twisted, configured like CNCF Distribution",
    long_description=_long_description(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.9",
    # twisted/plugins has no __init__.py on purpose: it is a namespace shared
    # with Twisted itself; the plugin cache is rebuilt by the installer
    # (Debian's trigger), never from here.
    packages=find_packages(include=["spectroreg", "spectroreg.*"]) + ["twisted.plugins"],
    package_data={"twisted.plugins": ["spectroreg_plugin.py"], "spectroreg.ui": ["static/*"]},
    install_requires=[
        "Twisted[tls]>=22.4",
        "PyYAML>=5.4",
        "bcrypt>=3.2",
        "service-identity>=18.1",
        "pyOpenSSL>=21.0",
        "cryptography>=3.4",
        "acme>=1.21",
        "josepy>=1.13",
        "botocore>=1.29",
        "treq>=22.2",
        "prometheus-client>=0.16",
        "zope.interface>=5.4",
    ],
    entry_points={
        "console_scripts": [
            "spectroreg = spectroreg.cli:main",
            "registry = spectroreg.cli:main",
        ],
    },
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3",
        "Operating System :: POSIX :: Linux",
    ],
)
