"""
A Python without spectroreg's packages: ``python -m spectroreg`` in the source
tree says what is missing and how to install it, in one line, instead of
dying on ``No module named 'twisted.internet'`` (the tree's own
``twisted/plugins/`` makes ``twisted`` importable as an empty namespace).
"""

import os
import re
import subprocess
import sys

from twisted.trial import unittest

from spectroreg.dependencies import FOR_CONFIG, REQUIRED, install_hint, missing_packages
from tests.support.daemon import REPO_ROOT
from tests.support.requirements import missing


class HintTests(unittest.SynchronousTestCase):
    def test_missing_found_without_importing(self):
        looked_up = []

        def find_spec(module):
            looked_up.append(module)
            if module == "botocore":
                raise ModuleNotFoundError(module)
            return None if module.startswith("twisted") else object()

        found = missing_packages(REQUIRED, find_spec)
        self.assertEqual([requirement.name for requirement in found], ["Twisted", "botocore"])
        self.assertEqual(looked_up, [requirement.module for requirement in REQUIRED])
        self.assertEqual(missing_packages(REQUIRED), [])

    def test_hint(self):
        wanted = [requirement for requirement in REQUIRED if requirement.module in ("twisted.internet", "yaml")]
        self.assertEqual(
            install_hint(wanted, "/opt/py/bin/python3"),
            "this Python (/opt/py/bin/python3) lacks Twisted, PyYAML: install with "
            "`/opt/py/bin/python3 -m pip install 'Twisted[tls]>=22.4' 'PyYAML>=5.4'` "
            "(or `/opt/py/bin/python3 -m pip install .` in the source tree), or on Debian run it with "
            "/usr/bin/python3 after `apt-get install python3-twisted python3-yaml`",
        )

    def test_same_as_packaging(self):
        """The list is setup.py's install_requires and debian/control's Depends."""
        with open(os.path.join(REPO_ROOT, "setup.py")) as f:
            setup = f.read()
        block = re.search(r"install_requires=\[(.*?)\],\n", setup, re.S).group(1)
        self.assertEqual(re.findall(r'"([^"]+)"', block), [requirement.pypi for requirement in REQUIRED])
        with open(os.path.join(REPO_ROOT, "debian", "control")) as f:
            control = f.read()
        depends = control[control.index("\nDepends:"):]
        depends = depends[: depends.index("\nSuggests:")]
        packages = re.findall(r"(python3-[\w.+-]+)", depends)
        self.assertEqual(packages, [requirement.debian for requirement in REQUIRED])


class BarePythonTests(unittest.TestCase):
    def bare_python(self):
        """A venv with nothing installed, its Python's path."""
        directory = os.path.abspath(self.mktemp())
        created = subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", directory],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=120,
        )
        if created.returncode != 0:
            missing("python -m venv: " + created.stdout.decode("utf-8", "replace"))
        return os.path.join(directory, "bin", "python")

    def run_in_tree(self, python, *argv):
        config = os.path.abspath(self.mktemp())
        with open(config, "w") as f:
            f.write("version: 0.1\nstorage: inmemory\nhttp:\n  addr: 127.0.0.1:0\n")
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("REGISTRY_", "PYTHON"))
        }
        # The source tree is the current directory, as for a user in a checkout.
        return subprocess.run(
            [python, "-m", "spectroreg"] + list(argv) + [config],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=60,
        )

    def test_serve_names_what_is_missing(self):
        python = self.bare_python()
        result = self.run_in_tree(python, "serve")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stdout, b"")
        self.assertEqual(
            result.stderr.decode("utf-8").splitlines(), ["spectroreg: " + install_hint(REQUIRED, python)]
        )

    def test_config_needs_only_yaml(self):
        python = self.bare_python()
        result = self.run_in_tree(python, "config")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(
            result.stderr.decode("utf-8").splitlines(), ["spectroreg: " + install_hint(FOR_CONFIG, python)]
        )
